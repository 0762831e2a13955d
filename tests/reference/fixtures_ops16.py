"""Reference values for the structural ops of issue 16: einsum, advanced indexing (get and put),
interpolate, conv3d, 1-D pools and conv_transpose1d, with input gradients of sum(out * w)."""
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

# The C++ test (tests/test_einsum_indexing.cpp) lists the same equations in the same order.
EINSUM = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]),
    ("ij->ji", [(3, 4)]),
    ("...ij,...jk", [(2, 1, 3, 4), (5, 4, 2)]),
    ("i,i->", [(5,), (5,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("ijk->", [(2, 3, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("iij->j", [(3, 3, 4)]),
    ("ij,ij->ij", [(3, 4), (3, 4)]),
    ("i...->...", [(3, 2, 4)]),
    ("ji", [(3, 4)]),
    ("Ab,bc->Ac", [(2, 3), (3, 4)]),
    ("bij,jk->bik", [(2, 3, 4), (4, 5)]),
    ("ij,kj->", [(3, 4), (2, 4)]),
]


def make(out_dir):
    g = torch.Generator().manual_seed(16)

    def randn(*shape):
        return torch.randn(tuple(shape), generator=g, dtype=torch.float64)

    t = {}

    def with_grads(key, fn, inputs):
        leaves = [x.clone().requires_grad_() for x in inputs]
        out = fn(*leaves)
        w = randn(*out.shape)
        (out * w).sum().backward()
        t[f"{key}.out"] = out.detach().contiguous()
        t[f"{key}.w"] = w
        for i, x in enumerate(leaves):
            t[f"{key}.grad{i}"] = x.grad.contiguous()

    for i, (eq, shapes) in enumerate(EINSUM):
        ins = [randn(*s) for s in shapes]
        for k, x in enumerate(ins):
            t[f"einsum.{i}.in{k}"] = x
        with_grads(f"einsum.{i}", lambda *a, eq=eq: torch.einsum(eq, *a), ins)

    # Advanced indexing on x [4, 5, 6].
    x = randn(4, 5, 6)
    t["x"] = x
    idx = torch.tensor([[0, 2], [3, -1]])
    idx1 = torch.tensor([4, 0, 0, 2])
    ia = torch.tensor([[0], [2], [1]])
    ib = torch.tensor([[3, 1]])
    mask = torch.rand(4, 5, generator=g) > 0.5
    mask6 = torch.tensor([True, False, True, True, False, True])
    t.update({"idx": idx, "idx1": idx1, "ia": ia, "ib": ib, "mask": mask, "mask6": mask6})
    gets = {
        "get.idx": lambda y: y[idx],
        "get.slice_idx1": lambda y: y[:, idx1],
        "get.ia_ib": lambda y: y[ia, ib],
        "get.slice_ia_ib": lambda y: y[:, ia, ib],
        "get.ia_slice_ib": lambda y: y[ia, :, ib],
        "get.mask": lambda y: y[mask],
        "get.ellipsis_mask6": lambda y: y[..., mask6],
        "get.slice_none_idx1": lambda y: y[1:3, None, idx1],
        "get.int_slice_idx1": lambda y: y[0, :, idx1],
        "get.step_idx": lambda y: y[::2, idx1, 1:5:2],
    }
    for key, fn in gets.items():
        with_grads(key, fn, [x])
    v = randn(3, 2)
    t["put.v"] = v

    def put(y, key, v):
        y = y.clone()
        y[key] = v
        return y

    with_grads("put.mask_scalar", lambda y: put(y, mask, 0.5), [x])
    # y[:, ia, ib] = v: v [3, 2] broadcasts over the leading dim of y[:, ia, ib] [4, 3, 2].
    with_grads("put.slice_ia_ib", lambda y, v: put(y, (slice(None), ia, ib), v), [x, v])
    idxd = torch.tensor([3, 0, 3, -3, 3])  # duplicates add up
    u = randn(5, 5, 6)
    t["put.u"], t["idxd"] = u, idxd
    with_grads("put.idxd_accumulate", lambda y, u: y.index_put((idxd,), u, accumulate=True), [x, u])

    # interpolate
    x4 = randn(2, 3, 5, 7)
    x3 = randn(2, 3, 7)
    x5 = randn(1, 2, 3, 4, 5)
    t.update({"x4": x4, "x3": x3, "x5": x5})
    interp = {
        "interp.nearest_size": (x4, dict(size=(8, 11), mode="nearest")),
        "interp.nearest_scale2": (x4, dict(scale_factor=2.0, mode="nearest")),
        "interp.nearest_scale_odd": (x4, dict(scale_factor=(1.7, 0.6), mode="nearest")),
        "interp.nearest_exact": (x4, dict(size=(3, 9), mode="nearest-exact")),
        "interp.bilinear": (x4, dict(size=(8, 11), mode="bilinear", align_corners=False)),
        "interp.bilinear_ac": (x4, dict(size=(8, 11), mode="bilinear", align_corners=True)),
        "interp.bilinear_scale": (x4, dict(scale_factor=1.5, mode="bilinear", align_corners=False)),
        "interp.bilinear_down": (x4, dict(size=(3, 4), mode="bilinear", align_corners=False)),
        "interp.bilinear_scale_ac": (x4, dict(scale_factor=(2.3, 0.7), mode="bilinear", align_corners=True)),
        "interp.linear": (x3, dict(size=12, mode="linear", align_corners=False)),
        "interp.linear_ac": (x3, dict(size=12, mode="linear", align_corners=True)),
        "interp.nearest3": (x3, dict(scale_factor=2.5, mode="nearest")),
        "interp.trilinear": (x5, dict(size=(5, 6, 4), mode="trilinear", align_corners=False)),
    }
    for key, (inp, kw) in interp.items():
        with_grads(key, lambda y, kw=kw: F.interpolate(y, **kw), [inp])
    # float32 forward: positions computed in float, as PyTorch's CPU kernels do
    x4f = x4.float()
    t["x4f"] = x4f
    t["interp.f32_nearest.out"] = F.interpolate(x4f, scale_factor=(1.7, 0.6), mode="nearest")
    t["interp.f32_bilinear.out"] = F.interpolate(x4f, scale_factor=1.3, mode="bilinear", align_corners=False)

    # conv3d
    cx, cw, cb = randn(2, 4, 5, 6, 7), randn(6, 2, 3, 2, 3), randn(6)
    t.update({"conv3d.x": cx, "conv3d.w": cw, "conv3d.b": cb})
    with_grads("conv3d.a", lambda x, w, b: F.conv3d(x, w, b, stride=(2, 1, 2), padding=(1, 0, 1),
                                                     dilation=(1, 2, 1), groups=2), [cx, cw, cb])
    sx, sw = randn(1, 2, 4, 4, 4), randn(3, 2, 2, 2, 2)
    t.update({"conv3d.sx": sx, "conv3d.sw": sw})
    with_grads("conv3d.b", lambda x, w: F.conv3d(x, w), [sx, sw])

    # 1-D pools and conv_transpose1d
    px = randn(2, 3, 11)
    t["pool.x"] = px
    with_grads("pool.max", lambda x: F.max_pool1d(x, 3, 2, 1), [px])
    with_grads("pool.max_dil_ceil", lambda x: F.max_pool1d(x, 3, 2, 1, dilation=2, ceil_mode=True), [px])
    with_grads("pool.avg", lambda x: F.avg_pool1d(x, 4, 3, 2, count_include_pad=False), [px])
    with_grads("pool.avg_default", lambda x: F.avg_pool1d(x, 2), [px])
    with_grads("pool.adaptive", lambda x: F.adaptive_avg_pool1d(x, 4), [px])
    tx, tw, tb = randn(2, 4, 7), randn(4, 3, 3), randn(6)
    t.update({"convt1d.in.x": tx, "convt1d.in.w": tw, "convt1d.in.b": tb})
    with_grads("convt1d", lambda x, w, b: F.conv_transpose1d(x, w, b, stride=2, padding=1, output_padding=1,
                                                              groups=2), [tx, tw, tb])

    save_file({k: v.contiguous() for k, v in t.items()}, str(out_dir / "ops16.safetensors"))
