"""Twins of bench/workloads/reduce.cpp: sum of 16M floats, softmax and layer_norm over (4096, 1024)."""
SUITE = "cpu"


def torch_sum():
    import torch
    a = torch.rand(16 << 20)
    return lambda: a.sum()


def torch_softmax():
    import torch
    a = torch.randn(4096, 1024)
    return lambda: torch.softmax(a, -1)


def torch_layer_norm(backward=False):
    import torch
    a = torch.randn(4096, 1024, requires_grad=backward)
    w, b = torch.ones(1024, requires_grad=backward), torch.zeros(1024, requires_grad=backward)
    g = torch.randn(4096, 1024)
    if not backward:
        return lambda: torch.nn.functional.layer_norm(a, (1024,), w, b)

    def step():
        torch.nn.functional.layer_norm(a, (1024,), w, b).backward(g)
        a.grad = w.grad = b.grad = None
    return step


def jax_fn(name):
    import jax
    import jax.numpy as jnp
    k = jax.random.key(0)
    if name == "sum":
        a, f = jax.random.uniform(k, (16 << 20,)), jnp.sum
    elif name == "softmax":
        a, f = jax.random.normal(k, (4096, 1024)), lambda x: jax.nn.softmax(x, -1)
    else:
        w, b = jnp.ones(1024), jnp.zeros(1024)
        a = jax.random.normal(k, (4096, 1024))

        def f(x):
            mu = x.mean(-1, keepdims=True)
            var = ((x - mu) ** 2).mean(-1, keepdims=True)
            return (x - mu) * jax.lax.rsqrt(var + 1e-5) * w + b
    f = jax.jit(f)
    return lambda: f(a).block_until_ready()


WORKLOADS = {
    "sum_16M": {"torch": torch_sum, "jax": lambda: jax_fn("sum")},
    "softmax_4096x1024": {"torch": torch_softmax, "jax": lambda: jax_fn("softmax")},
    "layer_norm_4096x1024": {"torch": torch_layer_norm, "jax": lambda: jax_fn("layer_norm")},
    "layer_norm_fwd_bwd_4096x1024": {"torch": lambda: torch_layer_norm(backward=True)},
}
