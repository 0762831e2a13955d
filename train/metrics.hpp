// MetricCollector: what TrainModule::log() records, kept as Lightning keeps it: step values for the
// loggers and the progress bar, and epoch values (mean weighted by batch size, sum, max or min) for the
// loggers and callbacks at the end of each epoch. The training and evaluation loops have separate sets,
// since validation runs inside a training epoch.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/io/safetensors.hpp"
#include "dist/communicator.hpp"
#include "train/metrics/metric.hpp"
#include "train/module.hpp"

namespace ember::train {

// Metric values by name: a std::map whose at() names the missing metric and what was logged, so a
// user's `callback_metrics().at("val_acc")` fails with an ember::ValueError, not a bare "map::at".
class MetricMap : public std::map<std::string, double> {
 public:
  using std::map<std::string, double>::map;
  MetricMap() = default;
  MetricMap(const std::map<std::string, double>& m) : std::map<std::string, double>(m) {}        // NOLINT: implicit
  MetricMap(std::map<std::string, double>&& m) : std::map<std::string, double>(std::move(m)) {}  // NOLINT
  double& at(const std::string& name);
  const double& at(const std::string& name) const;
};

class MetricCollector {
 public:
  // Which set log() writes to: the training loop's or the evaluation loop's.
  void set_training(bool training) { training_ = training; }
  // `hook` decides the on_step/on_epoch defaults: true for training_step and the train batch hooks.
  void set_step_hook(bool in_step) { in_step_ = in_step; }
  void set_batch_size(int64_t batch_size) { batch_size_ = batch_size; }
  // DDP: reduces a value logged with sync_dist across ranks by its reduce name (mean, sum, max, min).
  void set_sync(std::function<double(double, const std::string&)> sync) { sync_ = std::move(sync); }
  // DDP: metric objects' states are joined over it before compute() (and in checkpoints).
  void set_communicator(dist::Communicator* comm) { comm_ = comm; }

  // ValueError for a bad reduce name, or a name logged with different options within one epoch.
  void log(const std::string& name, double value, const LogOptions& options);
  // A metric object: its forward value on step, compute() at the epoch's end, then reset() (see
  // TrainModule::log). The collector keeps a pointer to it until then.
  void log(const std::string& name, metrics::Metric& metric, const LogOptions& options);

  // Step values logged since the last call that go to the loggers (keys as logged: "<name>_step" when
  // the metric is also reduced per epoch).
  MetricMap take_step_metrics();
  // Ends the current set's epoch: reduces its values into callback and progress-bar metrics, returns
  // the ones for the loggers and forgets the epoch.
  MetricMap end_epoch();
  // Forgets the current set's epoch without reducing it (a new evaluation run).
  void reset_epoch();

  const MetricMap& callback_metrics() const { return callback_; }
  const MetricMap& logged_metrics() const { return logged_; }
  const MetricMap& progress_bar_metrics() const { return progress_; }
  void note_logged(const MetricMap& metrics);
  void add_callback_metrics(const std::map<std::string, double>& metrics);
  void clear();  // everything, at the start of a run

  // The training set's epoch in progress, bit-exact (for mid-epoch checkpoints).
  nlohmann::json state_dict() const;
  void load_state_dict(const nlohmann::json& state);
  // The training set's metric objects' states ("<name>.<state>"), joined across DDP ranks (a collective
  // on every rank). Loading keeps them until the metric is logged again or the epoch ends; `keep` false
  // (DDP ranks other than 0) starts from empty states, since rank 0's hold every rank's.
  TensorMap metric_states() const;
  void load_metric_states(const TensorMap& tensors, const std::string& prefix, bool keep);

 private:
  struct Entry {
    bool on_step = false, on_epoch = false, prog_bar = false, logger = true;
    std::string reduce = "mean";
    double sum = 0, weight = 0, extreme = 0;  // sum of value * batch_size and of batch_size; max or min
    int64_t count = 0;
    bool step_pending = false;
    double step_value = 0;
    // A metric object: compute() gives the epoch value. `pending` is a checkpoint's state, joined into
    // the object when it is logged again (or into one rebuilt from type and config at the epoch's end).
    metrics::Metric* metric = nullptr;
    std::string metric_type;
    nlohmann::json metric_config;
    TensorMap pending;
  };
  double metric_value(const std::string& name, Entry& e);
  using EntrySet = std::map<std::string, Entry>;
  EntrySet& current() { return training_ ? train_ : eval_; }

  EntrySet train_, eval_;
  bool training_ = true, in_step_ = true;
  int64_t batch_size_ = 1;
  std::function<double(double, const std::string&)> sync_;
  dist::Communicator* comm_ = nullptr;
  MetricMap callback_, logged_, progress_;
};

}  // namespace ember::train
