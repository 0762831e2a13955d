"""Reference gradients of composite expressions, computed with torch autograd in f64: an MLP with a
log-softmax loss, a small conv net (conv, relu, max pool, grouped strided conv, avg pool, linear) and a
causal two-head attention block with a residual layer norm. Keys "<model>.<tensor>" and
"<model>.grad_<tensor>" plus "<model>.loss"."""
import math

import torch
import torch.nn.functional as F
from safetensors.torch import save_file


def make(out_dir):
    torch.manual_seed(0)
    f64 = torch.float64
    t = {}

    def params(model, **shapes):
        ps = {k: (torch.randn(*s, dtype=f64) * 0.5).requires_grad_() for k, s in shapes.items()}
        for k, v in ps.items():
            t[f"{model}.{k}"] = v.detach().clone()
        return ps

    def finish(model, loss, ps):
        t[f"{model}.loss"] = loss.detach().reshape(1)
        for k, g in zip(ps, torch.autograd.grad(loss, list(ps.values()))):
            t[f"{model}.grad_{k}"] = g

    # MLP 6-8-5, tanh and gelu, mean negative log-likelihood of the target classes.
    p = params("mlp", x=(4, 6), w1=(6, 8), b1=(8,), w2=(8, 5), b2=(5,))
    y = torch.tensor([0, 3, 1, 4])
    t["mlp.y"] = y
    h = F.gelu(torch.tanh(p["x"] @ p["w1"] + p["b1"]))
    logits = h @ p["w2"] + p["b2"]
    finish("mlp", -F.log_softmax(logits, 1).gather(1, y[:, None]).mean(), p)

    # Conv net on [2, 3, 8, 8].
    p = params("conv", x=(2, 3, 8, 8), w1=(4, 3, 3, 3), b1=(4,), w2=(6, 2, 3, 3), b2=(6,), w3=(6 * 2 * 2, 3))
    h = F.max_pool2d(F.relu(F.conv2d(p["x"], p["w1"], p["b1"], padding=1)), 2)
    h = F.conv2d(h, p["w2"], p["b2"], stride=2, padding=1, groups=2)
    h = F.avg_pool2d(h, 1).flatten(1)
    finish("conv", (F.log_softmax(h @ p["w3"], 1)[:, 0]).sum(), p)

    # Causal attention, 2 heads of 4 over [2, 5, 8], residual, layer norm.
    p = params("attn", x=(2, 5, 8), wq=(8, 8), wk=(8, 8), wv=(8, 8), wo=(8, 8), ln_w=(8,), ln_b=(8,), target=(2, 5, 8))
    x = p["x"]
    B, T, C, H = 2, 5, 8, 2
    D = C // H

    def heads(z):
        return z.reshape(B, T, H, D).transpose(1, 2)

    q, k, v = heads(x @ p["wq"]), heads(x @ p["wk"]), heads(x @ p["wv"])
    att = (q @ k.transpose(-2, -1)) / math.sqrt(D)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    att = torch.softmax(att.masked_fill(mask, float("-inf")), -1)
    yv = (att @ v).transpose(1, 2).reshape(B, T, C)
    out = F.layer_norm(x + yv @ p["wo"], (C,), p["ln_w"], p["ln_b"])
    finish("attn", (out * p["target"]).sum(), p)
    save_file({k: v.contiguous() for k, v in t.items()}, str(out_dir / "grad_composite.safetensors"))
