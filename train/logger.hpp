// Logger: where logged metrics and hyperparameters go (CSVLogger, TensorBoardLogger). The Trainer calls
// log_hyperparams once at the start of fit, log_metrics at each logging step, save() at checkpoints and
// finalize() at the end ("success", "failed" or "interrupted").
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace ember::train {

class Logger {
 public:
  virtual ~Logger() = default;
  virtual std::string name() const = 0;
  virtual std::string version() const = 0;
  // The folder this run writes into (<save_dir>/<name>/<version>); checkpoints go below it by default.
  virtual std::string log_dir() const = 0;
  virtual void log_metrics(const std::map<std::string, double>& metrics, int64_t step) = 0;
  virtual void log_hyperparams(const nlohmann::json& params) = 0;
  virtual void save() {}
  virtual void finalize(const std::string& status) { (void)status; }
};

using LoggerPtr = std::shared_ptr<Logger>;

}  // namespace ember::train
