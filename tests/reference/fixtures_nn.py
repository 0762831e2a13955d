"""Reference values for pooling and normalisation forwards: max_pool2d (with indices), avg_pool2d,
adaptive_avg_pool2d, layer_norm, rms_norm and batch_norm (train with updated running stats, eval).

Inputs are stored once in f32; every case is computed by PyTorch on input.to(dtype) for f32, f64, f16
and bf16 (keys "<op>.<case>.<dtype>.<what>"). Each case's arguments are stored as an i64/f64 "params"
tensor so the C++ test reads them instead of repeating the table.
"""
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

DTYPES = {"f32": torch.float32, "f64": torch.float64, "f16": torch.float16, "bf16": torch.bfloat16}


def make(out_dir):
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float32)

    t = {}
    # Pool input [2, 3, 7, 9] with a few NaNs in plane (1, 2); values rounded to multiples of 1/8 so that
    # f16/bf16 conversions make ties (first position wins).
    x = torch.round(randn(2, 3, 7, 9) * 8) / 8
    x[1, 2, 3, 4] = float("nan")
    x[1, 2, 3, 5] = float("nan")
    x[0, 1, 0, 0] = float("-inf")
    t["pool.x"] = x

    # max_pool2d: kernel, stride, padding, dilation (h, w pairs), ceil_mode
    max_cases = {
        "k3s2p1": ((3, 3), (2, 2), (1, 1), (1, 1), False),
        "dil_ceil": ((3, 2), (2, 3), (1, 1), (2, 1), True),
        "default_stride_ceil": ((2, 2), (0, 0), (0, 0), (1, 1), True),
        "mixed": ((4, 3), (3, 2), (2, 1), (1, 2), True),
        "k1": ((1, 1), (2, 3), (0, 0), (1, 1), False),
    }
    for name, (k, s, p, d, ceil) in max_cases.items():
        t[f"max_pool2d.{name}.params"] = torch.tensor([*k, *s, *p, *d, int(ceil)], dtype=torch.int64)
        stride = k if s == (0, 0) else s
        for dn, dt in DTYPES.items():
            out, idx = F.max_pool2d(x.to(dt), k, stride, p, d, ceil_mode=ceil, return_indices=True)
            t[f"max_pool2d.{name}.{dn}.out"] = out
            t[f"max_pool2d.{name}.{dn}.idx"] = idx
    xi = torch.randint(-50, 50, (2, 2, 5, 6), generator=g, dtype=torch.int64)
    t["max_pool2d.int.x"] = xi
    out, idx = F.max_pool2d(xi, (3, 2), (2, 2), (1, 1), (1, 1), ceil_mode=True, return_indices=True)
    t["max_pool2d.int.out"], t["max_pool2d.int.idx"] = out, idx

    # avg_pool2d: kernel, stride, padding, ceil_mode, count_include_pad
    avg_cases = {
        "k3s2p1_incl": ((3, 3), (2, 2), (1, 1), False, True),
        "k3s2p1_excl": ((3, 3), (2, 2), (1, 1), False, False),
        "ceil_incl": ((3, 2), (2, 2), (1, 1), True, True),
        "ceil_excl": ((3, 2), (2, 2), (1, 1), True, False),
        "rect_ceil": ((2, 4), (3, 1), (0, 2), True, True),
        "default_stride": ((2, 3), (0, 0), (0, 0), False, True),
    }
    for name, (k, s, p, ceil, incl) in avg_cases.items():
        t[f"avg_pool2d.{name}.params"] = torch.tensor([*k, *s, *p, int(ceil), int(incl)], dtype=torch.int64)
        stride = k if s == (0, 0) else s
        for dn, dt in DTYPES.items():
            t[f"avg_pool2d.{name}.{dn}.out"] = F.avg_pool2d(x.to(dt), k, stride, p, ceil, incl)

    # adaptive_avg_pool2d onto sizes that do not divide 7 x 9, one larger than the input
    xa = randn(2, 3, 7, 9)
    t["adaptive.x"] = xa
    for oh, ow in [(3, 4), (5, 5), (1, 1), (7, 9), (10, 4)]:
        name = f"{oh}x{ow}"
        t[f"adaptive_avg_pool2d.{name}.params"] = torch.tensor([oh, ow], dtype=torch.int64)
        for dn, dt in DTYPES.items():
            t[f"adaptive_avg_pool2d.{name}.{dn}.out"] = F.adaptive_avg_pool2d(xa.to(dt), (oh, ow))

    # layer_norm / rms_norm over [4, 5, 6] with an offset mean, normalising the last 1 or 2 dims.
    xn = randn(4, 5, 6) * 2 + 3
    t["norm.x"] = xn
    w1, b1 = randn(6), randn(6)
    w2, b2 = randn(5, 6), randn(5, 6)
    t["norm.w1"], t["norm.b1"], t["norm.w2"], t["norm.b2"] = w1, b1, w2, b2
    # nd (1 or 2), affine (0 none, 1 weight, 2 weight + bias, 3 bias only), eps
    ln_cases = {"d1_affine": (1, 2, 1e-5), "d2_affine": (2, 2, 1e-5), "d1_weight": (1, 1, 1e-3),
                "d2_plain": (2, 0, 1e-5), "d1_bias": (1, 3, 1e-2)}
    for name, (nd, aff, eps) in ln_cases.items():
        t[f"layer_norm.{name}.params"] = torch.tensor([nd, aff, eps], dtype=torch.float64)
        shape = xn.shape[-nd:]
        w, b = (w1, b1) if nd == 1 else (w2, b2)
        for dn, dt in DTYPES.items():
            wd = w.to(dt) if aff in (1, 2) else None
            bd = b.to(dt) if aff in (2, 3) else None
            t[f"layer_norm.{name}.{dn}.out"] = F.layer_norm(xn.to(dt), shape, wd, bd, eps)
    # mixed precision: bf16/f16 input with f32 parameters
    for dn in ("f16", "bf16"):
        t[f"layer_norm.mixed.{dn}.out"] = F.layer_norm(xn.to(DTYPES[dn]), (6,), w1, b1, 1e-5)
    # nd, weight (0/1), eps (< 0: the default)
    rms_cases = {"d1_weight_default_eps": (1, 1, -1.0), "d2_plain": (2, 0, 1e-3), "d1_plain_default_eps": (1, 0, -1.0)}
    xr = xn * 1e-3  # small enough that the default eps matters at f16
    t["rms.x"] = xr
    for name, (nd, wt, eps) in rms_cases.items():
        t[f"rms_norm.{name}.params"] = torch.tensor([nd, wt, eps], dtype=torch.float64)
        shape = xr.shape[-nd:]
        w = w1 if nd == 1 else w2
        for dn, dt in DTYPES.items():
            out = F.rms_norm(xr.to(dt), shape, w.to(dt) if wt else None, None if eps < 0 else eps)
            t[f"rms_norm.{name}.{dn}.out"] = out

    # batch_norm: [N, C, H, W] and [N, C] inputs, training (output + running stats) and eval
    xb4 = randn(5, 4, 3, 2) * 1.5 + 0.5
    xb2 = randn(8, 3) - 2
    t["bn.x4"], t["bn.x2"] = xb4, xb2
    for key, xb in (("x4", xb4), ("x2", xb2)):
        c = xb.shape[1]
        rm0, rv0 = randn(c), torch.rand(c, generator=g) + 0.5
        w, b = randn(c), randn(c)
        t[f"bn.{key}.rm0"], t[f"bn.{key}.rv0"], t[f"bn.{key}.w"], t[f"bn.{key}.b"] = rm0, rv0, w, b
        for dn, dt in DTYPES.items():
            for affine in (0, 1):
                wd, bd = (w.to(dt), b.to(dt)) if affine else (None, None)
                rm, rv = rm0.to(dt).clone(), rv0.to(dt).clone()
                out = F.batch_norm(xb.to(dt), rm, rv, wd, bd, training=True, momentum=0.2, eps=1e-5)
                t[f"batch_norm.{key}.train{affine}.{dn}.out"] = out
                t[f"batch_norm.{key}.train{affine}.{dn}.rm"] = rm
                t[f"batch_norm.{key}.train{affine}.{dn}.rv"] = rv
                out = F.batch_norm(xb.to(dt), rm0.to(dt), rv0.to(dt), wd, bd, training=False, eps=1e-3)
                t[f"batch_norm.{key}.eval{affine}.{dn}.out"] = out
        # mixed precision: bf16 input with f32 running stats and parameters
        rm, rv = rm0.clone(), rv0.clone()
        t[f"batch_norm.{key}.mixed.out"] = F.batch_norm(xb.to(torch.bfloat16), rm, rv, w, b, True, 0.1, 1e-5)
        t[f"batch_norm.{key}.mixed.rm"], t[f"batch_norm.{key}.mixed.rv"] = rm, rv

    save_file({k: v.contiguous() for k, v in t.items()}, str(out_dir / "nn.safetensors"))


if __name__ == "__main__":
    import pathlib

    make(pathlib.Path(__file__).resolve().parent)
