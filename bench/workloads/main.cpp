// Entry point of bench_workloads, the CPU workloads that bench/compare runs one per process.
#include <benchmark/benchmark.h>

BENCHMARK_MAIN();
