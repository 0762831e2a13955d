// A LeNet-5-style CNN on MNIST (conv 6 and 16 channels with batch norm, 2x2 max pooling, 120-84-10
// head), trained by the Trainer with Adam under a one-cycle schedule (stepped per optimizer step) and
// validated on the test set after every epoch. Header-only so the integration test runs it.
#pragma once
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "../common/common.hpp"
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
  bool verbose = true;  // progress bar, model summary, CSV/SVG logs and a checkpoint under root_dir
  std::string root_dir = "runs/mnist_cnn";
  std::string accelerator = "auto";  // "cpu", "cuda" or "auto" (CUDA when a device is present)
};

struct Result {
  double test_accuracy = 0;
  std::vector<double> epoch_losses;      // mean training loss per epoch
  std::vector<double> epoch_accuracies;  // test accuracy after each epoch
  double seconds = 0;
  std::string log_dir;                        // where the logs and checkpoints went (verbose runs)
  bool resumed = false, interrupted = false;  // see train() on SIGTERM/SIGUSR1
};

// The network and how it trains: a TrainModule, so the Trainer runs the loops, logging and checkpoints.
struct LeNet : train::TrainModule {
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
  Config cfg;

  explicit LeNet(Config c) : cfg(std::move(c)) {
    register_module("features", features);
    register_module("classifier", classifier);
    save_hyperparameters({{"epochs", cfg.epochs},
                          {"batch_size", cfg.batch_size},
                          {"max_lr", cfg.max_lr},
                          {"limit_train", cfg.limit_train},
                          {"limit_test", cfg.limit_test},
                          {"seed", cfg.seed}});
  }
  // MNIST's mean and standard deviation, as torchvision's usual Normalize((0.1307,), (0.3081,)).
  Tensor forward(const Tensor& x) { return classifier(features((x - 0.1307) * (1 / 0.3081))); }

  Tensor training_step(const data::Batch& b, int64_t) override {
    Tensor loss = nn::functional::cross_entropy(forward(b.input), b.target);
    log("train_loss", loss, {.prog_bar = true, .on_epoch = true});
    return loss;
  }
  // Validation runs on the test set (MNIST has no separate validation split), as the original example.
  void validation_step(const data::Batch& b, int64_t) override { evaluate(b, "val"); }
  void test_step(const data::Batch& b, int64_t) override { evaluate(b, "test"); }
  void evaluate(const data::Batch& b, const std::string& stage) {
    Tensor out = forward(b.input);
    // Batch accuracies averaged weighted by batch size: exactly right / total over the set; sync_dist
    // averages the ranks' shares under DDP (mpirun -np N).
    log(stage + "_loss", nn::functional::cross_entropy(out, b.target), {.prog_bar = true, .sync_dist = true});
    log(stage + "_acc", out.argmax(1).eq(b.target).to(kF32).mean(), {.prog_bar = true, .sync_dist = true});
  }
  train::OptimizerConfig configure_optimizers() override {
    auto opt = std::make_shared<optim::Adam>(parameters(), optim::AdamOptions{.lr = cfg.max_lr});
    auto sched = std::make_shared<optim::OneCycleLR>(
        *opt, optim::OneCycleLROptions{.max_lr = cfg.max_lr, .total_steps = trainer().estimated_stepping_batches()});
    return {opt, {.scheduler = sched, .interval = "step"}};
  }
};

// The Trainer's options for cfg: what the command line (main.cpp) starts from.
inline train::TrainerOptions trainer_options(const Config& cfg) {
  return ember_examples::trainer_defaults(cfg.epochs, cfg.accelerator, cfg.verbose, cfg.root_dir);
}

inline Result train(const Config& cfg, train::TrainerOptions options) {
  auto start = std::chrono::steady_clock::now();
  manual_seed(cfg.seed);
  auto train_set = ember_examples::first_n(data::mnist(cfg.root, true), cfg.limit_train);
  auto test_set = ember_examples::first_n(data::mnist(cfg.root, false), cfg.limit_test);
  auto train_loader = std::make_shared<data::DataLoader>(
      train_set,
      data::DataLoaderOptions{
          .batch_size = cfg.batch_size, .shuffle = true, .seed = cfg.seed, .num_workers = 1, .pin_memory = true});
  auto test_loader =
      std::make_shared<data::DataLoader>(test_set, data::DataLoaderOptions{.batch_size = 1000, .pin_memory = true});

  LeNet net(cfg);
  Result r;
  auto record = std::make_shared<train::LambdaCallback>(
      train::LambdaHooks{.on_train_epoch_end = [&](train::Trainer& t, train::TrainModule&) {
        r.epoch_losses.push_back(t.callback_metrics().at("train_loss_epoch"));
        r.epoch_accuracies.push_back(t.callback_metrics().at("val_acc"));  // validated just before
      }});
  options.callbacks.insert(options.callbacks.begin(), record);
  train::Trainer trainer(std::move(options));
  // A run stopped by SIGTERM or SIGUSR1 (a cluster's preemption notice) saved itself to
  // <root_dir>/interrupted.safetensors; the same command run again resumes it, then drops the file.
  const std::string saved = trainer.interrupted_checkpoint_path();
  r.resumed = cfg.verbose && std::filesystem::exists(saved);
  trainer.fit(net, train_loader, test_loader, {.ckpt_path = r.resumed ? "interrupted" : ""});
  r.log_dir = trainer.log_dir();
  if ((r.interrupted = trainer.interrupted())) return r;
  if (r.resumed && trainer.is_global_zero()) std::filesystem::remove(saved);
  r.test_accuracy = trainer.test(net, test_loader).at(0).at("test_acc");
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

inline Result train(const Config& cfg) { return train(cfg, trainer_options(cfg)); }

}  // namespace mnist_cnn
