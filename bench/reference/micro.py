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
