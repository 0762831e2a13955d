"""PyTorch twins of bench/workloads/models.hpp: MLP 784-1024-1024-10, LeNet-5, a small ResNet, and a GPT."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def mlp():
    return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))


def lenet():
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


class ResNet(nn.Module):
    """conv 32 + BN stem, two residual blocks of (conv, BN, ReLU, conv, BN) + skip, global pool, linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(32)
        blk = lambda: nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),  # noqa
                                    nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32))
        self.block0, self.block1 = blk(), blk()
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        h = F.relu(self.bn(self.stem(x)))
        for b in (self.block0, self.block1):
            h = F.relu(h + b(h))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


CHAR_GPT = dict(vocab=65, context=64, d_model=128, heads=4, layers=4, dropout=0.1, tied=False)
GPT2 = dict(vocab=50257, context=1024, d_model=768, heads=12, layers=12, dropout=0.0, tied=True)


class Gpt(nn.Module):
    """Pre-norm GPT of TransformerEncoderLayers with a causal mask; tied: the head is the token embedding."""

    def __init__(self, vocab, context, d_model, heads, layers, dropout, tied):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d_model), nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout, activation="gelu", batch_first=True,
                                       norm_first=True) for _ in range(layers))
        self.ln = nn.LayerNorm(d_model)
        self.head = None if tied else nn.Linear(d_model, vocab, bias=False)
        self.register_buffer("mask", torch.ones(context, context).tril() == 0)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for b in self.blocks:
            x = b(x, src_mask=self.mask[:t, :t], is_causal=True)
        x = self.ln(x)
        return x @ self.tok.weight.T if self.head is None else self.head(x)


def train_step(model, opt, x, y):
    """One cross-entropy step, the logits flattened to (N, classes) as in bench/workloads/train.cpp."""
    def step():
        loss = F.cross_entropy(model(x).flatten(0, -2), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


class Gpt2(nn.Module):
    """GPT-2 in Hugging Face's layout (wte, wpe, h.N.{ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj},
    ln_f; Conv1D-style [in, out] weights; tied head), with torch's fused attention: the twin of
    examples/gpt2/gpt2.hpp for the GPU benchmark."""

    def __init__(self, vocab=50257, context=1024, d_model=768, heads=12, layers=12):
        super().__init__()
        self.heads = heads
        self.wte, self.wpe = nn.Embedding(vocab, d_model), nn.Embedding(context, d_model)
        lin = lambda i, o: nn.ParameterDict({"weight": nn.Parameter(torch.randn(i, o) * 0.02),  # noqa: E731
                                             "bias": nn.Parameter(torch.zeros(o))})
        self.h = nn.ModuleList(nn.ModuleDict({
            "ln_1": nn.LayerNorm(d_model), "ln_2": nn.LayerNorm(d_model),
            "attn": nn.ModuleDict({"c_attn": lin(d_model, 3 * d_model), "c_proj": lin(d_model, d_model)}),
            "mlp": nn.ModuleDict({"c_fc": lin(d_model, 4 * d_model), "c_proj": lin(4 * d_model, d_model)}),
        }) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d_model)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.01)

    @staticmethod
    def _dense(p, x):
        return torch.addmm(p["bias"], x.flatten(0, -2), p["weight"]).view(*x.shape[:-1], -1)

    def forward(self, idx):
        b, t = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for blk in self.h:
            q, k, v = self._dense(blk["attn"]["c_attn"], blk["ln_1"](x)).split(x.shape[-1], -1)
            q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, -1)
            x = x + self._dense(blk["attn"]["c_proj"], y)
            x = x + self._dense(blk["mlp"]["c_proj"], F.gelu(self._dense(blk["mlp"]["c_fc"], blk["ln_2"](x)),
                                                             approximate="tanh"))
        return self.ln_f(x) @ self.wte.weight.T
