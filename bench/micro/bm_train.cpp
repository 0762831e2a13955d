// Training steps of the issue-4 workloads (forward, loss, backward, optimizer step), each written to do
// the same work as its PyTorch twin in bench/reference/micro.py.
#include <benchmark/benchmark.h>

#include "ember.hpp"

using namespace ember;
namespace F = ember::nn::functional;

namespace {

struct Mlp : nn::Module {
  nn::Sequential net{nn::Linear(784, 1024), nn::ReLU(), nn::Linear(1024, 1024), nn::ReLU(), nn::Linear(1024, 10)};
  Mlp() { register_module("net", net); }
};

struct LeNet : nn::Module {
  nn::Sequential net{nn::Conv2d(1, 6, 5, {.padding = 2}),
                     nn::ReLU(),
                     nn::MaxPool2d(2),
                     nn::Conv2d(6, 16, 5),
                     nn::ReLU(),
                     nn::MaxPool2d(2),
                     nn::Flatten(),
                     nn::Linear(400, 120),
                     nn::ReLU(),
                     nn::Linear(120, 84),
                     nn::ReLU(),
                     nn::Linear(84, 10)};
  LeNet() { register_module("net", net); }
};

// conv 32 + BN stem, two residual blocks of (conv, BN, ReLU, conv, BN) + skip, global pool, linear.
struct ResNet : nn::Module {
  nn::Conv2d stem{3, 32, 3, {.padding = 1, .bias = false}};
  nn::BatchNorm2d bn{32};
  std::vector<nn::Sequential> blocks;
  nn::Linear fc{32, 10};
  ResNet() {
    register_module("stem", stem);
    register_module("bn", bn);
    for (int i = 0; i < 2; ++i) {
      blocks.emplace_back(nn::Conv2d(32, 32, 3, {.padding = 1, .bias = false}), nn::BatchNorm2d(32), nn::ReLU(),
                          nn::Conv2d(32, 32, 3, {.padding = 1, .bias = false}), nn::BatchNorm2d(32));
      register_module("block" + std::to_string(i), blocks.back());
    }
    register_module("fc", fc);
  }
  Tensor forward(const Tensor& x) {
    Tensor h = bn(stem(x)).relu();
    for (auto& b : blocks) h = (h + b(h)).relu();
    return fc(adaptive_avg_pool2d(h, {1, 1}).flatten(1));
  }
};

struct Gpt : nn::Module {
  nn::Embedding tok{65, 128}, pos{64, 128};
  std::vector<nn::TransformerEncoderLayer> layers;
  nn::LayerNorm ln{Shape{128}};
  nn::Linear head{128, 65, {.bias = false}};
  Gpt() {
    register_module("tok", tok);
    register_module("pos", pos);
    for (int i = 0; i < 4; ++i) {
      layers.emplace_back(
          128, 4,
          nn::TransformerEncoderLayerOptions{
              .dim_feedforward = 512, .dropout = 0.1, .activation = "gelu", .batch_first = true, .norm_first = true});
      register_module("block" + std::to_string(i), layers.back());
    }
    register_module("ln", ln);
    register_module("head", head);
  }
  Tensor forward(const Tensor& idx) {
    Tensor x = tok(idx) + pos(arange(idx.size(1), kI64));
    for (auto& l : layers) x = l(x, Tensor{}, Tensor{}, true);
    return head(ln(x));
  }
};

template <class Step>
void run(benchmark::State& st, Step&& step) {
  step();  // warm-up: allocator caches, optimizer state
  for (auto _ : st) step();
}

void BM_mlp_sgd_step(benchmark::State& st) {
  manual_seed(0);
  Mlp m;
  optim::SGD opt(m.parameters(), {.lr = 0.01, .momentum = 0.9});
  Tensor x = randn({128, 784}), y = randint(0, 10, {128});
  run(st, [&] {
    Tensor loss = F::cross_entropy(m.net(x), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
  });
}
BENCHMARK(BM_mlp_sgd_step)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_mlp_infer_b32(benchmark::State& st) {
  manual_seed(0);
  Mlp m;
  Tensor x = randn({32, 784});
  autograd::NoGradGuard no_grad;
  run(st, [&] { benchmark::DoNotOptimize(m.net(x).raw_data()); });
}
BENCHMARK(BM_mlp_infer_b32)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_lenet_adam_step(benchmark::State& st) {
  manual_seed(0);
  LeNet m;
  optim::Adam opt(m.parameters(), {.lr = 1e-3});
  Tensor x = rand({64, 1, 28, 28}), y = randint(0, 10, {64});
  run(st, [&] {
    Tensor loss = F::cross_entropy(m.net(x), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
  });
}
BENCHMARK(BM_lenet_adam_step)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_resnet_sgd_step(benchmark::State& st) {
  manual_seed(0);
  ResNet m;
  optim::SGD opt(m.parameters(), {.lr = 0.01, .momentum = 0.9});
  Tensor x = randn({32, 3, 32, 32}), y = randint(0, 10, {32});
  run(st, [&] {
    Tensor loss = F::cross_entropy(m.forward(x), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
  });
}
BENCHMARK(BM_resnet_sgd_step)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_chargpt_adamw_step(benchmark::State& st) {
  manual_seed(0);
  Gpt m;
  optim::AdamW opt(m.parameters(), {.lr = 1e-3});
  Tensor x = randint(0, 65, {32, 64}), y = randint(0, 65, {32, 64});
  run(st, [&] {
    Tensor loss = F::cross_entropy(m.forward(x).flatten(0, 1), y.flatten());
    opt.zero_grad();
    loss.backward();
    opt.step();
  });
}
BENCHMARK(BM_chargpt_adamw_step)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
