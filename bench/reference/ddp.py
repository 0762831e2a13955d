"""Twin of bench/workloads/ddp_step.cpp: the MLP 784-1024-1024-10 with SGD at a global batch of 128 under
torch DistributedDataParallel (gloo) over the ranks mpirun started, or alone in one process. Rank 0 prints
one JSON line: median ms per step and of one all_reduce of the gradients' size.
Usage: [mpirun -np N] python3 bench/reference/ddp.py [--steps 30] [--threads T]
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(__file__))
from models import mlp  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    world = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    model = mlp()
    if world > 1:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29533")
        dist.init_process_group("gloo", rank=rank, world_size=world)
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    local = 128 // world
    g = torch.Generator().manual_seed(1 + rank)
    x, y = torch.randn(local, 784, generator=g), torch.randint(0, 10, (local,), generator=g)

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    def barrier():
        if world > 1:
            dist.barrier()

    for _ in range(5):
        step()
    times = []
    for _ in range(args.steps):
        barrier()
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    numel = sum(p.numel() for p in model.parameters())
    grads = torch.zeros(numel)
    reduce = []
    for _ in range(10):
        barrier()
        t0 = time.perf_counter()
        if world > 1:
            dist.all_reduce(grads)
        reduce.append((time.perf_counter() - t0) * 1e3)
    if rank == 0:
        print(json.dumps({"framework": "torch", "world": world, "ms_per_step": round(statistics.median(times), 3),
                          "allreduce_ms": round(statistics.median(reduce), 3), "params": numel}))
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
