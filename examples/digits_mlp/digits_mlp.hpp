// The digits MLP (the README's main job): a 64-128-64-10 MLP trained with AdamW on 80% of the bundled
// 8x8 digits and scored on the held-out 20%. Header-only so the integration test runs the same code.
#pragma once
#include <chrono>
#include <cstdio>
#include <vector>

#include "ember.hpp"

namespace digits_mlp {

using namespace ember;

struct Config {
  int64_t epochs = 30;
  int64_t batch_size = 32;
  double lr = 3e-3;
  uint64_t seed = 0;
  bool verbose = true;
};

struct Result {
  double test_accuracy = 0;
  std::vector<double> epoch_losses;  // mean training loss per epoch
  double seconds = 0;
};

struct Net : nn::Module {
  nn::Sequential layers{nn::Linear(64, 128), nn::ReLU(), nn::Linear(128, 64), nn::ReLU(), nn::Linear(64, 10)};
  Net() { register_module("layers", layers); }
  // Pixels are 0..16; the network sees them scaled to [0, 1].
  Tensor forward(const Tensor& x) { return layers(x * (1.0 / 16)); }
};

// Fraction of rows whose arg-max equals the label.
inline double accuracy(Net& net, data::DataLoader& loader) {
  autograd::NoGradGuard no_grad;
  net.eval();
  int64_t right = 0, total = 0;
  for (const data::Batch& b : loader) {
    right += net.forward(b.input).argmax(1).eq(b.target).sum().item<int64_t>();
    total += b.size();
  }
  net.train();
  return static_cast<double>(right) / static_cast<double>(total);
}

inline Result train(const Config& cfg) {
  auto start = std::chrono::steady_clock::now();
  manual_seed(cfg.seed);
  auto split = data::random_split(data::digits(), {0.8, 0.2}, cfg.seed);
  data::DataLoader train_loader(split[0], {.batch_size = cfg.batch_size, .shuffle = true, .seed = cfg.seed});
  data::DataLoader test_loader(split[1], {.batch_size = 256});

  Net net;
  optim::AdamW opt(net.parameters(), optim::AdamWOptions{.lr = cfg.lr, .weight_decay = 1e-4});
  optim::CosineAnnealingLR sched(opt, cfg.epochs);
  Result r;
  for (int64_t epoch = 0; epoch < cfg.epochs; ++epoch) {
    double loss_sum = 0;
    int64_t seen = 0;
    for (const data::Batch& b : train_loader) {
      Tensor loss = nn::functional::cross_entropy(net.forward(b.input), b.target);
      opt.zero_grad();
      loss.backward();
      opt.step();
      loss_sum += loss.item<float>() * static_cast<double>(b.size());
      seen += b.size();
    }
    sched.step();
    r.epoch_losses.push_back(loss_sum / static_cast<double>(seen));
    if (cfg.verbose && (epoch % 5 == 4 || epoch == cfg.epochs - 1))
      std::printf("epoch %3lld  train loss %.4f  test accuracy %.4f\n", static_cast<long long>(epoch + 1),
                  r.epoch_losses.back(), accuracy(net, test_loader));
  }
  r.test_accuracy = accuracy(net, test_loader);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace digits_mlp
