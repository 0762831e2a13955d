// Training steps (forward, loss, backward, optimizer step) of the CPU models, and MLP inference, each doing
// the same work as its twin in bench/reference/train.py (models in models.hpp / reference/models.py).
#include <cmath>
#include <utility>
#include <vector>

#include "bench/workloads/common.hpp"
#include "bench/workloads/models.hpp"

using namespace ember;
namespace F = ember::nn::functional;

namespace {

// Cross-entropy step of `model` on (x, y) with `opt`, the logits flattened to (N, classes).
template <class Model, class Opt>
void train_steps(benchmark::State& st, Model& model, Opt& opt, const Tensor& x, const Tensor& y) {
  bench::run_steps(st, [&] {
    Tensor loss = F::cross_entropy(model.forward(x).flatten(0, -2), y.flatten());
    opt.zero_grad();
    loss.backward();
    opt.step();
  });
}

void mlp_sgd_step(benchmark::State& st) {
  manual_seed(0);
  bench::Mlp m;
  optim::SGD opt(m.parameters(), {.lr = 0.01, .momentum = 0.9});
  train_steps(st, m, opt, randn({128, 784}), randint(0, 10, {128}));
}
void mlp_infer_b32(benchmark::State& st) {
  manual_seed(0);
  bench::Mlp m;
  Tensor x = randn({32, 784});
  autograd::NoGradGuard no_grad;
  bench::run_steps(st, [&] { benchmark::DoNotOptimize(m.forward(x).raw_data()); });
}
void lenet_adam_step(benchmark::State& st) {
  manual_seed(0);
  bench::LeNet m;
  optim::Adam opt(m.parameters(), {.lr = 1e-3});
  train_steps(st, m, opt, rand({64, 1, 28, 28}), randint(0, 10, {64}));
}
void resnet_sgd_step(benchmark::State& st) {
  manual_seed(0);
  bench::ResNet m;
  optim::SGD opt(m.parameters(), {.lr = 0.01, .momentum = 0.9});
  train_steps(st, m, opt, randn({32, 3, 32, 32}), randint(0, 10, {32}));
}
void chargpt_adamw_step(benchmark::State& st) {
  manual_seed(0);
  bench::Gpt m;
  optim::AdamW opt(m.parameters(), {.lr = 1e-3});
  train_steps(st, m, opt, randint(0, 65, {32, 64}), randint(0, 65, {32, 64}));
}
WORKLOAD(mlp_sgd_step);
WORKLOAD(mlp_infer_b32)->Unit(benchmark::kMicrosecond);
WORKLOAD(lenet_adam_step);
WORKLOAD(resnet_sgd_step);
WORKLOAD(chargpt_adamw_step);

// MLP 784-1024-1024-10, batch 128, ReLU, mean NLL of log-softmax on raw tensors: forward + backward, no
// optimizer (the autograd engine without the module layer).
void mlp_fwd_bwd(benchmark::State& st) {
  manual_seed(0);
  std::vector<Tensor> p;
  for (auto [i, o] : {std::pair{784, 1024}, {1024, 1024}, {1024, 10}}) {
    p.push_back((randn({i, o}) * (1.0 / std::sqrt(i))).requires_grad_());
    p.push_back(zeros({o}, {.requires_grad = true}));
  }
  Tensor x = randn({128, 784}), y = randint(0, 10, {128, 1});
  bench::run_steps(st, [&] {
    Tensor h = relu(matmul(x, p[0]) + p[1]);
    h = relu(matmul(h, p[2]) + p[3]);
    Tensor loss = -log_softmax(matmul(h, p[4]) + p[5], 1).gather(1, y).mean();
    loss.backward();
    for (Tensor& t : p) t.set_grad({});
  });
}
WORKLOAD(mlp_fwd_bwd);

}  // namespace
