"""Twins of bench/workloads/gpu.cpp (the gpu suite): each step ends with a device synchronisation, as the
Ember side does. PyTorch everywhere; JAX for matmul, elementwise, softmax, layer_norm and attention."""
SUITE = "gpu"
N256M = 1 << 28
DTYPES = {"bf16": "bfloat16", "f16": "float16", "tf32": "float32"}


def tf32(torch):
    """f32 products and convolutions on TF32 tensor cores, as bench_gpu sets Ember ("high")."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def torch_fn(kind, n=0, dtype="float32"):
    import torch
    import torch.nn.functional as F
    tf32(torch)
    dev, dt = "cuda", getattr(torch, dtype)
    if kind == "matmul":
        a, b = (torch.randn(n, n, device=dev, dtype=dt) for _ in range(2))
        f = lambda: a @ b  # noqa: E731
    elif kind in ("add", "mul", "exp", "gelu"):
        a, b = torch.randn(N256M, device=dev), torch.randn(N256M, device=dev)
        f = {"add": lambda: a + b, "mul": lambda: a * b, "exp": lambda: torch.exp(a), "gelu": lambda: F.gelu(a)}[kind]
    elif kind in ("softmax", "layer_norm"):
        a, w, b = torch.randn(16384, 4096, device=dev), torch.ones(4096, device=dev), torch.zeros(4096, device=dev)
        f = (lambda: torch.softmax(a, -1)) if kind == "softmax" else (lambda: F.layer_norm(a, (4096,), w, b))
    elif kind == "attention":
        q, k, v = (torch.randn(8, 12, 1024, 64, device=dev, dtype=torch.bfloat16) for _ in range(3))
        f = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
    elif kind == "attention_fwd_bwd":
        q, k, v = (torch.randn(8, 12, 1024, 64, device=dev, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        g = torch.randn(8, 12, 1024, 64, device=dev, dtype=torch.bfloat16)

        def f():
            q.grad = k.grad = v.grad = None
            F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(g)
    elif kind == "copy":
        a, c = torch.randn(N256M, device=dev), torch.empty(N256M, device=dev)
        f = lambda: c.copy_(a)  # noqa: E731
    elif kind == "cast_bf16":
        a = torch.randn(N256M, device=dev)
        f = lambda: a.to(torch.bfloat16)  # noqa: E731
    elif kind in ("softmax_fwd_bwd", "layer_norm_fwd_bwd"):
        x = torch.randn(8192, 4096, device=dev, requires_grad=True)
        g = torch.randn(8192, 4096, device=dev)
        w = torch.ones(4096, device=dev, requires_grad=True)
        b = torch.zeros(4096, device=dev, requires_grad=True)
        op = (lambda t: torch.softmax(t, -1)) if kind == "softmax_fwd_bwd" else (lambda t: F.layer_norm(t, (4096,), w, b))

        def f():
            x.grad = None
            (op(x) * g).sum().backward()
    elif kind == "cross_entropy_fwd_bwd":
        x = torch.randn(8192, 50304, device=dev, requires_grad=True)
        y = torch.randint(0, 50304, (8192,), device=dev)

        def f():
            x.grad = None
            F.cross_entropy(x, y).backward()
    elif kind.startswith("gpt2_124m"):
        f = torch_gpt2_124m(kind.endswith("compile"))
    else:
        f = torch_train(kind)

    def step():
        f()
        torch.cuda.synchronize()
    return step


def torch_gpt2_124m(compiled):
    """GPT-2 124M training step as examples/gpt2 trains it: batch 8 x 1024 tokens, bf16-mixed (autocast),
    fused AdamW (weight decay on matrices), gradient clipping at 1.0; eager or under torch.compile."""
    import torch
    import models
    torch.manual_seed(0)
    m = models.Gpt2().cuda()
    decay = [p for p in m.parameters() if p.dim() >= 2]
    rest = [p for p in m.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), fused=True)
    x, y = (torch.randint(0, 50257, (8, 1024), device="cuda") for _ in range(2))
    fwd = torch.compile(m) if compiled else m

    def step():
        with torch.autocast("cuda", torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(fwd(x).flatten(0, -2), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def torch_train(kind):
    import torch
    import models
    torch.manual_seed(0)
    dev = "cuda"
    if kind.startswith("gpt2"):  # bf16-mixed: forward and loss under autocast, as the Ember side
        m = models.Gpt(**models.GPT2).to(dev)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
        x, y = (torch.randint(0, 50257, (8, 1024), device=dev) for _ in range(2))

        def gpt2_step():
            with torch.autocast("cuda", torch.bfloat16, enabled=kind == "gpt2_bf16_mixed"):
                loss = torch.nn.functional.cross_entropy(m(x).flatten(0, -2), y.flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
        return gpt2_step
    m, opt, x, y = {
        "mlp": lambda: (models.mlp(), "sgd", torch.randn(128, 784), torch.randint(0, 10, (128,))),
        "lenet": lambda: (models.lenet(), "adam", torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))),
        "resnet": lambda: (models.ResNet(), "sgd", torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))),
        "chargpt": lambda: (models.Gpt(**models.CHAR_GPT), "adamw", torch.randint(0, 65, (32, 64)),
                            torch.randint(0, 65, (32, 64))),
    }[kind]()
    m = m.to(dev)
    opt = {"sgd": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9), "adam": lambda p: torch.optim.Adam(p, lr=1e-3),
           "adamw": lambda p: torch.optim.AdamW(p, lr=1e-3)}[opt](m.parameters())
    return models.train_step(m, opt, x.to(dev), y.to(dev))


def torch_graphed(kind):
    """torch_train's step captured into a torch.cuda.CUDAGraph (warm-up on a side stream, capturable
    optimizer state as torch's docs show) and replayed."""
    import torch
    import torch.nn.functional as F
    import models
    torch.manual_seed(0)
    tf32(torch)
    dev = "cuda"
    m, opt, x, y = {
        "mlp": lambda: (models.mlp(), "sgd", torch.randn(128, 784), torch.randint(0, 10, (128,))),
        "lenet": lambda: (models.lenet(), "adam", torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))),
        "chargpt": lambda: (models.Gpt(**models.CHAR_GPT), "adamw", torch.randint(0, 65, (32, 64)),
                            torch.randint(0, 65, (32, 64))),
    }[kind]()
    m = m.to(dev)
    x, y = x.to(dev), y.to(dev)
    opt = {"sgd": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
           "adam": lambda p: torch.optim.Adam(p, lr=1e-3, capturable=True),
           "adamw": lambda p: torch.optim.AdamW(p, lr=1e-3, capturable=True)}[opt](m.parameters())

    def step():
        loss = F.cross_entropy(m(x).flatten(0, -2), y.flatten())
        loss.backward()
        opt.step()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            opt.zero_grad(set_to_none=False)
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=False)
    with torch.cuda.graph(graph):
        opt.zero_grad(set_to_none=False)
        step()

    def replay():  # waits for the device, as every step here does (and Ember's)
        graph.replay()
        torch.cuda.synchronize()
    return replay


def jax_fn(kind, n=0, dtype="float32"):
    import jax
    import jax.numpy as jnp
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    if kind == "matmul":
        args = (jax.random.normal(k1, (n, n), dtype), jax.random.normal(k2, (n, n), dtype))
        f = lambda a, b: jnp.matmul(a, b, precision="tensorfloat32" if dtype == "float32" else None)  # noqa: E731
    elif kind in ("add", "mul", "exp", "gelu"):
        args = (jax.random.normal(k1, (N256M,)), jax.random.normal(k2, (N256M,)))
        f = {"add": jnp.add, "mul": jnp.multiply, "exp": lambda a, _: jnp.exp(a),
             "gelu": lambda a, _: jax.nn.gelu(a, approximate=False)}[kind]
    elif kind == "softmax":
        args, f = (jax.random.normal(k1, (16384, 4096)),), lambda a: jax.nn.softmax(a, -1)
    elif kind == "layer_norm":
        args = (jax.random.normal(k1, (16384, 4096)),)

        def f(x):
            mu = x.mean(-1, keepdims=True)
            return (x - mu) * jax.lax.rsqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
    else:  # attention, JAX's layout (batch, tokens, heads, head size)
        args = tuple(jax.random.normal(k, (8, 1024, 12, 64), jnp.bfloat16) for k in (k1, k2, k3))
        f = lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
    f = jax.jit(f)
    return lambda: f(*args).block_until_ready()


WORKLOADS = {}
for _name, _dt in DTYPES.items():
    for _n in (1024, 4096, 8192):
        WORKLOADS[f"cuda_matmul_{_name}/{_n}"] = {"torch": lambda n=_n, d=_dt: torch_fn("matmul", n, d),
                                                 "jax": lambda n=_n, d=_dt: jax_fn("matmul", n, d)}
for _k in ("add", "mul", "exp", "gelu"):
    WORKLOADS[f"cuda_{_k}_256M"] = {"torch": lambda k=_k: torch_fn(k), "jax": lambda k=_k: jax_fn(k)}
for _k, _name in (("softmax", "softmax_16384x4096"), ("layer_norm", "layer_norm_16384x4096"),
                  ("attention", "attention_bf16")):
    WORKLOADS[f"cuda_{_name}"] = {"torch": lambda k=_k: torch_fn(k), "jax": lambda k=_k: jax_fn(k)}
for _k, _name in (("copy", "copy_256M"), ("cast_bf16", "cast_bf16_256M"),
                  ("softmax_fwd_bwd", "softmax_fwd_bwd_8192x4096"), ("layer_norm_fwd_bwd", "layer_norm_fwd_bwd_8192x4096"),
                  ("cross_entropy_fwd_bwd", "cross_entropy_fwd_bwd_8192x50304"),
                  ("attention_fwd_bwd", "attention_fwd_bwd_bf16"),
                  ("attention_fwd_bwd", "attention_fwd_bwd_bf16_ember"),
                  ("attention_fwd_bwd", "attention_fwd_bwd_bf16_cudnn")):
    WORKLOADS[f"cuda_{_name}"] = {"torch": lambda k=_k: torch_fn(k)}
for _k, _name in (("gpt2", "gpt2_f32_step"), ("gpt2_bf16_mixed", "gpt2_bf16_mixed_step"), ("mlp", "mlp_sgd_step"),
                  ("lenet", "lenet_adam_step"), ("resnet", "resnet_sgd_step"), ("chargpt", "chargpt_adamw_step")):
    WORKLOADS[f"cuda_{_name}"] = {"torch": lambda k=_k: torch_fn(k)}
# Ember's CUDA-graph steps against PyTorch eager (the goal) and torch.cuda.graphs (captured the same way).
for _k, _name in (("mlp", "mlp_sgd_step"), ("lenet", "lenet_adam_step"), ("chargpt", "chargpt_adamw_step")):
    WORKLOADS[f"cuda_{_name}_graph"] = {"torch": lambda k=_k: torch_fn(k),
                                        "torch_cuda_graph": lambda k=_k: torch_graphed(k)}
WORKLOADS["cuda_gpt2_124m_step"] = {"torch": lambda: torch_fn("gpt2_124m"),
                                   "torch_compile": lambda: torch_fn("gpt2_124m_compile")}
