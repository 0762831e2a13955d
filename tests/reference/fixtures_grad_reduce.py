"""PyTorch reference gradients for the reduction family (tests/test_grad_reduce.cpp).

Each case "<name>" stores its input "<name>.x", the gradient fed to the output "<name>.g" (for
var_mean also "<name>.g2", the mean's) and torch.autograd's gradient of the input "<name>.grad".
All float64; the op and its arguments per case are listed in CASES (and mirrored in the C++ test).
Inputs with zeros (prod, cumprod, norm) and ties (amax, max) test PyTorch's special cases.
"""
import pathlib

import torch
from safetensors.torch import save_file


def _inputs(gen):
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)
    zeros_rows = r(3, 4)
    zeros_rows[1, 2] = 0.0  # one zero
    zeros_rows[2, 0] = 0.0  # two zeros
    zeros_rows[2, 3] = 0.0
    one_zero = r(2, 3)
    one_zero[1, 1] = 0.0
    ties = torch.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], dtype=torch.float64)
    zero_row = r(3, 4)
    zero_row[1] = 0.0
    return r, zeros_rows, one_zero, ties, zero_row


def _cases(gen):
    r, zeros_rows, one_zero, ties, zero_row = _inputs(gen)
    vn = torch.linalg.vector_norm
    return {
        "prod_dim1": (r(3, 4), lambda x: x.prod(1)),
        "prod_all_zero": (one_zero, lambda x: x.prod()),
        "prod_zeros": (zeros_rows, lambda x: x.prod(1, keepdim=True)),
        "var_dims": (r(3, 4, 2), lambda x: x.var((0, 2), correction=1, keepdim=True)),
        "std_dim": (r(3, 4), lambda x: x.std(1, correction=0)),
        "amax_ties": (ties, lambda x: x.amax(1)),
        "amax_all_ties": (ties, lambda x: x.amax()),
        "amin_dims": (r(2, 3, 2), lambda x: x.amin((0, 2))),
        "max_all_ties": (ties, lambda x: x.max()),
        "min_all": (r(2, 3), lambda x: x.min()),
        "max_dim": (r(3, 4), lambda x: x.max(1).values),
        "min_dim_keep": (r(3, 4), lambda x: x.min(0, keepdim=True).values),
        "norm1": (r(3, 4), lambda x: vn(x, 1, dim=1)),
        "norm2_zero_row": (zero_row, lambda x: vn(x, 2, dim=1)),
        "norm3": (r(3, 4), lambda x: vn(x, 3, dim=(0, 1))),
        "norm1_5": (r(3, 4), lambda x: vn(x, 1.5, dim=0, keepdim=True)),
        "norm0_5": (r(3, 4), lambda x: vn(x, 0.5, dim=1)),
        "norm_inf": (r(3, 4), lambda x: vn(x, float("inf"), dim=1)),
        "norm_neginf": (r(3, 4), lambda x: vn(x, float("-inf"))),
        "norm0": (r(3, 4), lambda x: vn(x, 0, dim=1)),
        "logsumexp": (r(3, 4), lambda x: x.logsumexp(1)),
        "cumsum": (r(3, 4), lambda x: x.cumsum(0)),
        "cumprod": (r(3, 4), lambda x: x.cumprod(1)),
        "cumprod_zeros": (zeros_rows, lambda x: x.cumprod(1)),
        "topk": (r(3, 4), lambda x: x.topk(2, 1).values),
        "topk_smallest": (r(3, 4), lambda x: x.topk(2, 0, largest=False).values),
        "sort_desc": (r(3, 4), lambda x: x.sort(1, descending=True).values),
        "softmax": (r(3, 4), lambda x: x.softmax(1)),
        "log_softmax": (r(3, 4), lambda x: x.log_softmax(0)),
    }


def make(out_dir):
    gen = torch.Generator().manual_seed(321)
    out = {}
    for name, (x, fn) in _cases(gen).items():
        x = x.clone().requires_grad_()
        y = fn(x)
        g = torch.randn(y.shape, generator=gen, dtype=torch.float64)
        (grad,) = torch.autograd.grad(y, x, g, allow_unused=True, materialize_grads=True)  # norm0: None
        out[f"{name}.x"], out[f"{name}.g"], out[f"{name}.grad"] = x.detach(), g, grad
    x = torch.randn(3, 4, generator=gen, dtype=torch.float64).requires_grad_()
    v, m = torch.var_mean(x, 0, correction=1)
    gv, gm = torch.randn(v.shape, generator=gen, dtype=torch.float64), torch.randn(m.shape, generator=gen,
                                                                                 dtype=torch.float64)
    (grad,) = torch.autograd.grad((v, m), x, (gv, gm))
    out.update({"var_mean.x": x.detach(), "var_mean.g": gv, "var_mean.g2": gm, "var_mean.grad": grad})
    out = {k: v.contiguous() for k, v in out.items()}
    save_file(out, str(pathlib.Path(out_dir) / "grad_reduce.safetensors"))


if __name__ == "__main__":
    make(pathlib.Path(__file__).resolve().parent)
