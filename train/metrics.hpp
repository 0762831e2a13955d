// MetricCollector: what TrainModule::log() records, kept as Lightning keeps it: step values for the
// loggers and the progress bar, and epoch values (mean weighted by batch size, sum, max or min) for the
// loggers and callbacks at the end of each epoch. The training and evaluation loops have separate sets,
// since validation runs inside a training epoch.
//
// When values are read: log(name, tensor) never reads its tensor to the host (no item(), no sync; it may
// run inside a captured CUDA graph's step). It keeps the detached float64 value on its device: the
// latest one for on_step, and the epoch's values in log order for on_epoch. They are read together, in
// one host read per device, only when a number is asked for: callback_metrics() / progress_bar_metrics()
// (the progress bar at logging steps, every metrics_refresh_seconds and at epoch ends), a logger row
// (take_step_metrics(true) at log_every_n_steps boundaries), end_epoch(), state_dict() (checkpoints),
// and after kMaxUnread unread epoch values of one metric (take_step_metrics, between steps). Epoch
// values fold on the host in log order with the same double arithmetic as numbers logged as doubles, so
// every value is bit-identical to reading each tensor when logged.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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
  // DDP: the same for a logged tensor, on its device (an all-reduce, no host read): float64 [1] in and out.
  void set_tensor_sync(std::function<Tensor(const Tensor&, const std::string&)> sync) {
    tensor_sync_ = std::move(sync);
  }
  // DDP: metric objects' states are joined over it before compute() (and in checkpoints).
  void set_communicator(dist::Communicator* comm) { comm_ = comm; }

  // ValueError for a bad reduce name, or a name logged with different options within one epoch.
  void log(const std::string& name, double value, const LogOptions& options);
  // A one-element tensor, kept on its device and read later (see the banner); no host read.
  void log(const std::string& name, const Tensor& value, const LogOptions& options);
  // A metric object: its forward value on step, compute() at the epoch's end, then reset() (see
  // TrainModule::log). The collector keeps a pointer to it until then.
  void log(const std::string& name, metrics::Metric& metric, const LogOptions& options);

  // Step values logged since the last call that go to the loggers (keys as logged: "<name>_step" when
  // the metric is also reduced per epoch). `read` false drops them unread (a batch that logs no row).
  MetricMap take_step_metrics(bool read = true);
  // Ends the current set's epoch: reduces its values into callback and progress-bar metrics, returns
  // the ones for the loggers and forgets the epoch.
  MetricMap end_epoch();
  // Forgets the current set's epoch without reducing it (a new evaluation run).
  void reset_epoch();

  // These read the unread tensor values first (one host read per device, none when all are read).
  const MetricMap& callback_metrics() const {
    resolve();
    return callback_;
  }
  const MetricMap& logged_metrics() const { return logged_; }
  const MetricMap& progress_bar_metrics() const {
    resolve();
    return progress_;
  }
  // Without a host read: the callback metrics whose latest value is a tensor not read yet (float64, on
  // its device), and those already numbers (keys not in the first map).
  const std::map<std::string, Tensor>& unread_callback_metrics() const { return callback_unread_; }
  const MetricMap& read_callback_metrics() const { return callback_; }
  bool has_unread() const;
  // Reads every unread tensor value (one host read per device) and folds the epoch values.
  void resolve() const;
  static constexpr size_t kMaxUnread = 1024;  // epoch values of one metric kept unread at most
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
    Tensor step_tensor;  // the step value while unread (then step_value is stale)
    // Epoch values not folded into sum/weight/extreme/count yet, in log order: a double, or an unread
    // tensor (`tensor` defined). Numbers wait behind tensors so that the fold keeps the log order.
    struct Queued {
      double value = 0;
      Tensor tensor;
      int64_t batch_size = 0;
    };
    std::vector<Queued> queue;
    // A metric object: compute() gives the epoch value. `pending` is a checkpoint's state, joined into
    // the object when it is logged again (or into one rebuilt from type and config at the epoch's end).
    metrics::Metric* metric = nullptr;
    std::string metric_type;
    nlohmann::json metric_config;
    TensorMap pending;
  };
  double metric_value(const std::string& name, Entry& e);
  struct Value {  // a logged number, or an unread float64 tensor
    double number = 0;
    Tensor tensor;
  };
  Entry& admit(const std::string& name, const LogOptions& options, bool& on_step, bool& on_epoch);
  void record(const std::string& name, Entry& e, const Value& v, int64_t batch_size);
  static void fold(Entry& e, double value, int64_t batch_size);
  void set_callback(const std::string& key, const Value& v);
  void set_progress(const std::string& key, const Value& v);
  using EntrySet = std::map<std::string, Entry>;
  EntrySet& current() { return training_ ? train_ : eval_; }

  // mutable: resolve() turns unread tensors into the numbers they hold, which changes no observable value.
  mutable EntrySet train_, eval_;
  bool training_ = true, in_step_ = true;
  int64_t batch_size_ = 1;
  std::function<double(double, const std::string&)> sync_;
  std::function<Tensor(const Tensor&, const std::string&)> tensor_sync_;
  dist::Communicator* comm_ = nullptr;
  mutable MetricMap callback_, progress_;
  MetricMap logged_;
  mutable std::map<std::string, Tensor> callback_unread_, progress_unread_;
};

}  // namespace ember::train
