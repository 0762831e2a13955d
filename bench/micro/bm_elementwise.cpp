// Elementwise throughput on 16M floats: into a fresh tensor (allocator included) and against a plain
// memcpy of the same bytes, the bandwidth ceiling these ops are judged by.
#include <benchmark/benchmark.h>

#include <cstring>

#include "ember.hpp"

using namespace ember;

namespace {
constexpr int64_t kN = 16 << 20;

void set_bytes(benchmark::State& st, int64_t bytes_per_iter) {
  st.SetBytesProcessed(st.iterations() * bytes_per_iter);
}

void BM_memcpy_64MiB(benchmark::State& st) {
  Tensor a = rand({kN}), b = empty({kN});
  for (auto _ : st) {
    std::memcpy(b.raw_data(), a.raw_data(), a.nbytes());
    benchmark::ClobberMemory();
  }
  set_bytes(st, 2 * a.nbytes());
}
BENCHMARK(BM_memcpy_64MiB)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_add_16M(benchmark::State& st) {
  Tensor a = rand({kN}), b = rand({kN});
  for (auto _ : st) {
    Tensor c = a + b;
    benchmark::DoNotOptimize(c.raw_data());
  }
  set_bytes(st, 3 * a.nbytes());
}
BENCHMARK(BM_add_16M)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_add_inplace_16M(benchmark::State& st) {
  Tensor a = rand({kN}), b = rand({kN});
  for (auto _ : st) {
    a.add_(b);
    benchmark::DoNotOptimize(a.raw_data());
  }
  set_bytes(st, 3 * a.nbytes());
}
BENCHMARK(BM_add_inplace_16M)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_mul_16M(benchmark::State& st) {
  Tensor a = rand({kN}), b = rand({kN});
  for (auto _ : st) {
    Tensor c = a * b;
    benchmark::DoNotOptimize(c.raw_data());
  }
  set_bytes(st, 3 * a.nbytes());
}
BENCHMARK(BM_mul_16M)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_exp_16M(benchmark::State& st) {
  Tensor a = rand({kN});
  for (auto _ : st) {
    Tensor c = exp(a);
    benchmark::DoNotOptimize(c.raw_data());
  }
  set_bytes(st, 2 * a.nbytes());
}
BENCHMARK(BM_exp_16M)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_gelu_16M(benchmark::State& st) {
  Tensor a = randn({kN});
  for (auto _ : st) {
    Tensor c = gelu(a);
    benchmark::DoNotOptimize(c.raw_data());
  }
  set_bytes(st, 2 * a.nbytes());
}
BENCHMARK(BM_gelu_16M)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
