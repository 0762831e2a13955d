// A LeNet-5-style CNN on MNIST (conv 6 and 16 channels with batch norm, 2x2 max pooling, 120-84-10
// head), trained with Adam under a one-cycle schedule. Header-only so the integration test runs it.
#pragma once
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "ember.hpp"

namespace mnist_cnn {

using namespace ember;

struct Config {
  std::string root;  // folder with the four MNIST IDX files
  int64_t epochs = 6;
  int64_t batch_size = 64;
  double max_lr = 3e-3;
  int64_t limit_train = 0;  // use only the first N training images (0: all)
  int64_t limit_test = 0;
  uint64_t seed = 0;
  bool verbose = true;
};

struct Result {
  double test_accuracy = 0;
  std::vector<double> epoch_losses;
  double seconds = 0;
};

struct LeNet : nn::Module {
  nn::Sequential features{nn::Conv2d(1, 6, 5, {.padding = 2}),
                          nn::BatchNorm2d(6),
                          nn::ReLU(),
                          nn::MaxPool2d(2),
                          nn::Conv2d(6, 16, 5),
                          nn::BatchNorm2d(16),
                          nn::ReLU(),
                          nn::MaxPool2d(2)};
  nn::Sequential classifier{nn::Flatten(), nn::Linear(16 * 5 * 5, 120), nn::ReLU(), nn::Linear(120, 84),
                            nn::ReLU(),    nn::Linear(84, 10)};
  LeNet() {
    register_module("features", features);
    register_module("classifier", classifier);
  }
  // MNIST's mean and standard deviation, as torchvision's usual Normalize((0.1307,), (0.3081,)).
  Tensor forward(const Tensor& x) { return classifier(features((x - 0.1307) * (1 / 0.3081))); }
};

inline std::shared_ptr<const data::Dataset> limit(std::shared_ptr<const data::Dataset> ds, int64_t n) {
  if (n <= 0 || n >= ds->size()) return ds;
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
  return std::make_shared<data::Subset>(ds, idx);
}

inline double accuracy(LeNet& net, data::DataLoader& loader) {
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
  auto train_set = limit(data::mnist(cfg.root, true), cfg.limit_train);
  auto test_set = limit(data::mnist(cfg.root, false), cfg.limit_test);
  data::DataLoader train_loader(train_set,
                                {.batch_size = cfg.batch_size, .shuffle = true, .seed = cfg.seed, .num_workers = 1});
  data::DataLoader test_loader(test_set, {.batch_size = 1000});

  LeNet net;
  optim::Adam opt(net.parameters(), optim::AdamOptions{.lr = cfg.max_lr});
  optim::OneCycleLR sched(
      opt, optim::OneCycleLROptions{.max_lr = cfg.max_lr, .total_steps = cfg.epochs * train_loader.size()});
  Result r;
  for (int64_t epoch = 0; epoch < cfg.epochs; ++epoch) {
    double loss_sum = 0;
    int64_t seen = 0;
    for (const data::Batch& b : train_loader) {
      Tensor loss = nn::functional::cross_entropy(net.forward(b.input), b.target);
      opt.zero_grad();
      loss.backward();
      opt.step();
      sched.step();
      loss_sum += loss.item<float>() * static_cast<double>(b.size());
      seen += b.size();
    }
    r.epoch_losses.push_back(loss_sum / static_cast<double>(seen));
    if (cfg.verbose)
      std::printf("epoch %lld  train loss %.4f  test accuracy %.4f  (%.0f s)\n", static_cast<long long>(epoch + 1),
                  r.epoch_losses.back(), accuracy(net, test_loader),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  r.test_accuracy = accuracy(net, test_loader);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace mnist_cnn
