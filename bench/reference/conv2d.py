"""Twins of bench/workloads/conv2d.cpp: conv2d 3x3 (32, 64, 32, 32) -> 64 channels, forward and backward."""
SUITE = "cpu"


def torch_conv(backward):
    import torch
    import torch.nn.functional as F
    x = torch.randn(32, 64, 32, 32, requires_grad=backward)
    w = (torch.randn(64, 64, 3, 3) * 0.05).requires_grad_(backward)
    b = torch.zeros(64, requires_grad=backward)
    g = torch.randn(32, 64, 32, 32)
    if not backward:
        return lambda: F.conv2d(x, w, b, 1, 1)

    def step():
        F.conv2d(x, w, b, 1, 1).backward(g)
        x.grad = w.grad = b.grad = None
    return step


WORKLOADS = {"conv2d_3x3_fwd": {"torch": lambda: torch_conv(False)},
             "conv2d_3x3_fwd_bwd": {"torch": lambda: torch_conv(True)}}
