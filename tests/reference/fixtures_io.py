"""Fixture for tests/test_io.cpp: one tensor per dtype written by safetensors.torch.save_file.
Each holds arange(n) in its dtype (bool holds [True, False, True])."""
import os

import torch
from safetensors.torch import save_file


def make(out_dir):
    def ar(shape, dtype):
        n = 1
        for d in shape:
            n *= d
        return torch.arange(n).to(dtype).reshape(shape)

    tensors = {
        "f32": ar((2, 3), torch.float32),
        "f64": ar((4,), torch.float64),
        "f16": ar((3, 1), torch.float16),
        "bf16": ar((2, 2), torch.bfloat16),
        "i32": ar((5,), torch.int32),
        "i64": ar((2, 1, 2), torch.int64),
        "u8": ar((3,), torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(0.0),
        "empty": torch.zeros(0, 4),
    }
    save_file(tensors, os.path.join(out_dir, "io.safetensors"),
              metadata={"format": "pt", "source": "fixtures_io.py"})


if __name__ == "__main__":
    make(os.path.dirname(os.path.abspath(__file__)))
