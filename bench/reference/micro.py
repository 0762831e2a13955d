"""PyTorch twins of bench/micro: each entry is (setup, statement) doing the same work as the Ember benchmark."""

N16M = 16 << 20

WORKLOADS = {
    "BM_memcpy_64MiB": ("a = torch.rand(N); b = torch.empty(N)", "b.copy_(a)"),
    "BM_add_16M": ("a = torch.rand(N); b = torch.rand(N)", "c = a + b"),
    "BM_add_inplace_16M": ("a = torch.rand(N); b = torch.rand(N)", "a.add_(b)"),
    "BM_mul_16M": ("a = torch.rand(N); b = torch.rand(N)", "c = a * b"),
    "BM_exp_16M": ("a = torch.rand(N)", "c = torch.exp(a)"),
    "BM_gelu_16M": ("a = torch.randn(N)", "c = torch.nn.functional.gelu(a)"),
    "BM_sum_16M": ("a = torch.rand(N)", "s = a.sum()"),
    "BM_softmax_4096x1024": ("a = torch.randn(4096, 1024)", "s = torch.softmax(a, -1)"),
    "BM_tiny_add": ("a = torch.ones(1); b = torch.ones(1)", "c = a + b"),
    "BM_tiny_add_scalar": ("a = torch.ones(1)", "c = a + 1.0"),
    "BM_tiny_view": ("a = torch.ones(4, 4)", "c = a.t()"),
    "BM_matmul_f64_512": ("a = torch.randn(512, 512, dtype=torch.float64); b = torch.randn(512, 512, dtype=torch.float64)",
                          "c = a @ b"),
    "BM_matmul_bf16_512": ("a = torch.randn(512, 512, dtype=torch.bfloat16); b = torch.randn(512, 512, dtype=torch.bfloat16)",
                           "c = a @ b"),
}
CHAIN = "y = x\nfor _ in range(50): y = (y * 1.001).tanh()\n"
MLP_SETUP = """torch.manual_seed(0)
p = []
for i, o in ((784, 1024), (1024, 1024), (1024, 10)):
    p += [(torch.randn(i, o) / i ** 0.5).requires_grad_(), torch.zeros(o, requires_grad=True)]
x = torch.randn(128, 784); y = torch.randint(0, 10, (128, 1))"""
MLP_STEP = """h = torch.relu(x @ p[0] + p[1])
h = torch.relu(h @ p[2] + p[3])
loss = -torch.log_softmax(h @ p[4] + p[5], 1).gather(1, y).mean()
loss.backward()
for t in p: t.grad = None"""
for n in (1, 64):
    WORKLOADS[f"BM_chain100_grad/{n}"] = (f"x = torch.rand({n}, requires_grad=True)",
                                          CHAIN + "y.sum().backward(); x.grad = None")
    WORKLOADS[f"BM_chain100_nograd/{n}"] = (f"x = torch.rand({n})", CHAIN + "y.sum()")
    WORKLOADS[f"BM_chain100_manual_backward/{n}"] = (
        f"x = torch.rand({n})\nouts = []\ny = x\nfor _ in range(50): y = (y * 1.001).tanh(); outs.append(y)",
        "g = torch.ones_like(x)\nfor o in reversed(outs): g = g * (1 - o * o) * 1.001")
WORKLOADS["BM_mlp_fwd_bwd"] = (MLP_SETUP, MLP_STEP)
for n in (128, 256, 512, 1024, 2048):
    WORKLOADS[f"BM_matmul_f32/{n}"] = (f"a = torch.randn({n}, {n}); b = torch.randn({n}, {n})", "c = a @ b")

# Training steps (bench/micro/bm_train.cpp): the same models, optimizers and shapes.
TRAIN_PRELUDE = """import torch.nn as nn, torch.nn.functional as F
torch.manual_seed(0)
"""
STEP = "loss = F.cross_entropy({out}, {y})\nopt.zero_grad()\nloss.backward()\nopt.step()"
MLP = "nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))"
WORKLOADS["BM_mlp_sgd_step"] = (
    TRAIN_PRELUDE + f"m = {MLP}\nopt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)\n"
    "x = torch.randn(128, 784); y = torch.randint(0, 10, (128,))",
    STEP.format(out="m(x)", y="y"))
WORKLOADS["BM_mlp_infer_b32"] = (
    TRAIN_PRELUDE + f"m = {MLP}\nx = torch.randn(32, 784)",
    "with torch.no_grad(): m(x)")
WORKLOADS["BM_lenet_adam_step"] = (
    TRAIN_PRELUDE + "m = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5),"
    " nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),"
    " nn.Linear(84, 10))\nopt = torch.optim.Adam(m.parameters(), lr=1e-3)\n"
    "x = torch.rand(64, 1, 28, 28); y = torch.randint(0, 10, (64,))",
    STEP.format(out="m(x)", y="y"))
WORKLOADS["BM_resnet_sgd_step"] = (
    TRAIN_PRELUDE + """class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, padding=1, bias=False); self.bn = nn.BatchNorm2d(32)
        blk = lambda: nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                                    nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32))
        self.block0 = blk(); self.block1 = blk(); self.fc = nn.Linear(32, 10)
    def forward(self, x):
        h = F.relu(self.bn(self.stem(x)))
        for b in (self.block0, self.block1): h = F.relu(h + b(h))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))
m = ResNet()
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
x = torch.randn(32, 3, 32, 32); y = torch.randint(0, 10, (32,))""",
    STEP.format(out="m(x)", y="y"))
WORKLOADS["BM_chargpt_adamw_step"] = (
    TRAIN_PRELUDE + """class Gpt(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(65, 128); self.pos = nn.Embedding(64, 128)
        self.blocks = nn.ModuleList(nn.TransformerEncoderLayer(128, 4, 512, 0.1, activation="gelu", batch_first=True,
                                                               norm_first=True) for _ in range(4))
        self.ln = nn.LayerNorm(128); self.head = nn.Linear(128, 65, bias=False)
        self.register_buffer("mask", torch.ones(64, 64).tril() == 0)
    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
        for b in self.blocks: x = b(x, src_mask=self.mask, is_causal=True)
        return self.head(self.ln(x))
m = Gpt()
opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
x = torch.randint(0, 65, (32, 64)); y = torch.randint(0, 65, (32, 64))""",
    STEP.format(out="m(x).flatten(0, 1)", y="y.flatten()"))
