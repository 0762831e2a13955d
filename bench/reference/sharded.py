"""Twin of bench/workloads/sharded_step.cpp: the step (forward, backward, clip_grad_norm_ 1.0, AdamW) of the MLP
2048x6+10 at 8 examples per rank under torch DistributedDataParallel (gloo) with a plain AdamW ("ddp") and with
torch.distributed.optim.ZeroRedundancyOptimizer (ZeRO stage 1, "zero1"). Rank 0 prints one JSON line per
strategy: median ms per step, and per rank the median step, optimizer state MiB and peak RSS MiB (PyTorch
has no CPU allocator statistics). Usage: mpirun -np 2 python3 bench/reference/sharded.py [--strategies ddp,zero1]
[--steps 15] [--warmup 3] [--width 2048] [--depth 6] [--batch 8] [--threads 1]
"""
import argparse
import json
import os
import resource
import statistics
import time

import torch
import torch.distributed as dist
from torch.distributed.optim import ZeroRedundancyOptimizer


def mlp(width, depth):
    layers = []
    for _ in range(depth):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 10))


def run(strategy, args, rank, world):
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(mlp(args.width, args.depth))
    if strategy == "ddp":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        local = opt
    elif strategy == "zero1":
        opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.AdamW, lr=1e-4)
        local = opt.optim
    else:
        raise SystemExit(f"sharded.py: strategy must be ddp or zero1, got {strategy!r}")
    g = torch.Generator().manual_seed(1 + rank)
    x, y = torch.randn(args.batch, args.width, generator=g), torch.randint(0, 10, (args.batch,), generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        dist.barrier()
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    state = sum(t.numel() * t.element_size() for s in local.state.values() for t in s.values() if torch.is_tensor(t))
    mine = torch.tensor([statistics.median(times), state / 2**20,
                         resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024], dtype=torch.float64)
    every = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(every, mine)
    params = sum(p.numel() for p in model.parameters())
    if rank == 0:
        col = lambda k: [round(float(t[k]), 1) for t in every]  # noqa: E731
        print(json.dumps({"framework": "torch", "strategy": strategy, "world": world,
                          "model": f"MLP {args.width}x{args.depth}+10, batch {args.batch}/rank, AdamW, clip 1.0",
                          "params": params, "ms_per_step": round(statistics.median(times), 1),
                          "rank_ms_per_step": col(0), "optimizer_state_mib": col(1), "max_rss_mib": col(2)}),
              flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strategies", default="ddp,zero1")
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    world = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29534")
    dist.init_process_group("gloo", rank=rank, world_size=world)
    for s in args.strategies.split(","):
        run(s, args, rank, world)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
