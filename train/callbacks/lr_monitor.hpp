// LearningRateMonitor (Lightning's): logs each optimizer's learning rate (and optionally momentum and
// weight decay) to the Trainer's loggers, per step or per epoch, under Lightning's names.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "train/callback.hpp"

namespace ember::train {

class LearningRateMonitor : public Callback {
 public:
  // logging_interval: "step" or "epoch" logs every optimizer at that interval; unset logs each scheduled
  // optimizer at its scheduler's interval (and unscheduled ones at both). ValueError for other values.
  explicit LearningRateMonitor(std::optional<std::string> logging_interval = std::nullopt, bool log_momentum = false,
                               bool log_weight_decay = false);

  // The learning rates logged so far, by name ("lr-SGD", "lr-Adam-1", "lr-SGD/pg2", a scheduler's name).
  const std::map<std::string, std::vector<double>>& lrs() const { return lrs_; }
  // The last momentum ("<name>-momentum") and weight decay ("<name>-weight_decay") values logged.
  const std::map<std::string, double>& last_momentum_values() const { return last_momentum_; }
  const std::map<std::string, double>& last_weight_decay_values() const { return last_weight_decay_; }

  // The names the optimizers' groups are logged under, in the Trainer's order: schedulers' optimizers
  // first (their config's name, else "lr-<Optimizer>"), then optimizers without a scheduler;
  // "-<k>" tells apart optimizers of one type, "/pg<i>" (from 1) the groups of one optimizer.
  static std::vector<std::vector<std::string>> names(const Trainer& trainer);

  // MisconfigurationException's case: ValueError when the Trainer has no logger.
  void on_train_start(Trainer& trainer, TrainModule& module) override;
  void on_train_batch_start(Trainer& trainer, TrainModule& module, const data::Batch& batch,
                            int64_t batch_idx) override;
  void on_train_epoch_start(Trainer& trainer, TrainModule& module) override;

 private:
  std::map<std::string, double> extract_stats(const Trainer& trainer, const std::string& interval);
  void log(Trainer& trainer, const std::map<std::string, double>& stats, int64_t step);

  std::optional<std::string> logging_interval_;
  bool log_momentum_, log_weight_decay_;
  std::map<std::string, std::vector<double>> lrs_;
  std::map<std::string, double> last_momentum_, last_weight_decay_;
};

}  // namespace ember::train
