// A custom Logger: one JSON object per line (JSON Lines) in <save_dir>/metrics.jsonl, the format log
// shippers and `jq` read. The Trainer calls log_hyperparams at the start of fit, log_metrics at each
// logging step and epoch end, save() at checkpoints, and finalize() at the end with the run's status.
#pragma once
#include <filesystem>
#include <fstream>
#include <string>

#include "../digits_mlp/digits_mlp.hpp"

namespace extending {

using namespace ember;

class JsonLinesLogger : public train::Logger {
 public:
  explicit JsonLinesLogger(std::string save_dir) : dir_(std::move(save_dir)) {
    std::filesystem::create_directories(dir_);
    out_.open(path(), std::ios::trunc);
    EMBER_CHECK(out_.good(), IOError, "[JsonLinesLogger] cannot write ", path());
  }
  std::string path() const { return (std::filesystem::path(dir_) / "metrics.jsonl").string(); }

  std::string name() const override { return "jsonl"; }
  std::string version() const override { return "0"; }
  std::string log_dir() const override { return dir_; }  // default checkpoints go below it
  void log_hyperparams(const nlohmann::json& params) override { write({{"hparams", params}}); }
  void log_metrics(const std::map<std::string, double>& metrics, int64_t step) override {
    write({{"step", step}, {"metrics", metrics}});
  }
  void save() override { out_.flush(); }
  void finalize(const std::string& status) override { write({{"status", status}}); }

 private:
  void write(const nlohmann::json& line) { out_ << line.dump() << "\n" << std::flush; }
  std::string dir_;
  std::ofstream out_;
};

// Trains the digits MLP with the JSON Lines logger as its only logger; returns the file's path.
inline std::string train_with_jsonl_logger(int64_t epochs, const std::string& dir = "runs/extending_jsonl") {
  digits_mlp::Config cfg{.epochs = epochs, .verbose = false};
  manual_seed(cfg.seed);
  data::DigitsDataModule digits({.batch_size = cfg.batch_size, .val_fraction = 0.2, .seed = cfg.seed});
  digits_mlp::DigitsClassifier model(cfg);
  auto logger = std::make_shared<JsonLinesLogger>(dir);
  train::TrainerOptions o = digits_mlp::trainer_options(cfg);
  o.logger = true;
  o.loggers = {logger};
  o.log_every_n_steps = 10;
  train::Trainer trainer(o);
  trainer.fit(model, digits);
  return logger->path();
}

}  // namespace extending
