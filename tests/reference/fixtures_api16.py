"""Reference values for issue 16's API work: the new elementwise ops (elu, selu, hardtanh, relu6, mish,
logsigmoid, atan2, fmod, clamp_min/max) forward and backward, clamp's gradient at its bounds,
single-int-dim reductions, tril/triu, and MultiheadAttention with is_causal beside attn_mask."""
import torch
import torch.nn.functional as F
from safetensors.torch import save_file


def grads(fn, *inputs, g=None):
    ins = [t.clone().requires_grad_(True) for t in inputs]
    out = fn(*ins)
    out.backward(g if g is not None else torch.ones_like(out))
    return out.detach(), [t.grad for t in ins]


def make(out_dir):
    gen = torch.Generator().manual_seed(16)
    t = {}
    x = torch.randn(4, 5, generator=gen, dtype=torch.float64) * 3
    x[0, :4] = torch.tensor([0.0, -1.0, 1.0, 6.0], dtype=torch.float64)  # kinks and bounds
    g = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    t["x"], t["g"] = x, g
    unary = {
        "elu": F.elu, "elu_alpha": lambda v: F.elu(v, alpha=0.7), "selu": F.selu,
        "hardtanh": F.hardtanh, "hardtanh_range": lambda v: F.hardtanh(v, -0.5, 1.5), "relu6": F.relu6,
        "mish": F.mish, "logsigmoid": F.logsigmoid, "clamp_min": lambda v: torch.clamp_min(v, 0.3),
        "clamp_max": lambda v: torch.clamp_max(v, 0.3), "fmod_scalar": lambda v: torch.fmod(v, 1.5),
        "tril": torch.tril, "tril_k1": lambda v: torch.tril(v, 1), "triu": torch.triu,
        "triu_km1": lambda v: torch.triu(v, -1),
    }
    for name, f in unary.items():
        out, (gx,) = grads(f, x, g=g)
        t[f"{name}.out"], t[f"{name}.grad"] = out, gx
    a = torch.randn(4, 5, generator=gen, dtype=torch.float64) * 3
    b = torch.randn(5, generator=gen, dtype=torch.float64) * 2  # broadcasts
    b[b.abs() < 0.2] = 0.7
    t["a"], t["b"] = a, b
    for name, f in {"atan2": torch.atan2, "fmod": torch.fmod}.items():
        out, (ga, gb) = grads(f, a, b, g=g)
        t[f"{name}.out"], t[f"{name}.grad_a"], t[f"{name}.grad_b"] = out, ga, gb
    # clamp and friends at exactly a bound
    edge = torch.tensor([1.0, 2.0, 1.5, 0.5, 2.5], dtype=torch.float64)
    t["edge"] = edge
    t["edge.clamp.grad"] = grads(lambda v: v.clamp(1.0, 2.0), edge)[1][0]
    t["edge.clamp_min.grad"] = grads(lambda v: v.clamp_min(1.0), edge)[1][0]
    t["edge.clamp_max.grad"] = grads(lambda v: v.clamp_max(2.0), edge)[1][0]
    t["edge.hardtanh.grad"] = grads(lambda v: F.hardtanh(v, 1.0, 2.0), edge)[1][0]
    # single-int dims
    r = torch.randn(3, 4, 5, generator=gen, dtype=torch.float64)
    t["r"] = r
    t["r.var1"], t["r.std1"] = r.var(1), r.std(1)
    t["r.var1_c0_keep"] = r.var(1, correction=0, keepdim=True)
    t["r.sum1"], t["r.mean1"], t["r.amax1"], t["r.amin1"] = r.sum(1), r.mean(1), r.amax(1), r.amin(1)
    t["r.prod1"], t["r.logsumexp1"], t["r.norm1"] = r.prod(1), r.logsumexp(1), r.norm(dim=1)
    # MultiheadAttention: E = 8, 2 heads, L = S = 4, N = 2, seq-first
    torch.manual_seed(16)
    mha = torch.nn.MultiheadAttention(8, 2).double().eval()
    for k, v in mha.state_dict().items():
        t[f"mha.{k}"] = v
    q = torch.randn(4, 2, 8, generator=gen, dtype=torch.float64)
    t["mha.x"] = q
    causal = torch.triu(torch.ones(4, 4, dtype=torch.bool), 1)  # True = masked
    wrong = torch.randn(4, 4, generator=gen, dtype=torch.float64)  # not causal: the hint is false
    kpm = torch.tensor([[False, False, False, True], [False, False, False, False]])
    t["mha.causal"], t["mha.wrong"], t["mha.kpm"] = causal, wrong, kpm
    with torch.no_grad():
        t["mha.hint.out"] = mha(q, q, q, attn_mask=causal, is_causal=True, need_weights=False)[0]
        o, w = mha(q, q, q, attn_mask=causal, is_causal=True, need_weights=True)
        t["mha.hint_w.out"], t["mha.hint_w.weights"] = o, w
        t["mha.wrong.out"] = mha(q, q, q, attn_mask=wrong, is_causal=True, need_weights=False)[0]
        t["mha.wrong_w.out"] = mha(q, q, q, attn_mask=wrong, is_causal=True, need_weights=True)[0]
        t["mha.wrong_kpm.out"] = mha(q, q, q, attn_mask=wrong, key_padding_mask=kpm, is_causal=True,
                                     need_weights=False)[0]
    # functional conv and pool with plain ints
    img = torch.randn(1, 2, 7, 7, generator=gen, dtype=torch.float64)
    w = torch.randn(3, 2, 3, 3, generator=gen, dtype=torch.float64)
    t["img"], t["img.w"] = img, w
    t["img.conv2d"] = F.conv2d(img, w, None, 2, 1)
    t["img.max_pool2d"] = F.max_pool2d(img, 3, 2, 1)
    t["img.avg_pool2d"] = F.avg_pool2d(img, 2)
    save_file({k: v.contiguous() for k, v in t.items()}, str(out_dir / "api16.safetensors"))
