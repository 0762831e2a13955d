#!/usr/bin/env python3
"""Writes the fuzzer's seed corpus (tests/fuzz/corpus/) with the Python safetensors package."""
import os

import numpy as np
from safetensors.numpy import save_file

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def main():
    os.makedirs(HERE, exist_ok=True)
    save_file({"x": np.array([1.0, -2.0], dtype=np.float32)}, os.path.join(HERE, "one_f32.safetensors"))
    save_file({
        "w": np.arange(6, dtype=np.float64).reshape(2, 3),
        "h": np.array([0.5, 1.5], dtype=np.float16),
        "i": np.array([-3], dtype=np.int32),
        "l": np.array(7, dtype=np.int64),
        "u": np.array([250, 1, 2], dtype=np.uint8),
    }, os.path.join(HERE, "dtypes_meta.safetensors"), metadata={"epoch": "2", "note": "caf\u00e9"})
    save_file({
        "empty": np.zeros((0, 4), dtype=np.float32),
        "mask": np.array([True, False, True]),
    }, os.path.join(HERE, "empty_bool.safetensors"))


if __name__ == "__main__":
    main()
