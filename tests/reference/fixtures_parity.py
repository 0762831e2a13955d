"""Training parity with PyTorch (as llm.c checks itself): an MLP, a small CNN and a 2-layer causal
transformer start from the same weights ("<model>.sd.<name>", float64) and take 10 steps on the same
batches ("<model>.x<k>", "<model>.y<k>") with each optimizer; "<model>.<opt>.<dtype>" holds the 10 losses
(the loss before each step) computed by PyTorch in float64 and in float32. Optimizer settings are
restated in tests/test_parity.cpp.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

STEPS = 10


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))

    def forward(self, x):
        return self.net(x)


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 5))

    def forward(self, x):
        return self.net(x)


class Gpt(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(11, 16)
        self.pos = nn.Embedding(6, 16)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True) for _ in range(2))
        self.ln_f = nn.LayerNorm(16)
        self.head = nn.Linear(16, 11)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t))
        mask = torch.ones(t, t).tril() == 0
        for b in self.blocks:
            x = b(x, src_mask=mask, is_causal=True)
        return self.head(self.ln_f(x))


OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2, amsgrad=True),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-3, momentum=0.5, centered=True),
    "adagrad": lambda p: torch.optim.Adagrad(p, lr=0.1, lr_decay=1e-3),
}


def make(out_dir):
    torch.manual_seed(5)
    t = {}
    data = {
        "mlp": (Mlp, [torch.randn(6, 8, dtype=torch.float64) for _ in range(STEPS)],
                [torch.randint(0, 4, (6,)) for _ in range(STEPS)]),
        "cnn": (Cnn, [torch.randn(4, 1, 8, 8, dtype=torch.float64) for _ in range(STEPS)],
                [torch.randint(0, 5, (4,)) for _ in range(STEPS)]),
        "gpt": (Gpt, [torch.randint(0, 11, (3, 6)) for _ in range(STEPS)],
                [torch.randint(0, 11, (3, 6)) for _ in range(STEPS)]),
    }
    for name, (cls, xs, ys) in data.items():
        init = cls().double().state_dict()
        for k, v in init.items():
            t[f"{name}.sd.{k}"] = v.clone()
        for i, (x, y) in enumerate(zip(xs, ys)):
            t[f"{name}.x{i}"] = x
            t[f"{name}.y{i}"] = y
        for opt_name, make_opt in OPTIMIZERS.items():
            for dtype, tag in ((torch.float64, "f64"), (torch.float32, "f32")):
                model = cls().to(dtype)
                model.load_state_dict(init)
                opt = make_opt(model.parameters())
                losses = []
                for x, y in zip(xs, ys):
                    x = x.to(dtype) if x.is_floating_point() else x
                    loss = F.cross_entropy(model(x).flatten(0, -2), y.flatten())
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    losses.append(loss.item())
                t[f"{name}.{opt_name}.{tag}"] = torch.tensor(losses, dtype=torch.float64)
    save_file({k: v.contiguous() for k, v in t.items()}, str(out_dir / "parity.safetensors"))
