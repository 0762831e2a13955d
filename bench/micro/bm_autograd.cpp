// Autograd: bookkeeping on a chain of tiny ops (with grad, without, and the same backward math by hand,
// so the difference is the tape's cost), and a full MLP forward + backward.
#include <benchmark/benchmark.h>

#include <cmath>

#include "ember.hpp"

using namespace ember;

namespace {

// 100 recorded ops: 50 x (multiply by a constant, tanh) on a tensor of n elements.
Tensor chain(Tensor y) {
  for (int i = 0; i < 50; ++i) y = (y * 1.001).tanh();
  return y;
}

void BM_chain100_grad(benchmark::State& st) {
  Tensor x = rand({st.range(0)}, {.requires_grad = true});
  for (auto _ : st) {
    chain(x).sum().backward();
    x.set_grad({});
  }
  st.counters["per_op_us"] =
      benchmark::Counter(100.0, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_chain100_grad)->Arg(1)->Arg(64);

void BM_chain100_nograd(benchmark::State& st) {
  Tensor x = rand({st.range(0)});
  for (auto _ : st) benchmark::DoNotOptimize(chain(x).sum().raw_data());
}
BENCHMARK(BM_chain100_nograd)->Arg(1)->Arg(64);

// The backward of chain100 written out by hand (what the tape runs, minus the tape).
void BM_chain100_manual_backward(benchmark::State& st) {
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
BENCHMARK(BM_chain100_manual_backward)->Arg(1)->Arg(64);

// MLP 784-1024-1024-10, batch 128, ReLU, mean NLL of log-softmax: forward + backward, no optimizer.
void BM_mlp_fwd_bwd(benchmark::State& st) {
  manual_seed(0);
  std::vector<Tensor> p;
  for (auto [i, o] : {std::pair{784, 1024}, {1024, 1024}, {1024, 10}}) {
    p.push_back((randn({i, o}) * (1.0 / std::sqrt(i))).requires_grad_());
    p.push_back(zeros({o}, {.requires_grad = true}));
  }
  Tensor x = randn({128, 784}), y = randint(0, 10, {128, 1});
  for (auto _ : st) {
    Tensor h = relu(matmul(x, p[0]) + p[1]);
    h = relu(matmul(h, p[2]) + p[3]);
    Tensor loss = -log_softmax(matmul(h, p[4]) + p[5], 1).gather(1, y).mean();
    loss.backward();
    for (Tensor& t : p) t.set_grad({});
  }
}
BENCHMARK(BM_mlp_fwd_bwd)->Unit(benchmark::kMillisecond);

}  // namespace
