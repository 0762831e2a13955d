"""Reference values for matrix products (matmul broadcasting cases, addmm, baddbmm) and convolutions
(conv1d/conv2d with stride, padding, dilation, groups, bias). Inputs and outputs in float64."""
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

# (a shape, b shape): every matmul rule, including 1-D operands and broadcast batch dims.
MATMUL = [
    ((5,), (5,)),
    ((3,), (3, 4)),
    ((2, 3), (3,)),
    ((2, 3), (3, 4)),
    ((5, 2, 3), (3, 4)),
    ((3,), (5, 3, 4)),
    ((5, 2, 3), (3,)),
    ((2, 1, 2, 3), (4, 3, 2)),
    ((1, 2, 3), (4, 3, 5)),
    ((4, 2, 3), (4, 3, 5)),
    ((2, 3), (2, 2, 3, 4)),
]

# conv1d: (N, C, L, O, K, stride, padding, dilation, groups, bias)
CONV1D = [
    (2, 3, 9, 4, 3, 1, 0, 1, 1, True),
    (2, 4, 10, 6, 3, 2, 1, 1, 2, False),
    (1, 2, 11, 3, 2, 1, 2, 3, 1, True),
    (3, 4, 7, 4, 3, 1, 1, 1, 4, True),  # depthwise
]
# conv2d: (N, C, H, W, O, kH, kW, stride, padding, dilation, groups, bias)
CONV2D = [
    (2, 3, 7, 6, 4, 3, 3, (1, 1), (0, 0), (1, 1), 1, True),
    (2, 3, 8, 7, 5, 3, 2, (2, 1), (1, 2), (1, 1), 1, False),
    (1, 4, 9, 9, 6, 3, 3, (1, 2), (2, 1), (2, 3), 2, True),
    (2, 6, 5, 6, 6, 3, 3, (2, 2), (1, 1), (1, 1), 6, True),  # depthwise
    (3, 4, 5, 5, 8, 1, 1, (1, 1), (0, 0), (1, 1), 1, True),  # 1x1: direct GEMM
    (2, 4, 6, 5, 6, 1, 1, (2, 2), (0, 0), (1, 1), 2, False),  # 1x1 strided: im2col
    (1, 2, 3, 4, 3, 4, 5, (1, 1), (1, 1), (1, 1), 1, True),  # kernel larger than the input, padded
]


def make(out_dir):
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    t = {}
    for i, (sa, sb) in enumerate(MATMUL):
        a, b = randn(*sa), randn(*sb)
        t[f"matmul.{i}.a"], t[f"matmul.{i}.b"], t[f"matmul.{i}.out"] = a, b, torch.matmul(a, b)

    inp, a, b = randn(4), randn(3, 5), randn(5, 4)
    t["addmm.input"], t["addmm.a"], t["addmm.b"] = inp, a, b
    t["addmm.out"] = torch.addmm(inp, a, b, beta=0.5, alpha=2.0)
    col = randn(3, 1)
    t["addmm.col"] = col
    t["addmm.col_out"] = torch.addmm(col, a, b, beta=-1.5, alpha=0.25)

    inp, a, b = randn(2, 3, 4), randn(2, 3, 5), randn(2, 5, 4)
    t["baddbmm.input"], t["baddbmm.a"], t["baddbmm.b"] = inp, a, b
    t["baddbmm.out"] = torch.baddbmm(inp, a, b, beta=0.5, alpha=2.0)
    row = randn(4)
    t["baddbmm.row"] = row
    t["baddbmm.row_out"] = torch.baddbmm(row, a, b, beta=1.0, alpha=-1.0)

    for i, (n, c, l, o, k, s, p, d, grp, bias) in enumerate(CONV1D):
        x, w = randn(n, c, l), randn(o, c // grp, k)
        bb = randn(o) if bias else None
        t[f"conv1d.{i}.x"], t[f"conv1d.{i}.w"] = x, w
        if bias:
            t[f"conv1d.{i}.bias"] = bb
        t[f"conv1d.{i}.out"] = F.conv1d(x, w, bb, stride=s, padding=p, dilation=d, groups=grp)
    for i, (n, c, h, wd, o, kh, kw, s, p, d, grp, bias) in enumerate(CONV2D):
        x, w = randn(n, c, h, wd), randn(o, c // grp, kh, kw)
        bb = randn(o) if bias else None
        t[f"conv2d.{i}.x"], t[f"conv2d.{i}.w"] = x, w
        if bias:
            t[f"conv2d.{i}.bias"] = bb
        t[f"conv2d.{i}.out"] = F.conv2d(x, w, bb, stride=s, padding=p, dilation=d, groups=grp)
    save_file({k: v.contiguous() for k, v in t.items()}, str(out_dir / "linalg.safetensors"))
