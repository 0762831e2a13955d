#!/usr/bin/env bash
# DDP on CPU beside PyTorch's (gloo): the MLP step at a global batch of 128 in one process with T threads
# and over two processes with T/2 threads each (mpirun). Prints one JSON line per run.
# Usage: bench/ddp.sh [BUILD_DIR (default build)] [T (default nproc)]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${1:-build} threads=${2:-$(nproc)}
half=$(( threads > 1 ? threads / 2 : 1 ))
mpi=(mpirun -np 2 --oversubscribe --bind-to none)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
EMBER_NUM_THREADS=$threads "$build/bench/ddp_step"
"${mpi[@]}" -x EMBER_NUM_THREADS=$half "$build/bench/ddp_step"
python3 bench/reference/ddp.py --threads "$threads"
"${mpi[@]}" python3 bench/reference/ddp.py --threads "$half"
