// conv2d 3x3, stride 1, padding 1, with bias: (32, 64, 32, 32) -> (32, 64, 32, 32), forward alone and
// forward + backward (input, weight and bias gradients). Twins in bench/reference/conv2d.py.
#include "bench/workloads/common.hpp"
#include "ember.hpp"

using namespace ember;

namespace {

void conv2d_3x3_fwd(benchmark::State& st) {
  Tensor x = randn({32, 64, 32, 32}), w = randn({64, 64, 3, 3}) * 0.05, b = zeros({64});
  for (auto _ : st) {
    Tensor y = conv2d(x, w, b, {1, 1}, {1, 1});
    benchmark::DoNotOptimize(y.raw_data());
  }
}
void conv2d_3x3_fwd_bwd(benchmark::State& st) {
  Tensor x = randn({32, 64, 32, 32}, {.requires_grad = true});
  Tensor w = (randn({64, 64, 3, 3}) * 0.05).requires_grad_(), b = zeros({64}, {.requires_grad = true});
  Tensor g = randn({32, 64, 32, 32});
  for (auto _ : st) {
    conv2d(x, w, b, {1, 1}, {1, 1}).backward(g);
    for (Tensor* t : {&x, &w, &b}) t->set_grad({});
  }
}
WORKLOAD(conv2d_3x3_fwd);
WORKLOAD(conv2d_3x3_fwd_bwd);

}  // namespace
