// Elementwise ops on 16M floats into a fresh tensor (allocator included), and a copy of the same bytes,
// the bandwidth ceiling they are judged by. Twins in bench/reference/elementwise.py.
#include "bench/workloads/common.hpp"
#include "ember.hpp"

using namespace ember;

namespace {
constexpr int64_t kN = 16 << 20;

template <class Op>
void unary(benchmark::State& st, Tensor a, Op op) {
  for (auto _ : st) {
    Tensor c = op(a);
    benchmark::DoNotOptimize(c.raw_data());
  }
}

void copy_16M(benchmark::State& st) {
  Tensor a = rand({kN}), b = empty({kN});
  for (auto _ : st) {
    b.copy_(a);
    benchmark::DoNotOptimize(b.raw_data());
  }
}
void add_16M(benchmark::State& st) {
  Tensor b = rand({kN});
  unary(st, rand({kN}), [&](const Tensor& a) { return a + b; });
}
void add_inplace_16M(benchmark::State& st) {
  Tensor a = rand({kN}), b = rand({kN});
  for (auto _ : st) {
    a.add_(b);
    benchmark::DoNotOptimize(a.raw_data());
  }
}
void mul_16M(benchmark::State& st) {
  Tensor b = rand({kN});
  unary(st, rand({kN}), [&](const Tensor& a) { return a * b; });
}
void exp_16M(benchmark::State& st) {
  unary(st, rand({kN}), [](const Tensor& a) { return exp(a); });
}
void gelu_16M(benchmark::State& st) {
  unary(st, randn({kN}), [](const Tensor& a) { return gelu(a); });
}
WORKLOAD(copy_16M);
WORKLOAD(add_16M);
WORKLOAD(add_inplace_16M);
WORKLOAD(mul_16M);
WORKLOAD(exp_16M);
WORKLOAD(gelu_16M);

}  // namespace
