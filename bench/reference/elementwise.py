"""Twins of bench/workloads/elementwise.cpp: ops on 16M floats into a fresh tensor, PyTorch and JAX."""
SUITE = "cpu"
N = 16 << 20


def torch_op(op):
    import torch
    a, b = torch.rand(N), torch.rand(N)
    if op == "gelu":
        a = torch.randn(N)
    return {"copy": lambda: b.copy_(a), "add": lambda: a + b, "add_inplace": lambda: a.add_(b), "mul": lambda: a * b,
            "exp": lambda: torch.exp(a), "gelu": lambda: torch.nn.functional.gelu(a)}[op]


def jax_op(op):
    import jax
    import jax.numpy as jnp
    k1, k2 = jax.random.split(jax.random.key(0))
    a, b = jax.random.uniform(k1, (N,)), jax.random.uniform(k2, (N,))
    if op == "gelu":
        a = jax.random.normal(k1, (N,))
    f = jax.jit({"add": jnp.add, "mul": jnp.multiply, "exp": lambda x, _: jnp.exp(x),
                 "gelu": lambda x, _: jax.nn.gelu(x, approximate=False)}[op])
    return lambda: f(a, b).block_until_ready()


WORKLOADS = {f"{op}_16M": {"torch": lambda op=op: torch_op(op)} for op in ("copy", "add", "add_inplace", "mul",
                                                                             "exp", "gelu")}
for _op in ("add", "mul", "exp", "gelu"):
    WORKLOADS[f"{_op}_16M"]["jax"] = lambda op=_op: jax_op(op)
