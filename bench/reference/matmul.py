"""Twins of bench/workloads/matmul.cpp: square matmul in f32, f64 and bf16, PyTorch and JAX."""
SUITE = "cpu"
SIZES = (128, 256, 512, 1024, 2048)


def torch_matmul(n, dtype):
    import torch
    a, b = (torch.randn(n, n, dtype=getattr(torch, dtype)) for _ in range(2))
    return lambda: a @ b


def jax_matmul(n, dtype):
    import jax
    import jax.numpy as jnp
    k1, k2 = jax.random.split(jax.random.key(0))
    a, b = jax.random.normal(k1, (n, n), dtype), jax.random.normal(k2, (n, n), dtype)
    f = jax.jit(jnp.matmul)
    return lambda: f(a, b).block_until_ready()


WORKLOADS = {}
for _dt, _name in (("float32", "f32"), ("float64", "f64"), ("bfloat16", "bf16")):
    for _n in SIZES:
        WORKLOADS[f"matmul_{_name}/{_n}"] = {"torch": lambda n=_n, d=_dt: torch_matmul(n, d),
                                            "jax": lambda n=_n, d=_dt: jax_matmul(n, d)}
