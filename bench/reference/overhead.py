"""Twins of bench/workloads/overhead.cpp: ops on 1-element tensors and the autograd tape on 100 tiny ops."""
SUITE = "cpu"


def tiny(kind):
    import torch
    a, b, m = torch.ones(1), torch.ones(1), torch.ones(4, 4)
    return {"add": lambda: a + b, "add_scalar": lambda: a + 1.0, "view": lambda: m.t()}[kind]


def chain(y):
    for _ in range(50):
        y = (y * 1.001).tanh()
    return y


def chain100(kind, n):
    import torch
    x = torch.rand(n, requires_grad=kind == "grad")
    if kind == "grad":
        def step():
            chain(x).sum().backward()
            x.grad = None
        return step
    if kind == "nograd":
        return lambda: chain(x).sum()
    outs, y = [], x
    for _ in range(50):
        y = (y * 1.001).tanh()
        outs.append(y)

    def manual():
        g = torch.ones_like(x)
        for o in reversed(outs):
            g = g * (1 - o * o) * 1.001
    return manual


WORKLOADS = {f"tiny_{k}": {"torch": lambda k=k: tiny(k)} for k in ("add", "add_scalar", "view")}
for _kind in ("grad", "nograd", "manual_backward"):
    for _n in (1, 64):
        WORKLOADS[f"chain100_{_kind}/{_n}"] = {"torch": lambda k=_kind, n=_n: chain100(k, n)}
