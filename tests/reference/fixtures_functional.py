"""Reference values and gradients of nn::functional forms, from torch.nn.functional in float64:
linear, bilinear, group_norm, scaled_dot_product_attention (bool / float masks, causal, scale,
broadcast batch dims, L != S, fully masked rows), pad's reflect / replicate / circular modes and normalize.

Each case "<case>" stores the upstream gradient "<case>.gy", the result "<case>.out" and the gradient
"<case>.g<arg>" of each floating argument. The metadata entry "<case>" holds
"fn=...;args=a,b,...;a=<key>;b=<key>;<option>=<value>..." for tests/test_functional.cpp to replay; an
argument shared by several cases is stored once, under the first one's name.
"""
import torch
import torch.nn.functional as F
from safetensors.torch import save_file


def make(out_dir):
    g = torch.Generator().manual_seed(5)
    f64 = torch.float64

    def randn(*shape):
        return torch.randn(tuple(shape), generator=g, dtype=f64)

    t, meta = {}, {}

    stored, keep = {}, []  # id of an argument -> its key: shared arguments are stored once

    def put(key, v):
        if id(v) not in stored:
            stored[id(v)] = key
            keep.append(v)  # alive, so that its id is not reused
            t[key] = v.clone()
        return stored[id(v)]

    def case(name, fn, opts, **args):
        leaves = {k: v.clone().requires_grad_(v.is_floating_point()) for k, v in args.items()}
        out = fn(*leaves.values())  # arguments in their positional order
        gy = randn(*out.shape)
        diff = {k: v for k, v in leaves.items() if v.requires_grad}
        grads = torch.autograd.grad(out, list(diff.values()), gy)
        keys = {k: put(f"{name}.{k}", v) for k, v in args.items()}
        t[f"{name}.out"], t[f"{name}.gy"] = out.detach(), gy
        for k, gk in zip(diff, grads):
            t[f"{name}.g{k}"] = gk
        meta[name] = ";".join(f"{k}={v}" for k, v in dict(opts, args=",".join(args), **keys).items())

    # linear: N-D input, 1-D input, no bias.
    case("linear_nd", F.linear, {"fn": "linear"}, x=randn(2, 3, 4), w=randn(5, 4), b=randn(5))
    case("linear_1d", F.linear, {"fn": "linear"}, x=randn(4), w=randn(5, 4), b=randn(5))
    case("linear_nobias", F.linear, {"fn": "linear"}, x=randn(3, 4), w=randn(2, 4))
    # bilinear: leading dims, no bias.
    case("bilinear_nd", F.bilinear, {"fn": "bilinear"}, x1=randn(2, 3, 4), x2=randn(2, 3, 5), w=randn(6, 4, 5),
         b=randn(6))
    case("bilinear_nobias", F.bilinear, {"fn": "bilinear"}, x1=randn(3, 2), x2=randn(3, 4), w=randn(2, 2, 4))

    # group_norm: 4-D with affine, 3-D without, one channel per group with weight only, a large mean.
    gn = lambda G, eps: (lambda x, w=None, b=None: F.group_norm(x, G, w, b, eps))  # noqa: E731
    case("gn_affine", gn(3, 1e-5), {"fn": "group_norm", "num_groups": 3, "eps": 1e-5}, x=randn(2, 6, 3, 2),
         w=randn(6), b=randn(6))
    case("gn_plain", gn(2, 1e-5), {"fn": "group_norm", "num_groups": 2, "eps": 1e-5}, x=randn(2, 4, 5))
    case("gn_weight", gn(4, 1e-3), {"fn": "group_norm", "num_groups": 4, "eps": 1e-3}, x=randn(3, 4, 2), w=randn(4))
    case("gn_one_group", lambda x, b: F.group_norm(x, 1, None, b, 1e-5), {"fn": "group_norm", "num_groups": 1, "eps": 1e-5}, x=randn(2, 3, 4) + 50,
         b=randn(3))

    # scaled_dot_product_attention.
    def sdpa(is_causal=False, scale=None):
        return lambda q, k, v, mask=None: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                                                         scale=scale)

    q, k, v = randn(2, 3, 4, 8), randn(2, 3, 6, 8), randn(2, 3, 6, 5)
    case("sdpa_plain", sdpa(), {"fn": "sdpa"}, q=q, k=k, v=v)
    bmask = torch.rand((4, 6), generator=g) > 0.4
    bmask[:, 0] = True
    case("sdpa_bool", sdpa(), {"fn": "sdpa"}, q=q, k=k, v=v, mask=bmask)
    case("sdpa_float", sdpa(), {"fn": "sdpa"}, q=q, k=k, v=v, mask=randn(3, 1, 6))
    case("sdpa_scale", sdpa(scale=0.3), {"fn": "sdpa", "scale": 0.3}, q=q, k=k, v=v)
    case("sdpa_causal_square", sdpa(True), {"fn": "sdpa", "is_causal": 1}, q=randn(2, 5, 4), k=randn(2, 5, 4),
         v=randn(2, 5, 3))
    case("sdpa_causal_rect", sdpa(True), {"fn": "sdpa", "is_causal": 1}, q=q, k=k, v=v)
    case("sdpa_causal_tall", sdpa(True, 0.5), {"fn": "sdpa", "is_causal": 1, "scale": 0.5}, q=randn(1, 6, 4),
         k=randn(1, 3, 4), v=randn(1, 3, 2))
    case("sdpa_bcast", sdpa(), {"fn": "sdpa"}, q=randn(2, 1, 4, 8), k=randn(1, 3, 6, 8), v=randn(3, 6, 5))
    dead = bmask.clone()
    dead[2] = False  # query row 2 attends nothing: PyTorch gives zeros (and zero gradients)
    case("sdpa_bool_dead", sdpa(), {"fn": "sdpa"}, q=q, k=k, v=v, mask=dead)
    fdead = randn(2, 1, 4, 6)
    fdead[1, 0, 3] = float("-inf")
    fdead[0, 0, 0, 2] = float("-inf")
    case("sdpa_float_dead", sdpa(), {"fn": "sdpa"}, q=q, k=k, v=v, mask=fdead)
    case("sdpa_2d", sdpa(), {"fn": "sdpa"}, q=randn(3, 4), k=randn(5, 4), v=randn(5, 2), mask=torch.ones(5, dtype=torch.bool))

    # pad: reflect / replicate / circular over 1, 2 and 3 trailing dims.
    def padf(p, mode):
        return lambda x: F.pad(x, p, mode=mode)

    x4 = randn(1, 2, 4, 5)
    for mode in ("reflect", "replicate", "circular"):
        case(f"pad_{mode}_2d", padf((1, 2, 3, 1), mode), {"fn": "pad", "pad": "1,2,3,1", "mode": mode}, x=x4)
        case(f"pad_{mode}_1d", padf((2, 3), mode), {"fn": "pad", "pad": "2,3", "mode": mode}, x=randn(3, 5))
    case("pad_replicate_3d", padf((1, 0, 0, 2, 2, 1), "replicate"),
         {"fn": "pad", "pad": "1,0,0,2,2,1", "mode": "replicate"}, x=randn(1, 2, 2, 3, 2))
    case("pad_circular_3d", padf((1, 1, 2, 0, 1, 2), "circular"),
         {"fn": "pad", "pad": "1,1,2,0,1,2", "mode": "circular"}, x=randn(1, 1, 3, 4, 5))
    case("pad_constant", lambda x: F.pad(x, (1, -1, 2, 0), value=1.5),
         {"fn": "pad", "pad": "1,-1,2,0", "mode": "constant", "value": 1.5}, x=randn(2, 3, 4))

    # normalize: p = 2 over dim 1, p = 1 over the last dim, a zero row (eps).
    xz = randn(3, 4)
    xz[1] = 0
    case("normalize_2", lambda x: F.normalize(x), {"fn": "normalize", "p": 2, "dim": 1}, x=randn(2, 3, 4))
    case("normalize_1", lambda x: F.normalize(x, 1.0, -1), {"fn": "normalize", "p": 1, "dim": -1}, x=randn(2, 3, 4))
    case("normalize_zero", lambda x: F.normalize(x, 2.0, 1, 1e-3), {"fn": "normalize", "p": 2, "dim": 1, "eps": 1e-3},
         x=xz)

    save_file({k: v.contiguous() for k, v in t.items()}, str(out_dir / "functional.safetensors"), metadata=meta)
