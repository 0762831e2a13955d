#!/usr/bin/env python3
"""Interop with the Python safetensors package: reads the files Ember wrote into DIR and writes
python.safetensors (and python_bf16.safetensors when torch is present) for Ember to check.
Values are formulas of the flat index, shared with tests/interop/interop.cpp."""
import os
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file


def flat(n, f, dtype):
    return np.array([f(i) for i in range(n)], dtype=dtype)


def expected():
    return {
        "f32": flat(12, lambda i: i * 0.5 - 2.0, np.float32).reshape(3, 4),
        "f64": flat(6, lambda i: i / 3.0, np.float64).reshape(2, 3),
        "f16": flat(5, lambda i: i * 0.25 - 0.5, np.float16),
        "i32": flat(4, lambda i: -7 * i + 3, np.int32),
        "i64": flat(4, lambda i: (1 << 40) + i, np.int64).reshape(2, 2),
        "u8": flat(6, lambda i: i * 50, np.uint8),
        "bool": flat(5, lambda i: i % 2 == 0, np.bool_),
        "scalar": np.array(3.25, dtype=np.float64),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def bf16_values():
    return [i - 1.5 for i in range(4)]


def check_ember_files(d):
    errors = []
    path = os.path.join(d, "ember.safetensors")
    got = load_file(path)
    want = expected()
    want["transposed"] = np.arange(6, dtype=np.float32).reshape(2, 3).T
    if set(got) != set(want):
        errors.append(f"names {sorted(got)} != {sorted(want)}")
    for name, w in want.items():
        g = got.get(name)
        if g is None:
            continue
        if g.dtype != w.dtype or g.shape != w.shape:
            errors.append(f"{name}: got {g.dtype}{g.shape}, want {w.dtype}{w.shape}")
        elif not np.array_equal(g, w):
            errors.append(f"{name}: values {g.ravel().tolist()} != {w.ravel().tolist()}")
    with safe_open(path, framework="np") as f:
        meta = f.metadata()
    if meta != {"framework": "ember", "note": "h\u00e9llo"}:
        errors.append(f"metadata {meta!r}")

    # The header must be padded to 8 bytes and the data must start right after it.
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    if n % 8 != 0:
        errors.append(f"header length {n} is not a multiple of 8")

    bf16_path = os.path.join(d, "ember_bf16.safetensors")
    try:
        import torch
        from safetensors.torch import load_file as torch_load
    except ImportError:
        print("skip bf16: torch is not installed")
    else:
        t = torch_load(bf16_path)["bf16"]
        if t.dtype != torch.bfloat16 or tuple(t.shape) != (2, 2):
            errors.append(f"bf16: got {t.dtype}{tuple(t.shape)}")
        elif t.float().flatten().tolist() != bf16_values():
            errors.append(f"bf16: values {t.float().flatten().tolist()}")
    return errors + check_model(d) + check_trainer_checkpoint(d)


# PyTorch's state_dict of the Net below: names, shapes and dtypes an Ember state_dict must reproduce.
TORCH_NET_STATE = {
    "features.0.weight": ((4, 1, 3, 3), np.float32), "features.0.bias": ((4,), np.float32),
    "features.1.weight": ((4,), np.float32), "features.1.bias": ((4,), np.float32),
    "features.1.running_mean": ((4,), np.float32), "features.1.running_var": ((4,), np.float32),
    "features.1.num_batches_tracked": ((), np.int64),
    "head.1.weight": ((5, 36), np.float32), "head.1.bias": ((5,), np.float32),
    "head.4.weight": ((3, 5), np.float32), "head.4.bias": ((3,), np.float32),
}


def torch_net():
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(36, 5), nn.GELU(), nn.Dropout(0.1), nn.Linear(5, 3))

    return Net()


def check_model(d):
    """Ember's state_dict has PyTorch's names and layouts; with torch, it loads and gives Ember's output."""
    errors = []
    sd = load_file(os.path.join(d, "model.safetensors"))
    if set(sd) != set(TORCH_NET_STATE):
        errors.append(f"model names {sorted(sd)} != {sorted(TORCH_NET_STATE)}")
    for name, (shape, dtype) in TORCH_NET_STATE.items():
        if name in sd and (sd[name].shape != shape or sd[name].dtype != dtype):
            errors.append(f"model {name}: got {sd[name].dtype}{sd[name].shape}, want {np.dtype(dtype)}{shape}")
    try:
        import torch
        import torch.nn as nn
        from safetensors.torch import load_file as torch_load
    except ImportError:
        print("skip model outputs: torch is not installed")
        return errors

    net = torch_net()
    net.load_state_dict(torch_load(os.path.join(d, "model.safetensors")))  # strict
    net.eval()
    io = torch_load(os.path.join(d, "model_io.safetensors"))
    with torch.no_grad():
        y = net.head(net.features(io["x"]))
    if not torch.allclose(y, io["y"], rtol=1e-5, atol=1e-6):
        errors.append(f"model output in PyTorch {y.tolist()} != Ember's {io['y'].tolist()}")
    return errors


def check_trainer_checkpoint(d):
    """A Trainer checkpoint: the weights under state_dict names (PyTorch loads them strictly once the
    "optimizer_states." entries are left out), Adam's state per parameter, the run state as JSON."""
    import json
    from safetensors import safe_open

    errors = []
    path = os.path.join(d, "trainer_checkpoint.safetensors")
    sd = load_file(path)
    weights = {k: v for k, v in sd.items() if not k.startswith("optimizer_states.")}
    if set(weights) != set(TORCH_NET_STATE):
        errors.append(f"checkpoint weights {sorted(weights)} != {sorted(TORCH_NET_STATE)}")
    with safe_open(path, framework="numpy") as f:
        state = json.loads(f.metadata()["ember_checkpoint"])
    if state.get("global_step") != 2 or state.get("format") != "ember-checkpoint":
        errors.append(f"checkpoint state: global_step {state.get('global_step')}, format {state.get('format')}")
    params = [k for k in TORCH_NET_STATE if "running" not in k and "num_batches" not in k]
    for i, name in enumerate(params):  # Adam's moments, parameters numbered in registration order
        for moment in ("exp_avg", "exp_avg_sq"):
            key = f"optimizer_states.0.state.{i}.{moment}"
            if key not in sd or sd[key].shape != TORCH_NET_STATE[name][0]:
                errors.append(f"checkpoint {key}: missing or not shaped like {name}")
    try:
        import torch
        from safetensors.torch import load_file as torch_load
    except ImportError:
        return errors
    net = torch_net()
    full = torch_load(path)
    net.load_state_dict({k: v for k, v in full.items() if not k.startswith("optimizer_states.")})  # strict
    net.eval()
    io = torch_load(os.path.join(d, "trained_io.safetensors"))
    with torch.no_grad():
        y = net.head(net.features(io["x"]))
    if not torch.allclose(y, io["y"], rtol=1e-5, atol=1e-6):
        errors.append(f"trained model output in PyTorch {y.tolist()} != Ember's {io['y'].tolist()}")
    return errors


def write_python_files(d):
    save_file(expected(), os.path.join(d, "python.safetensors"),
              metadata={"framework": "numpy", "note": "w\u00f6rld"})
    try:
        import torch
        from safetensors.torch import save_file as torch_save
    except ImportError:
        return
    t = torch.tensor(bf16_values(), dtype=torch.bfloat16).reshape(2, 2)
    torch_save({"bf16": t}, os.path.join(d, "python_bf16.safetensors"))


def main():
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} DIR", file=sys.stderr)
        return 2
    d = sys.argv[1]
    errors = check_ember_files(d)
    for e in errors:
        print(f"FAIL: {e}", file=sys.stderr)
    write_python_files(d)
    if not errors:
        print("python read the Ember-written files correctly")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
