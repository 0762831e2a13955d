#!/usr/bin/env bash
# ddp vs ddp_sharded (ZeRO stage 1 and 2) over two processes beside PyTorch's DDP and ZeroRedundancyOptimizer
# (gloo): the AdamW step of the MLP 2048x6+10 (25 M parameters, Adam state 192 MiB) at 8 examples per rank.
# Each strategy runs in its own mpirun (so one's memory cannot show in another's peak), ROUNDS times,
# interleaved. Prints one JSON line per run. Usage: bench/sharded.sh [BUILD_DIR (default build)] [ROUNDS (1)]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${1:-build} rounds=${2:-1}
mpi=(mpirun -np 2 --oversubscribe --bind-to none)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
for _ in $(seq "$rounds"); do
  for s in ddp ddp_sharded1 ddp_sharded2; do
    "${mpi[@]}" -x EMBER_NUM_THREADS=1 "$build/bench/sharded_step" --strategies "$s"
  done
  for s in ddp zero1; do
    "${mpi[@]}" python3 bench/reference/sharded.py --threads 1 --strategies "$s"
  done
done
