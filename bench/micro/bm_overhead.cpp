// Framework overhead: ops on 1-element tensors, where kernel time is nil and bookkeeping is all.
#include <benchmark/benchmark.h>

#include "ember.hpp"

using namespace ember;

namespace {

void BM_tiny_add(benchmark::State& st) {
  Tensor a = ones({1}), b = ones({1});
  for (auto _ : st) {
    Tensor c = a + b;
    benchmark::DoNotOptimize(c.raw_data());
  }
}
BENCHMARK(BM_tiny_add);

void BM_tiny_add_scalar(benchmark::State& st) {
  Tensor a = ones({1});
  for (auto _ : st) {
    Tensor c = a + 1.0;
    benchmark::DoNotOptimize(c.raw_data());
  }
}
BENCHMARK(BM_tiny_add_scalar);

void BM_tiny_view(benchmark::State& st) {
  Tensor a = ones({4, 4});
  for (auto _ : st) {
    Tensor c = a.t();
    benchmark::DoNotOptimize(c.raw_data());
  }
}
BENCHMARK(BM_tiny_view);

}  // namespace
