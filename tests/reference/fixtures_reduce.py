"""PyTorch reference values for the reduction family (tests/test_reduce.cpp).

Inputs are stored as "in.<dtype>" (shape [3, 4, 5]); each result is named
"<op>.<dtype>.<view>.<dims>.<param>" (sort/topk/max/min add a ".idx" tensor). Views: c = contiguous,
t = permute(2, 0, 1), s = [:, ::2, 1:] (strided). dims: "all", or dims joined by "_" with "m" for a
minus sign. The "long" input ([2, 3000], not stored) is a formula both sides compute: it exercises
the lane loops, block folding and split reductions; its full-size results are stored every 37th column.
"""
import pathlib

import torch
from safetensors.torch import save_file

VIEWS = {
    "c": lambda x: x,
    "t": lambda x: x.permute(2, 0, 1),
    "s": lambda x: x[:, ::2, 1:],
}
DTYPES = {"f32": torch.float32, "f64": torch.float64, "f16": torch.float16, "bf16": torch.bfloat16,
          "i32": torch.int32, "i64": torch.int64}
FLOATS = ("f32", "f64", "f16", "bf16")


def dims_name(dims):
    return "all" if dims is None else "_".join(str(d).replace("-", "m") for d in dims)


def long_input():
    # x[i, j] = ((i * 7919 + j * 104729) % 1000) / 250 - 2, computed in double then rounded to float
    i = torch.arange(2, dtype=torch.int64).view(2, 1)
    j = torch.arange(3000, dtype=torch.int64).view(1, 3000)
    return (((i * 7919 + j * 104729) % 1000).double() / 250.0 - 2.0).float()


def make(out_dir):
    g = torch.Generator().manual_seed(1234)
    base = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    ints = torch.randint(-4, 5, (3, 4, 5), generator=g)
    out = {}

    def put(name, value):
        out[name] = value.contiguous()

    inputs = {}
    for dn, dt in DTYPES.items():
        inputs[dn] = (base if dn in FLOATS else ints).to(dt).contiguous()
        put(f"in.{dn}", inputs[dn])

    dim_sets = [None, (1,), (-1,), (0, 2)]
    for dn in DTYPES:
        views = ("c", "t", "s") if dn == "f32" else ("c",) if dn == "i32" else ("c", "t")
        full = dn in ("f32", "f64")
        for vn in views:
            x = VIEWS[vn](inputs[dn])
            for dims in dim_sets:
                dl = list(dims) if dims else []
                stem = f"{dn}.{vn}.{dims_name(dims)}"
                put(f"sum.{stem}.-", torch.sum(x, dl))
                put(f"amax.{stem}.-", torch.amax(x, dl))
                if dn not in FLOATS:
                    continue
                put(f"mean.{stem}.-", torch.mean(x, dl))
                put(f"var.{stem}.c1", torch.var(x, dl, correction=1))
                put(f"logsumexp.{stem}.-", torch.logsumexp(x, dl or [0, 1, 2]))
                put(f"norm.{stem}.p2", torch.linalg.vector_norm(x, 2, dim=dims))
                if full:
                    put(f"var.{stem}.c0", torch.var(x, dl, correction=0))
                    put(f"std.{stem}.c1", torch.std(x, dl, correction=1))
                    for p, pn in ((1, "1"), (3.5, "3_5"), (float("inf"), "inf"), (float("-inf"), "minf")):
                        put(f"norm.{stem}.p{pn}", torch.linalg.vector_norm(x, p, dim=dims))
            for d in (0, -1):
                stem = f"{dn}.{vn}.{dims_name((d,))}"
                put(f"cumsum.{stem}.-", torch.cumsum(x, d))
                v, i = torch.sort(x, dim=d, stable=True)
                put(f"sort.{stem}.asc", v)
                put(f"sort.{stem}.asc.idx", i)
                if dn in FLOATS:
                    put(f"softmax.{stem}.-", torch.softmax(x, d))
                    put(f"log_softmax.{stem}.-", torch.log_softmax(x, d))
                if full or dn == "i64":
                    v, i = torch.sort(x, dim=d, descending=True, stable=True)
                    put(f"sort.{stem}.desc", v)
                    put(f"sort.{stem}.desc.idx", i)
                if full:
                    for largest in (1, 0):
                        v, i = torch.topk(x, 3, d, largest=bool(largest), sorted=True)
                        put(f"topk.{stem}.k3l{largest}", v)
                        put(f"topk.{stem}.k3l{largest}.idx", i)
                    for op in ("max", "min"):
                        v, i = getattr(torch, op)(x, d)
                        put(f"{op}.{stem}.-", v)
                        put(f"{op}.{stem}.-.idx", i)

    x = long_input()
    for dims in (None, (0,), (1,)):
        dl = list(dims) if dims else []
        stem = f"long.c.{dims_name(dims)}"
        put(f"sum.{stem}.-", torch.sum(x, dl))
        put(f"mean.{stem}.-", torch.mean(x, dl))
        put(f"var.{stem}.c1", torch.var(x, dl))
        put(f"norm.{stem}.p2", torch.linalg.vector_norm(x, 2, dim=dims))
        put(f"logsumexp.{stem}.-", torch.logsumexp(x, dl or [0, 1]))
        put(f"amax.{stem}.-", torch.amax(x, dl))
    for d in (0, 1):
        stem = f"long.c.{d}"
        put(f"softmax.{stem}.every37", torch.softmax(x, d)[:, ::37])
        put(f"log_softmax.{stem}.every37", torch.log_softmax(x, d)[:, ::37])
        put(f"cumsum.{stem}.every37", torch.cumsum(x, d)[:, ::37])
    save_file(out, str(pathlib.Path(out_dir) / "reduce.safetensors"))


if __name__ == "__main__":
    make(pathlib.Path(__file__).resolve().parent)
