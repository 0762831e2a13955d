// Reductions and row-wise normalisations: sum of 16M floats, softmax and layer_norm over (4096, 1024)
// (layer_norm with an affine weight and bias, forward alone and forward + backward). Twins in
// bench/reference/reduce.py.
#include "bench/workloads/common.hpp"
#include "ember.hpp"

using namespace ember;

namespace {

void sum_16M(benchmark::State& st) {
  Tensor a = rand({16 << 20});
  for (auto _ : st) {
    Tensor s = a.sum();
    benchmark::DoNotOptimize(s.raw_data());
  }
}
void softmax_4096x1024(benchmark::State& st) {
  Tensor a = randn({4096, 1024});
  for (auto _ : st) {
    Tensor s = softmax(a, -1);
    benchmark::DoNotOptimize(s.raw_data());
  }
}
void layer_norm_4096x1024(benchmark::State& st) {
  Tensor a = randn({4096, 1024}), w = ones({1024}), b = zeros({1024});
  for (auto _ : st) {
    Tensor y = layer_norm(a, {1024}, w, b);
    benchmark::DoNotOptimize(y.raw_data());
  }
}
void layer_norm_fwd_bwd_4096x1024(benchmark::State& st) {
  Tensor a = randn({4096, 1024}, {.requires_grad = true});
  Tensor w = ones({1024}, {.requires_grad = true}), b = zeros({1024}, {.requires_grad = true});
  Tensor g = randn({4096, 1024});
  for (auto _ : st) {
    layer_norm(a, {1024}, w, b).backward(g);
    for (Tensor* t : {&a, &w, &b}) t->set_grad({});
  }
}
WORKLOAD(sum_16M);
WORKLOAD(softmax_4096x1024);
WORKLOAD(layer_norm_4096x1024);
WORKLOAD(layer_norm_fwd_bwd_4096x1024);

}  // namespace
