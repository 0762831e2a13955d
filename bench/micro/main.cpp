// Entry point of the micro benchmarks.
#include <benchmark/benchmark.h>

BENCHMARK_MAIN();
