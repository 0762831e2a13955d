"""Twin of bench/workloads/attention_cpu.cpp: torch's CPU scaled_dot_product_attention (whichever kernel torch
picks: its flash-attention CPU kernel for these shapes) forward + backward, best of --reps after a warm-up, on
[batch, heads, L, E] with L = S, float32. Prints one JSON line per length (PyTorch has no CPU allocator
statistics, so no peak memory). Usage: python3 bench/reference/attention_cpu.py [--lens 512,2048] [--heads 8]
[--dim 64] [--batch 1] [--reps 5] [--causal 0|1] [--threads 2]
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lens", default="512,2048")
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--causal", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    for n in (int(x) for x in a.lens.split(",")):
        shape = (a.batch, a.heads, n, a.dim)
        q, k, v = (torch.randn(shape, requires_grad=True) for _ in range(3))
        g = torch.randn(shape)

        def step():
            q.grad = k.grad = v.grad = None
            F.scaled_dot_product_attention(q, k, v, is_causal=bool(a.causal)).backward(g)

        step()
        best = float("inf")
        for _ in range(a.reps):
            t0 = time.perf_counter()
            step()
            best = min(best, time.perf_counter() - t0)
        print(json.dumps({"workload": "attention_cpu", "path": "torch", "batch": a.batch, "heads": a.heads,
                          "len": n, "dim": a.dim, "causal": bool(a.causal), "dtype": "float32",
                          "seconds": best, "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
