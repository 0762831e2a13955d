// f32 matmul through Ember against OpenBLAS sgemm called directly on the same buffers.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include "ember.hpp"

using namespace ember;

namespace {

void flops(benchmark::State& st, int64_t n) {
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n * st.iterations() / 1e9, benchmark::Counter::kIsRate);
}

void BM_matmul_f32(benchmark::State& st) {
  int64_t n = st.range(0);
  Tensor a = randn({n, n}), b = randn({n, n});
  for (auto _ : st) {
    Tensor c = matmul(a, b);
    benchmark::DoNotOptimize(c.raw_data());
  }
  flops(st, n);
}
BENCHMARK(BM_matmul_f32)->RangeMultiplier(2)->Range(128, 2048)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_sgemm_direct(benchmark::State& st) {
  int n = static_cast<int>(st.range(0));
  Tensor a = randn({n, n}), b = randn({n, n}), c = empty({n, n});
  for (auto _ : st) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data_ptr<float>(), n,
                b.data_ptr<float>(), n, 0.0f, c.data_ptr<float>(), n);
    benchmark::DoNotOptimize(c.raw_data());
  }
  flops(st, n);
}
BENCHMARK(BM_sgemm_direct)->RangeMultiplier(2)->Range(128, 2048)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_matmul_f64_512(benchmark::State& st) {
  Tensor a = randn({512, 512}, {.dtype = kF64}), b = randn({512, 512}, {.dtype = kF64});
  for (auto _ : st) {
    Tensor c = matmul(a, b);
    benchmark::DoNotOptimize(c.raw_data());
  }
  flops(st, 512);
}
BENCHMARK(BM_matmul_f64_512)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_matmul_bf16_512(benchmark::State& st) {
  Tensor a = randn({512, 512}, {.dtype = kBF16}), b = randn({512, 512}, {.dtype = kBF16});
  for (auto _ : st) {
    Tensor c = matmul(a, b);
    benchmark::DoNotOptimize(c.raw_data());
  }
  flops(st, 512);
}
BENCHMARK(BM_matmul_bf16_512)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
