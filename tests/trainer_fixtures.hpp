// Shared pieces of the Trainer tests (test_trainer.cpp, test_trainer_checkpoints.cpp, the callback tests):
// a temp folder, a recording logger, a tiny classifier on a learnable random problem, a tiny regression,
// quiet Trainer options.
#pragma once
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "ember.hpp"
#include "test_util.hpp"

namespace trainer_test {

using namespace ember;
namespace fs = std::filesystem;
using testing::throws_with;

// A fresh empty folder under the system temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  // The process id keeps two test runs at once (two build folders, a GPU check) out of each other's files.
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("ember_trainer_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string str() const { return path.string(); }
};

// Records every log_metrics call.
struct RecordingLogger : train::Logger {
  std::vector<std::pair<int64_t, train::MetricMap>> rows;
  nlohmann::json hparams;
  std::vector<std::string> finalized;
  std::string name() const override { return "recording"; }
  std::string version() const override { return "0"; }
  std::string log_dir() const override { return dir; }
  void log_metrics(const std::map<std::string, double>& metrics, int64_t step) override {
    rows.emplace_back(step, metrics);
  }
  void log_hyperparams(const nlohmann::json& params) override { hparams = params; }
  void finalize(const std::string& status) override { finalized.push_back(status); }
  std::string dir = ".";
  // Values of one key in logging order, with their steps.
  std::vector<std::pair<int64_t, double>> series(const std::string& key) const {
    std::vector<std::pair<int64_t, double>> out;
    for (const auto& [step, m] : rows)
      if (auto it = m.find(key); it != m.end()) out.emplace_back(step, it->second);
    return out;
  }
};

// 4 -> 3 linear classifier on a fixed random problem; logs train_loss per step and val_loss/val_acc.
struct Tiny : train::TrainModule {
  nn::Linear fc{4, 3};
  nn::Dropout drop{0.2};
  double lr = 0.1;
  bool use_adam = false;
  std::function<train::OptimizerConfig(Tiny&)> configure;
  Tiny() {
    register_module("fc", fc);
    register_module("drop", drop);
  }
  Tensor forward(const Tensor& x) { return fc(drop(x)); }
  Tensor training_step(const data::Batch& b, int64_t) override {
    Tensor loss = nn::functional::cross_entropy(forward(b.input), b.target);
    log("train_loss", loss, {.prog_bar = true});
    return loss;
  }
  void validation_step(const data::Batch& b, int64_t) override {
    Tensor out = forward(b.input);
    log("val_loss", nn::functional::cross_entropy(out, b.target));
    log("val_acc", out.argmax(1).eq(b.target).to(kF32).mean());
  }
  void test_step(const data::Batch& b, int64_t) override {
    log("test_acc", forward(b.input).argmax(1).eq(b.target).to(kF32).mean());
  }
  Tensor predict_step(const data::Batch& b, int64_t) override { return forward(b.input).argmax(1); }
  train::OptimizerConfig configure_optimizers() override {
    if (configure) return configure(*this);
    if (use_adam) return {std::make_shared<optim::Adam>(parameters(), optim::AdamOptions{.lr = lr})};
    return {std::make_shared<optim::SGD>(parameters(), optim::SGDOptions{.lr = lr})};
  }
};

inline data::TensorDataset problem(int64_t n, uint64_t seed) {
  Generator g(seed);
  Tensor x = randn({n, 4}, {}, &g);
  Tensor y = x.narrow(1, 0, 3).argmax(1);  // learnable: the largest of the first three features
  return data::TensorDataset(x, y);
}

inline std::shared_ptr<data::DataLoader> loader(int64_t n, int64_t batch, bool shuffle, uint64_t seed = 1) {
  return std::make_shared<data::DataLoader>(
      problem(n, seed), data::DataLoaderOptions{.batch_size = batch, .shuffle = shuffle, .seed = 7});
}

// Options for quiet test runs: no default logger, checkpoint, progress bar or summary.
inline train::TrainerOptions quiet(train::TrainerOptions o = {}) {
  o.enable_checkpointing = false;
  o.enable_progress_bar = false;
  o.enable_model_summary = false;
  o.logger = o.logger && !o.loggers.empty();
  return o;
}

// y = x . w, noise-free: a tiny regression the Trainer can fit in milliseconds (the callback tests').
struct TinyRegression : train::TrainModule {
  nn::Linear fc{4, 1};
  double lr = 0.05;
  TinyRegression() { register_module("fc", fc); }
  Tensor training_step(const data::Batch& b, int64_t /*batch_idx*/) override {
    Tensor loss = nn::functional::mse_loss(fc(b.input), b.target);
    log("train_loss", loss, {.prog_bar = true});
    return loss;
  }
  void validation_step(const data::Batch& b, int64_t /*batch_idx*/) override {
    log("val_loss", nn::functional::mse_loss(fc(b.input), b.target), {.prog_bar = true});
  }
  void test_step(const data::Batch& b, int64_t /*batch_idx*/) override {
    log("test_loss", nn::functional::mse_loss(fc(b.input), b.target));
  }
  train::OptimizerConfig configure_optimizers() override {
    std::shared_ptr<optim::Optimizer> opt = std::make_shared<optim::SGD>(parameters(), optim::SGDOptions{.lr = lr});
    return opt;
  }
};

// n samples of y = x . (1, -2, 0.5, 3) in batches of 4 (32: 8 training batches; 16: 4 validation batches).
inline std::shared_ptr<data::DataLoader> regression_loader(int64_t n = 32, uint64_t seed = 1) {
  Generator gen(seed);
  Tensor x = randn({n, 4}, {}, &gen);
  Tensor w = tensor(std::vector<float>{1, -2, 0.5f, 3}, {4, 1});
  return std::make_shared<data::DataLoader>(data::TensorDataset(x, matmul(x, w)),
                                            data::DataLoaderOptions{.batch_size = 4});
}

// A quiet fit's options with only the given callbacks and loggers (none: no logger at all).
inline train::TrainerOptions run_options(int64_t max_epochs, std::vector<train::CallbackPtr> callbacks,
                                         std::vector<train::LoggerPtr> loggers = {}) {
  train::TrainerOptions o;
  o.max_epochs = max_epochs;
  o.callbacks = std::move(callbacks);
  o.loggers = std::move(loggers);
  return quiet(std::move(o));
}

inline std::vector<double> flat_params(const nn::Module& m) {
  std::vector<double> out;
  for (const Tensor& p : m.parameters()) {
    Tensor f = p.detach().cpu().to(kF64).contiguous().reshape({-1});
    for (int64_t i = 0; i < f.numel(); ++i) out.push_back(f.data_ptr<double>()[i]);
  }
  return out;
}

}  // namespace trainer_test
