"""Runs one reference workload in a fresh process for bench/compare: sets it up, prints a ready line, then
answers each line "<min_time>" on stdin with {"seconds": time per step, "peak_mb": peak memory} as JSON.

Usage: worker.py WORKLOAD --framework torch|torch_compile|torch_cuda_graph|jax --threads N
Peak memory on CPU is the resident-set growth from just before setup (after the imports) to the high-water
mark; on the GPU, the framework's peak device allocation.
"""
import argparse
import gc
import importlib
import json
import os
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
FAMILIES = ("matmul", "elementwise", "reduce", "conv2d", "overhead", "train", "gpu")


def registry():
    """Every reference workload: name -> (suite, {framework: factory})."""
    out = {}
    for fam in FAMILIES:
        mod = importlib.import_module(fam)
        for name, impls in mod.WORKLOADS.items():
            out[name] = (mod.SUITE, impls)
    return out


def status_kib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])
    return 0


class CpuPeak:
    """VmHWM growth: writing 5 to /proc/self/clear_refs resets the high-water mark to the current size."""

    def __init__(self):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        self.base = status_kib("VmRSS:")

    def mb(self):
        return (status_kib("VmHWM:") - self.base) / 1024


class GpuPeak:
    def __init__(self, framework):
        self.framework = "torch" if framework in ("torch_compile", "torch_cuda_graph") else framework
        if self.framework == "torch":
            import torch
            torch.cuda.reset_peak_memory_stats()

    def mb(self):
        if self.framework == "torch":
            import torch
            return torch.cuda.max_memory_allocated() / 2 ** 20
        import jax
        return jax.devices()[0].memory_stats().get("peak_bytes_in_use", 0) / 2 ** 20


def timed(step, n):
    gc.disable()
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    dt = time.perf_counter() - t0
    gc.enable()
    return dt


def measure(step, min_time):
    """Mean time per step over about min_time seconds, after an auto-ranging warm-up (as timeit does); the
    cost of the Python loop and call, measured with an empty step, is taken off."""
    n = 1
    while (dt := timed(step, n)) < min_time / 4:
        n = n * 2 if dt < min_time / 40 else max(n + 1, int(n * min_time / 4 / dt * 1.2))
    reps = max(1, round(n * min_time / dt))
    empty = timed(lambda: None, reps) / reps
    return max(timed(step, reps) / reps - empty, 0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload")
    ap.add_argument("--framework", choices=("torch", "torch_compile", "torch_cuda_graph", "jax"), default="torch")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    suite, impls = registry()[args.workload]
    if args.framework in ("torch", "torch_compile", "torch_cuda_graph"):
        import torch
        torch.set_num_threads(args.threads)
        version = torch.__version__
    else:
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        import jax
        jax.config.update("jax_enable_x64", "f64" in args.workload)
        if suite == "cpu":
            jax.config.update("jax_platforms", "cpu")
        version = jax.__version__
    peak = GpuPeak(args.framework) if suite == "gpu" else CpuPeak()
    step = impls[args.framework]()
    step()  # the first call compiles (torch.compile is lazy) or captures: part of the setup, not of round 1
    print(json.dumps({"ready": True, "version": version}), flush=True)
    for line in sys.stdin:
        seconds = measure(step, float(line))
        print(json.dumps({"seconds": seconds, "peak_mb": peak.mb()}), flush=True)


if __name__ == "__main__":
    main()
