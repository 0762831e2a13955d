// Square matmul in f32, f64 and bf16 (twins in bench/reference/matmul.py), plus OpenBLAS sgemm called
// directly on the same buffers: the ceiling Ember's f32 path is judged by (Ember only).
#include <cblas.h>

#include "bench/workloads/common.hpp"
#include "ember.hpp"

using namespace ember;

namespace {

void square_matmul(benchmark::State& st, DType dtype) {
  const int64_t n = st.range(0);
  Tensor a = randn({n, n}, {.dtype = dtype}), b = randn({n, n}, {.dtype = dtype});
  for (auto _ : st) {
    Tensor c = matmul(a, b);
    benchmark::DoNotOptimize(c.raw_data());
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n * st.iterations() / 1e9, benchmark::Counter::kIsRate);
}

void matmul_f32(benchmark::State& st) { square_matmul(st, kF32); }
void matmul_f64(benchmark::State& st) { square_matmul(st, kF64); }
void matmul_bf16(benchmark::State& st) { square_matmul(st, kBF16); }
WORKLOAD(matmul_f32)->RangeMultiplier(2)->Range(128, 2048);
WORKLOAD(matmul_f64)->RangeMultiplier(2)->Range(128, 2048);
WORKLOAD(matmul_bf16)->RangeMultiplier(2)->Range(128, 2048);

void openblas_sgemm(benchmark::State& st) {
  const int n = static_cast<int>(st.range(0));
  Tensor a = randn({n, n}), b = randn({n, n}), c = empty({n, n});
  for (auto _ : st) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data_ptr<float>(), n, b.data_ptr<float>(),
                n, 0.0f, c.data_ptr<float>(), n);
    benchmark::DoNotOptimize(c.raw_data());
  }
}
WORKLOAD(openblas_sgemm)->RangeMultiplier(2)->Range(128, 2048);

}  // namespace
