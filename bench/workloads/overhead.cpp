// Framework overhead: ops on 1-element tensors (kernel time nil, bookkeeping all), and the autograd tape
// on a chain of 100 tiny ops with grad, without, and the same backward math by hand (the difference is
// the tape's cost). Twins in bench/reference/overhead.py.
#include <vector>

#include "bench/workloads/common.hpp"
#include "ember.hpp"

using namespace ember;

namespace {

void tiny_add(benchmark::State& st) {
  Tensor a = ones({1}), b = ones({1});
  for (auto _ : st) {
    Tensor c = a + b;
    benchmark::DoNotOptimize(c.raw_data());
  }
}
void tiny_add_scalar(benchmark::State& st) {
  Tensor a = ones({1});
  for (auto _ : st) {
    Tensor c = a + 1.0;
    benchmark::DoNotOptimize(c.raw_data());
  }
}
void tiny_view(benchmark::State& st) {
  Tensor a = ones({4, 4});
  for (auto _ : st) {
    Tensor c = a.t();
    benchmark::DoNotOptimize(c.raw_data());
  }
}
WORKLOAD(tiny_add)->Unit(benchmark::kMicrosecond);
WORKLOAD(tiny_add_scalar)->Unit(benchmark::kMicrosecond);
WORKLOAD(tiny_view)->Unit(benchmark::kMicrosecond);

// 100 recorded ops: 50 x (multiply by a constant, tanh) on a tensor of n elements.
Tensor chain(Tensor y) {
  for (int i = 0; i < 50; ++i) y = (y * 1.001).tanh();
  return y;
}
void chain100_grad(benchmark::State& st) {
  Tensor x = rand({st.range(0)}, {.requires_grad = true});
  for (auto _ : st) {
    chain(x).sum().backward();
    x.set_grad({});
  }
}
void chain100_nograd(benchmark::State& st) {
  Tensor x = rand({st.range(0)});
  for (auto _ : st) benchmark::DoNotOptimize(chain(x).sum().raw_data());
}
void chain100_manual_backward(benchmark::State& st) {
  Tensor x = rand({st.range(0)});
  std::vector<Tensor> outs;
  Tensor y = x;
  for (int i = 0; i < 50; ++i) outs.push_back(y = (y * 1.001).tanh());
  for (auto _ : st) {
    Tensor g = ones_like(x);
    for (int i = 49; i >= 0; --i) g = g * (1 - outs[i] * outs[i]) * 1.001;
    benchmark::DoNotOptimize(g.raw_data());
  }
}
WORKLOAD(chain100_grad)->Arg(1)->Arg(64)->Unit(benchmark::kMicrosecond);
WORKLOAD(chain100_nograd)->Arg(1)->Arg(64)->Unit(benchmark::kMicrosecond);
WORKLOAD(chain100_manual_backward)->Arg(1)->Arg(64)->Unit(benchmark::kMicrosecond);

}  // namespace
