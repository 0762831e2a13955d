"""Reference gradients for the linalg, convolution and pooling ops, computed by torch autograd in float64.

Each case "<case>" stores its inputs ("<case>.x", "<case>.w", ...), the upstream gradient "<case>.gy",
the forward result "<case>.out" and the gradients "<case>.gx", "<case>.gw", ... The op arguments are
stated again in tests/test_grad_nn.cpp next to the case name.
"""
import torch
import torch.nn.functional as F
from safetensors.torch import save_file


def make(out_dir):
    g = torch.Generator().manual_seed(3)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    t = {}

    def case(name, fn, **inputs):
        leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
        out = fn(**leaves)
        gy = randn(*out.shape)
        grads = torch.autograd.grad(out, list(leaves.values()), gy)
        for k, v in inputs.items():
            t[f"{name}.{k}"] = v
        t[f"{name}.out"] = out.detach()
        t[f"{name}.gy"] = gy
        for k, gk in zip(leaves, grads):
            t[f"{name}.g{k}"] = gk

    # conv2d: groups=2, stride 2, padding 1, dilation 2, bias.
    case("conv2d", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, dilation=2, groups=2),
         x=randn(2, 4, 7, 6), w=randn(6, 2, 3, 3), b=randn(6))
    # conv2d: stride (3, 2), padding (1, 0), dilation (1, 2), no bias (the input gradient needs output padding).
    case("conv2d_asym", lambda x, w: F.conv2d(x, w, stride=(3, 2), padding=(1, 0), dilation=(1, 2)),
         x=randn(2, 3, 8, 9), w=randn(2, 3, 2, 3))
    # conv1d: groups=2, stride 2, padding 2, bias; unbatched.
    case("conv1d", lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=2, groups=2),
         x=randn(4, 9), w=randn(4, 2, 3), b=randn(4))
    # conv_transpose2d: stride (2, 1), padding (1, 0), output_padding (1, 0), groups 2, dilation (1, 2), bias.
    case("conv_transpose2d",
         lambda x, w, b: F.conv_transpose2d(x, w, b, stride=(2, 1), padding=(1, 0), output_padding=(1, 0), groups=2,
                                            dilation=(1, 2)),
         x=randn(2, 4, 5, 4), w=randn(4, 3, 3, 2), b=randn(6))
    # conv_transpose2d: stride 1, dilation 2, output_padding 1 (larger than the stride).
    case("conv_transpose2d_dil",
         lambda x, w: F.conv_transpose2d(x, w, stride=1, padding=1, output_padding=1, dilation=2),
         x=randn(1, 2, 4, 3), w=randn(2, 3, 2, 2))
    # conv_transpose1d: stride 3, padding 1, output_padding 2, unbatched, bias.
    case("conv_transpose1d", lambda x, w, b: F.conv_transpose1d(x, w, b, stride=3, padding=1, output_padding=2),
         x=randn(4, 6), w=randn(4, 2, 3), b=randn(2))
    # matmul with broadcast batch dims, and the batched x 1-D and 1-D x batched forms.
    case("matmul_bcast", lambda a, b: torch.matmul(a, b), a=randn(2, 1, 3, 4), b=randn(3, 4, 5))
    case("matmul_mv", lambda a, b: torch.matmul(a, b), a=randn(2, 3, 4), b=randn(4))
    case("matmul_vm", lambda a, b: torch.matmul(a, b), a=randn(4), b=randn(2, 4, 3))
    case("addmm", lambda c, a, b: torch.addmm(c, a, b, beta=0.5, alpha=2.0), c=randn(4), a=randn(3, 5),
         b=randn(5, 4))
    # Pools on [2, 3, 7, 9].
    xp = randn(2, 3, 7, 9)
    case("max_pool2d", lambda x: F.max_pool2d(x, (3, 2), stride=(2, 3), padding=1, dilation=(1, 2), ceil_mode=True),
         x=xp)
    case("avg_pool2d", lambda x: F.avg_pool2d(x, (3, 2), stride=2, padding=1, ceil_mode=True), x=xp)
    case("avg_pool2d_nopad",
         lambda x: F.avg_pool2d(x, 3, stride=(2, 3), padding=(1, 1), ceil_mode=True, count_include_pad=False), x=xp)
    case("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, (3, 4)), x=xp)
    case("adaptive_avg_pool2d_up", lambda x: F.adaptive_avg_pool2d(x, (5, 11)), x=xp[:, :, :4, :6].contiguous())

    save_file({k: v.detach().clone().contiguous() for k, v in t.items()}, f"{out_dir}/grad_nn.safetensors")


if __name__ == "__main__":
    import pathlib

    make(pathlib.Path(__file__).resolve().parent)
