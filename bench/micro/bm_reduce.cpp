// Reductions: a full sum of 16M floats and a row softmax over (4096, 1024).
#include <benchmark/benchmark.h>

#include "ember.hpp"

using namespace ember;

namespace {

void BM_sum_16M(benchmark::State& st) {
  Tensor a = rand({16 << 20});
  for (auto _ : st) {
    Tensor s = a.sum();
    benchmark::DoNotOptimize(s.raw_data());
  }
  st.SetBytesProcessed(st.iterations() * static_cast<int64_t>(a.nbytes()));
}
BENCHMARK(BM_sum_16M)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_softmax_4096x1024(benchmark::State& st) {
  Tensor a = randn({4096, 1024});
  for (auto _ : st) {
    Tensor s = softmax(a, -1);
    benchmark::DoNotOptimize(s.raw_data());
  }
}
BENCHMARK(BM_softmax_4096x1024)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
