"""Twins of bench/workloads/train.cpp: training steps of the CPU models (models.py), MLP inference, and the
MLP forward + backward on raw tensors; JAX twins of the MLP step and inference."""
SUITE = "cpu"


def torch_step(name):
    import torch
    import models
    torch.manual_seed(0)
    if name == "mlp_infer_b32":
        m, x = models.mlp(), torch.randn(32, 784)

        def infer():
            with torch.no_grad():
                m(x)
        return infer
    m, make_opt, x, y = {
        "mlp_sgd_step": lambda: (models.mlp(), "sgd", torch.randn(128, 784), torch.randint(0, 10, (128,))),
        "lenet_adam_step": lambda: (models.lenet(), "adam", torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))),
        "resnet_sgd_step": lambda: (models.ResNet(), "sgd", torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))),
        "chargpt_adamw_step": lambda: (models.Gpt(**models.CHAR_GPT), "adamw", torch.randint(0, 65, (32, 64)),
                                       torch.randint(0, 65, (32, 64))),
    }[name]()
    opt = {"sgd": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9), "adam": lambda p: torch.optim.Adam(p, lr=1e-3),
           "adamw": lambda p: torch.optim.AdamW(p, lr=1e-3)}[make_opt](m.parameters())
    return models.train_step(m, opt, x, y)


def torch_mlp_fwd_bwd():
    import torch
    torch.manual_seed(0)
    p = []
    for i, o in ((784, 1024), (1024, 1024), (1024, 10)):
        p += [(torch.randn(i, o) / i ** 0.5).requires_grad_(), torch.zeros(o, requires_grad=True)]
    x, y = torch.randn(128, 784), torch.randint(0, 10, (128, 1))

    def step():
        h = torch.relu(x @ p[0] + p[1])
        h = torch.relu(h @ p[2] + p[3])
        loss = -torch.log_softmax(h @ p[4] + p[5], 1).gather(1, y).mean()
        loss.backward()
        for t in p:
            t.grad = None
    return step


def jax_mlp(train):
    """The MLP as a jitted function: SGD with momentum 0.9 (PyTorch's form) on mean cross-entropy, or inference."""
    import jax
    import jax.numpy as jnp
    keys = jax.random.split(jax.random.key(0), 8)
    params = []
    for k, (i, o) in zip(keys, ((784, 1024), (1024, 1024), (1024, 10))):
        bound = 1 / i ** 0.5
        params += [jax.random.uniform(k, (i, o), minval=-bound, maxval=bound), jnp.zeros(o)]

    def forward(p, x):
        h = jax.nn.relu(x @ p[0] + p[1])
        h = jax.nn.relu(h @ p[2] + p[3])
        return h @ p[4] + p[5]

    if not train:
        x = jax.random.normal(keys[6], (32, 784))
        f = jax.jit(forward)
        return lambda: f(params, x).block_until_ready()

    def loss_fn(p, x, y):
        return -jnp.take_along_axis(jax.nn.log_softmax(forward(p, x)), y[:, None], 1).mean()

    @jax.jit
    def step(p, buf, x, y):
        grads = jax.grad(loss_fn)(p, x, y)
        buf = [0.9 * b + g for b, g in zip(buf, grads)]
        return [w - 0.01 * b for w, b in zip(p, buf)], buf

    x, y = jax.random.normal(keys[6], (128, 784)), jax.random.randint(keys[7], (128,), 0, 10)
    state = [params, [jnp.zeros_like(w) for w in params]]

    def run():
        state[0], state[1] = step(state[0], state[1], x, y)
        jax.block_until_ready(state[0])
    return run


WORKLOADS = {n: {"torch": lambda n=n: torch_step(n)}
             for n in ("mlp_sgd_step", "mlp_infer_b32", "lenet_adam_step", "resnet_sgd_step", "chargpt_adamw_step")}
WORKLOADS["mlp_sgd_step"]["jax"] = lambda: jax_mlp(True)
WORKLOADS["mlp_infer_b32"]["jax"] = lambda: jax_mlp(False)
WORKLOADS["mlp_fwd_bwd"] = {"torch": torch_mlp_fwd_bwd}
