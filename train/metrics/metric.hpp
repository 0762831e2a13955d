// ember::metrics::Metric (torchmetrics' Metric): a value accumulated over batches with update(),
// read with compute() and cleared with reset(). Its state is a few named tensors, each with the rule
// that joins two states (sum, max, min or concatenation), so that DDP ranks join theirs with one
// collective per state and a checkpoint saves and restores it exactly. Calling the metric (forward)
// accumulates the batch and returns the batch's own value, as torchmetrics' forward does.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/io/safetensors.hpp"
#include "core/tensor.hpp"

namespace ember::dist {
class Communicator;
}

namespace ember::metrics {

// How two states of one name join: sums add (counts, totals), max/min keep the extreme, cat
// concatenates along dim 0 (the predictions AUROC needs; all_gather across ranks).
enum class Reduce { kSum, kMax, kMin, kCat };
const char* reduce_name(Reduce reduce);

class Metric {
 public:
  virtual ~Metric() = default;
  Metric() = default;
  Metric(const Metric&) = default;
  Metric& operator=(const Metric&) = default;

  // torchmetrics' class name ("MulticlassAccuracy" is "Accuracy" with task "multiclass") and the
  // options that rebuild the metric with make_metric (checkpoints restore a metric from them).
  virtual std::string name() const = 0;
  virtual nlohmann::json config() const = 0;

  // Accumulates one batch. The states move to the inputs' device first. Aggregation metrics take a
  // value and an optional weight in place of (preds, target).
  void update(const Tensor& preds, const Tensor& target = {});
  // The value over everything accumulated since the last reset (a 0-dim float32 tensor for scalar
  // metrics). Before any update it is the value of the empty state (torchmetrics warns; 0 or NaN).
  virtual Tensor compute() const = 0;
  // torchmetrics' forward: accumulates the batch and returns the batch's own value (which
  // forward_value() keeps until the next reset, for the Trainer's on_step logging).
  Tensor forward(const Tensor& preds, const Tensor& target = {});
  Tensor operator()(const Tensor& preds, const Tensor& target = {}) { return forward(preds, target); }
  void reset();
  const Tensor& forward_value() const { return forward_value_; }
  int64_t update_count() const { return update_count_; }

  // -- state --
  // The named state tensors (shared handles: states are never written in place).
  TensorMap state_dict() const;
  // Replaces the state (ValueError naming the state for a missing or unknown name, a wrong dtype, or a
  // wrong shape; a cat state may have any length).
  void load_state_dict(const TensorMap& state);
  // Joins another state of this metric into this one, each name by its rule.
  void merge_state(const TensorMap& other);
  // Every rank's state joined (one all_reduce per sum/max/min state, an all_gather per cat state);
  // every rank must call it, with its metrics in the same order. This rank's own state stays.
  TensorMap synced_state(dist::Communicator& comm) const;
  // The same, replacing this rank's state with the global one (call compute, then reset).
  void sync(dist::Communicator& comm) { load_state_dict(synced_state(comm)); }
  Reduce state_reduce(const std::string& name) const;

  Device device() const { return device_; }
  Metric& to(Device device);

 protected:
  // Declares a state (in the constructor): its empty value (a cat state: 0 rows) and its rule.
  void add_state(const std::string& name, const Tensor& empty, Reduce reduce);
  const Tensor& state(const std::string& name) const;
  void set_state(const std::string& name, const Tensor& value);
  // Joins `batch` into a state by its rule (the common update: set_state(s, s + batch)).
  void accumulate(const std::string& name, const Tensor& batch);
  // The metric's own accumulation of one batch whose inputs are on device().
  virtual void update_state(const Tensor& preds, const Tensor& target) = 0;

 private:
  struct State {
    Tensor value, empty;
    Reduce reduce = Reduce::kSum;
  };
  static Tensor join(Reduce reduce, const Tensor& a, const Tensor& b);
  std::map<std::string, State> states_;
  Device device_{};
  Tensor forward_value_;
  int64_t update_count_ = 0;
};

using MetricPtr = std::shared_ptr<Metric>;

// Rebuilds a metric from name() and config() (ValueError for an unknown name or a bad option).
std::unique_ptr<Metric> make_metric(const std::string& name, const nlohmann::json& config);

}  // namespace ember::metrics
