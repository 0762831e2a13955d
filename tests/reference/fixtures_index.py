"""Reference values for indexing and copying shape ops: gather, scatter(_add), index_add, index_select,
masked_select/fill, take_along_dim, one_hot, embedding, pad, cat, stack, repeat, flip."""
import torch
import torch.nn.functional as F
from safetensors.torch import save_file


def make(out_dir):
    g = torch.Generator().manual_seed(0)

    def randn(*shape, dtype=torch.float32):
        return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)

    def randint(high, *shape):
        return torch.randint(0, high, shape, generator=g, dtype=torch.int64)

    t = {}
    # gather along each dim of a 3-d input; the index is smaller than the input off the gathered dim
    x = randn(4, 5, 6)
    t["x3"] = x
    for d, shape in enumerate([(3, 4, 5), (4, 7, 6), (2, 5, 9)]):
        idx = randint(x.shape[d], *shape)
        t[f"gather.{d}.index"] = idx
        t[f"gather.{d}.out"] = torch.gather(x, d, idx)
    # scatter_add / scatter with many duplicate indices, on each dim of a 2-d tensor
    base = randn(5, 6)
    t["base"] = base
    for d, shape in enumerate([(8, 6), (5, 9)]):
        idx = randint(base.shape[d], *shape)
        src = randn(*shape)
        t[f"scatter_add.{d}.index"] = idx
        t[f"scatter_add.{d}.src"] = src
        t[f"scatter_add.{d}.out"] = base.scatter_add(d, idx, src)
    # scatter (assign) with a permutation per row, so the result does not depend on write order
    perm = torch.stack([torch.randperm(6, generator=g) for _ in range(5)])[:, :4]
    src = randn(5, 4)
    t["scatter.index"], t["scatter.src"] = perm, src
    t["scatter.out"] = base.scatter(1, perm, src)
    # index_add with duplicates and alpha, and index_select, on dims 0 and 1
    idx0 = torch.tensor([4, 0, 4, 2, 4, 1, 0], dtype=torch.int64)
    src0 = randn(7, 6)
    t["index_add.0.index"], t["index_add.0.src"] = idx0, src0
    t["index_add.0.out"] = base.index_add(0, idx0, src0, alpha=2.5)
    idx1 = torch.tensor([5, 5, 0, 3], dtype=torch.int64)
    src1 = randn(5, 4)
    t["index_add.1.index"], t["index_add.1.src"] = idx1, src1
    t["index_add.1.out"] = base.index_add(1, idx1, src1, alpha=-1.0)
    t["index_select.1.out"] = x.index_select(1, idx1.clamp(max=4))
    t["index_select.1.index"] = idx1.clamp(max=4)
    # masked_select with the mask broadcasting against the tensor (both ways), masked_fill
    m = torch.rand(3, 1, 6, generator=g) > 0.5
    y = randn(4, 6)
    t["masked.mask"], t["masked.y"] = m, y
    t["masked_select.out"] = torch.masked_select(y, m)
    m2 = torch.rand(4, 6, generator=g) > 0.5
    t["masked.mask2"] = m2
    t["masked_fill.out"] = y.masked_fill(m2, -3.5)
    # take_along_dim with the sorting permutation (a sort), and with broadcasting
    t["take_along_dim.sorted"] = torch.take_along_dim(y, y.argsort(dim=1), 1)
    t["take_along_dim.argsort"] = y.argsort(dim=1)
    t["one_hot.index"] = randint(5, 2, 3)
    t["one_hot.out"] = F.one_hot(t["one_hot.index"], 7)
    w = randn(6, 3)
    t["embedding.weight"], t["embedding.index"] = w, randint(6, 2, 4)
    t["embedding.out"] = F.embedding(t["embedding.index"], w)
    # pad: growing, cropping and mixed, with a fill value
    for name, p in {"a": (1, 2), "b": (1, 0, 2, 1), "c": (-1, 1, 0, -1), "d": (2, -3, 1, 1, 0, 1)}.items():
        t[f"pad.{name}"] = F.pad(x, p, value=1.5)
    # cat with dtype promotion (f32 + f64 + i32), stack, repeat, flip
    a, b, c = randn(2, 3), randn(4, 3, dtype=torch.float64), randint(9, 1, 3).to(torch.int32)
    t["cat.a"], t["cat.b"], t["cat.c"] = a, b, c
    t["cat.0"] = torch.cat([a, b, c], 0)
    t["cat.1"] = torch.cat([a, a.to(torch.float16), a[:, :1]], 1)
    t["stack.1"] = torch.stack([a, a * 2, a * 3], 1)
    t["repeat"] = a.repeat(2, 1, 3)
    t["flip.02"] = x.flip(0, 2)
    t["flip.1"] = x.flip(1)
    save_file({k: v.contiguous() for k, v in t.items()}, str(out_dir / "index.safetensors"))


if __name__ == "__main__":
    import pathlib

    make(pathlib.Path(__file__).resolve().parent)
