// The digits MLP (the README's main job): a 64-128-64-10 MLP trained by the Trainer with AdamW and a
// cosine schedule on 80% of the bundled 8x8 digits, scored on the held-out 20%. Header-only so the
// integration test runs the same code.
#pragma once
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "../common/common.hpp"
#include "ember.hpp"

namespace digits_mlp {

using namespace ember;

struct Config {
  int64_t epochs = 30;
  int64_t batch_size = 32;
  double lr = 3e-3;
  uint64_t seed = 0;
  bool verbose = true;  // progress bar, model summary, CSV/SVG logs and a checkpoint under root_dir
  std::string root_dir = "runs/digits_mlp";
  std::string accelerator = "auto";  // "cpu", "cuda" or "auto" (CUDA when a device is present)
};

struct Result {
  double test_accuracy = 0;
  std::vector<double> epoch_losses;  // mean training loss per epoch
  double seconds = 0;
  std::string log_dir;  // where the logs and checkpoints went (verbose runs)
};

// The model and how it trains: a TrainModule, so the Trainer runs the loops, logging and checkpoints.
struct DigitsClassifier : train::TrainModule {
  nn::Sequential layers{nn::Linear(64, 128), nn::ReLU(), nn::Linear(128, 64), nn::ReLU(), nn::Linear(64, 10)};
  Config cfg;
  explicit DigitsClassifier(Config c) : cfg(std::move(c)) {
    register_module("layers", layers);
    save_hyperparameters({{"epochs", cfg.epochs}, {"batch_size", cfg.batch_size}, {"lr", cfg.lr}, {"seed", cfg.seed}});
  }
  Tensor forward(const Tensor& x) { return layers(x); }  // pixels arrive scaled to [0, 1]

  Tensor training_step(const data::Batch& b, int64_t) override {
    Tensor loss = nn::functional::cross_entropy(forward(b.input), b.target);
    log("train_loss", loss, {.prog_bar = true, .on_epoch = true});
    return loss;
  }
  void validation_step(const data::Batch& b, int64_t) override { evaluate(b, "val"); }
  void test_step(const data::Batch& b, int64_t) override { evaluate(b, "test"); }
  void evaluate(const data::Batch& b, const std::string& stage) {
    Tensor out = forward(b.input);
    // sync_dist: under DDP (mpirun -np N) each rank sees 1/N of the held-out set; the logged values are
    // the means over all ranks.
    log(stage + "_loss", nn::functional::cross_entropy(out, b.target), {.prog_bar = true, .sync_dist = true});
    log(stage + "_acc", out.argmax(1).eq(b.target).to(kF32).mean(), {.prog_bar = true, .sync_dist = true});
  }
  train::OptimizerConfig configure_optimizers() override {
    auto opt = std::make_shared<optim::AdamW>(parameters(), optim::AdamWOptions{.lr = cfg.lr, .weight_decay = 1e-4});
    return {opt, {.scheduler = std::make_shared<optim::CosineAnnealingLR>(*opt, cfg.epochs)}};
  }
};

// The Trainer's options for cfg: what the command line (main.cpp) starts from.
inline train::TrainerOptions trainer_options(const Config& cfg) {
  return ember_examples::trainer_defaults(cfg.epochs, cfg.accelerator, cfg.verbose, cfg.root_dir);
}

inline Result train(const Config& cfg, train::TrainerOptions options) {
  auto start = std::chrono::steady_clock::now();
  manual_seed(cfg.seed);
  // 80% training, 20% held out (the validation and test set), pixels / 16.
  data::DigitsDataModule digits({.batch_size = cfg.batch_size, .val_fraction = 0.2, .seed = cfg.seed});
  DigitsClassifier model(cfg);
  Result r;
  auto record = std::make_shared<train::LambdaCallback>(
      train::LambdaHooks{.on_train_epoch_end = [&](train::Trainer& t, train::TrainModule&) {
        r.epoch_losses.push_back(t.callback_metrics().at("train_loss_epoch"));
      }});
  options.callbacks.insert(options.callbacks.begin(), record);
  train::Trainer trainer(std::move(options));
  trainer.fit(model, digits);
  r.test_accuracy = trainer.test(model, digits).at(0).at("test_acc");
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.log_dir = trainer.log_dir();
  return r;
}

inline Result train(const Config& cfg) { return train(cfg, trainer_options(cfg)); }

}  // namespace digits_mlp
