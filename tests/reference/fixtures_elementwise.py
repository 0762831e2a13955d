"""Reference values for elementwise ops: inputs x, y (with awkward values) and each op's output."""
import torch
from safetensors.torch import save_file


def make(out_dir):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, generator=g, dtype=torch.float64) * 3
    x[0, 0], x[0, 1], x[0, 2] = 0.0, 2.5, -2.5  # rounding ties
    pos = x.abs() + 0.1
    y = torch.randn(5, generator=g, dtype=torch.float64) * 2  # broadcasts against x
    y[2] = 0.75
    t = {"x": x, "pos": pos, "y": y}
    unary = {
        "neg": torch.neg, "abs": torch.abs, "sign": torch.sign, "exp": torch.exp, "exp2": torch.exp2,
        "expm1": torch.expm1, "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "tanh": torch.tanh,
        "sigmoid": torch.sigmoid, "relu": torch.relu, "gelu": torch.nn.functional.gelu,
        "gelu_tanh": lambda v: torch.nn.functional.gelu(v, approximate="tanh"), "silu": torch.nn.functional.silu,
        "softplus": torch.nn.functional.softplus, "erf": torch.erf, "floor": torch.floor, "ceil": torch.ceil,
        "round": torch.round, "trunc": torch.trunc, "leaky_relu": lambda v: torch.nn.functional.leaky_relu(v, 0.2),
        "clamp": lambda v: torch.clamp(v, -1.0, 2.0),
    }
    for name, f in unary.items():
        t[f"unary.{name}"] = f(x)
    for name, f in {"log": torch.log, "log2": torch.log2, "log1p": torch.log1p, "sqrt": torch.sqrt,
                    "rsqrt": torch.rsqrt, "reciprocal": torch.reciprocal}.items():
        t[f"pos.{name}"] = f(pos)
    binary = {
        "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
        "div_floor": lambda a, b: torch.div(a, b, rounding_mode="floor"),
        "div_trunc": lambda a, b: torch.div(a, b, rounding_mode="trunc"),
        "remainder": torch.remainder, "maximum": torch.maximum, "minimum": torch.minimum,
        "lerp": lambda a, b: torch.lerp(a, b.expand_as(a), 0.3),
    }
    for name, f in binary.items():
        t[f"binary.{name}"] = f(x, y)
    t["binary.pow"] = torch.pow(pos, y)
    t["binary.add_alpha"] = torch.add(x, y, alpha=2.5)
    t["ternary.addcmul"] = torch.addcmul(x, x, y, value=0.5)
    t["ternary.addcdiv"] = torch.addcdiv(x, x, pos, value=0.5)
    # integer semantics: Python-style floor division and remainder with negative operands
    a = torch.tensor([7, -7, 7, -7, 0, 5], dtype=torch.int64)
    b = torch.tensor([2, 2, -2, -2, 3, -5], dtype=torch.int64)
    t["int.a"], t["int.b"] = a, b
    t["int.div_floor"] = torch.div(a, b, rounding_mode="floor")
    t["int.div_trunc"] = torch.div(a, b, rounding_mode="trunc")
    t["int.remainder"] = torch.remainder(a, b)
    t["int.true_div"] = a / b
    # half and bfloat16 results of exp on the same inputs (rounding of the final result)
    t["f16.exp"] = torch.exp(x.to(torch.float16).clamp(-8, 8))
    t["bf16.exp"] = torch.exp(x.to(torch.bfloat16).clamp(-8, 8))
    t["f16.in"] = x.to(torch.float16).clamp(-8, 8)
    t["bf16.in"] = x.to(torch.bfloat16).clamp(-8, 8)
    save_file({k: v.contiguous() for k, v in t.items()}, str(out_dir / "elementwise.safetensors"))
