#!/usr/bin/env python3
"""Regenerates the PyTorch reference fixtures the C++ tests compare against.

Each fixtures_<family>.py next to this file has make(out_dir) writing <family>.safetensors.
Run: python3 tests/reference/make_fixtures.py [family ...]   (needs `pip install torch safetensors`).
The outputs are committed; CI never needs torch.
"""
import importlib
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent


def main(argv):
    sys.path.insert(0, str(HERE))
    families = argv or sorted(p.stem[len("fixtures_"):] for p in HERE.glob("fixtures_*.py"))
    for fam in families:
        mod = importlib.import_module(f"fixtures_{fam}")
        mod.make(HERE)
        out = HERE / f"{fam}.safetensors"
        print(f"{fam}: {out.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
