// TrainModule (Lightning's LightningModule): a module that says how to train itself (steps, optimizers,
// hooks) and logs metrics; the Trainer runs the loops. OptimizerConfig is configure_optimizers()'s answer.
#pragma once
#include <concepts>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "nn/module.hpp"
#include "nn/optim/lr_scheduler.hpp"
#include "nn/optim/optimizer.hpp"
#include "train/data/batch.hpp"

namespace ember::metrics {
class Metric;
}

namespace ember::train {

class Trainer;
struct Checkpoint;

// log()'s options, Lightning's meanings. on_step/on_epoch unset take the hook's default: training_step
// and the train batch hooks log per step; everything else (validation/test steps, epoch hooks) per
// epoch. A metric logged both ways appears as "<name>_step" and "<name>_epoch". Epoch values reduce
// the step values with `reduce` ("mean" weighted by batch_size, "sum", "max", "min"); batch_size unset is
// the current batch's size.
struct LogOptions {
  bool prog_bar = false;
  bool logger = true;
  std::optional<bool> on_step = std::nullopt;
  std::optional<bool> on_epoch = std::nullopt;
  std::string reduce = "mean";
  bool sync_dist = false;  // all-reduce across processes before logging (a no-op in one process)
  std::optional<int64_t> batch_size = std::nullopt;
};

// A scheduler and when the Trainer steps it: every `frequency` epochs or optimizer steps (`interval`
// "epoch" or "step"). ReduceLROnPlateau steps with the logged metric `monitor`; a missing monitor is an
// error if strict, else a skipped step with a warning.
struct LRSchedulerConfig {
  std::shared_ptr<optim::LRScheduler> scheduler = nullptr;
  std::string interval = "epoch";
  int64_t frequency = 1;
  std::string monitor = "";
  bool strict = true;
  std::string name = "";  // LearningRateMonitor's key; default "lr-<Optimizer name>"
};

// configure_optimizers()'s answer: `return {opt}`, `return {opt, {.scheduler = s, .interval = "step"}}`
// or several optimizers and schedulers (manual optimisation, GANs).
struct OptimizerConfig {
  std::vector<std::shared_ptr<optim::Optimizer>> optimizers;
  std::vector<LRSchedulerConfig> schedulers;

  OptimizerConfig() = default;
  template <std::derived_from<optim::Optimizer> O>
  OptimizerConfig(std::shared_ptr<O> optimizer)  // NOLINT: implicit by design (`return opt;`)
      : OptimizerConfig(std::vector<std::shared_ptr<optim::Optimizer>>{std::move(optimizer)}) {}
  OptimizerConfig(std::shared_ptr<optim::Optimizer> optimizer, LRSchedulerConfig scheduler);
  OptimizerConfig(std::vector<std::shared_ptr<optim::Optimizer>> optimizers,
                  std::vector<LRSchedulerConfig> schedulers = {});
};

// The default validation_step's error: fit catches it and skips validation with a warning.
class StepNotOverridden : public ValueError {
 public:
  using ValueError::ValueError;
};

class TrainModule : public nn::Module {
 public:
  TrainModule() = default;

  // The loss of one training batch (automatic optimisation backpropagates it and steps); an undefined
  // Tensor skips the step. With automatic_optimization = false, step yourself (optimizers(),
  // manual_backward) and return anything.
  virtual Tensor training_step(const data::Batch& batch, int64_t batch_idx) = 0;
  // Without an override, fit skips validation with a warning (validate() raises StepNotOverridden).
  virtual void validation_step(const data::Batch& batch, int64_t batch_idx);
  virtual void test_step(const data::Batch& batch, int64_t batch_idx);
  // Defaults to forward(batch.input), as Lightning's.
  virtual Tensor predict_step(const data::Batch& batch, int64_t batch_idx);
  // The module's forward pass on a batch's input (a `Tensor forward(const Tensor&)` in the subclass
  // overrides it). The default raises a ValueError naming the class.
  virtual Tensor forward(const Tensor& input);
  virtual OptimizerConfig configure_optimizers() = 0;

  // Hooks, in the order the Trainer calls them (Lightning's names and places).
  virtual void setup(const std::string& stage) { (void)stage; }
  virtual void teardown(const std::string& stage) { (void)stage; }
  virtual void on_fit_start() {}
  virtual void on_fit_end() {}
  virtual void on_train_start() {}
  virtual void on_train_end() {}
  virtual void on_train_epoch_start() {}
  virtual void on_train_epoch_end() {}
  // Returning false skips the rest of the epoch (Lightning's -1).
  virtual bool on_train_batch_start(const data::Batch& batch, int64_t batch_idx);
  virtual void on_train_batch_end(const Tensor& loss, const data::Batch& batch, int64_t batch_idx);
  virtual void on_validation_start() {}
  virtual void on_validation_end() {}
  virtual void on_validation_epoch_start() {}
  virtual void on_validation_epoch_end() {}
  virtual void on_test_start() {}
  virtual void on_test_end() {}
  virtual void on_test_epoch_start() {}
  virtual void on_test_epoch_end() {}
  virtual void on_predict_start() {}
  virtual void on_predict_end() {}
  virtual void on_before_backward(const Tensor& loss) { (void)loss; }
  virtual void on_after_backward() {}
  virtual void on_before_optimizer_step(optim::Optimizer& optimizer) { (void)optimizer; }
  virtual void on_before_zero_grad(optim::Optimizer& optimizer) { (void)optimizer; }
  virtual void on_save_checkpoint(Checkpoint& checkpoint) { (void)checkpoint; }
  virtual void on_load_checkpoint(const Checkpoint& checkpoint) { (void)checkpoint; }

  // Records a metric for the progress bar, loggers and callbacks (monitor names). A tensor value must
  // hold one element; it is kept detached on its device and read to the host only when a number is
  // needed (a logger row, the progress bar, callback_metrics(), a checkpoint): no host sync per step.
  void log(const std::string& name, const Tensor& value, const LogOptions& options = {});
  void log(const std::string& name, double value, const LogOptions& options = {});
  // A metric object (ember::metrics, torchmetrics' way): on_step logs the value of its last forward
  // (`metric(preds, target)`, the batch's own value); on_epoch logs compute() at the epoch's end (its
  // state summed across DDP ranks first), after which the Trainer resets it. Its state goes into
  // checkpoints once logged, so a resumed epoch computes what the uninterrupted one would.
  void log(const std::string& name, metrics::Metric& metric, const LogOptions& options = {});
  void log_dict(const std::map<std::string, Tensor>& values, const LogOptions& options = {});
  void log_dict(const std::map<std::string, double>& values, const LogOptions& options = {});

  // Stored in checkpoints and passed to the loggers (a JSON object).
  void save_hyperparameters(nlohmann::json hparams);
  const nlohmann::json& hparams() const { return hparams_; }

  // Manual optimisation: set false in the constructor; training_step then steps the optimizers itself:
  // manual_backward(loss) (the backward hooks, the precision plugin's loss scaling, the strategy's
  // gradient reduction), optionally clip_gradients(opt, ...), then manual_step(opt). manual_step goes
  // through the precision plugin and the strategy, so it is right under every precision ("16-mixed":
  // unscaled gradients, a skipped step after an overflow) and strategy; a plain opt->step() is too
  // under precisions without a loss scale, and an error under "16-mixed" (it would apply scaled gradients).
  bool automatic_optimization = true;
  // After the first backward of a fit the Trainer raises an error naming any tensor that training_step's
  // loss reached, that requires grad, and that neither parameters() nor an optimizer holds (a submodule
  // not registered with register_module). Set true in the constructor when such tensors are intended
  // (a gradient penalty's input, say).
  bool allow_unregistered_tensors = false;
  // Lightning's example_input_array: when set (in the constructor, say), ModelSummary runs forward on it
  // once, in eval mode and without grad, to show each layer's FLOPs and the total (modes and RNG kept).
  Tensor example_input_array;
  const std::vector<std::shared_ptr<optim::Optimizer>>& optimizers() const;
  std::vector<std::shared_ptr<optim::LRScheduler>> lr_schedulers() const;
  void manual_backward(const Tensor& loss);
  // One step of opt as the Trainer takes it (see automatic_optimization); false when the precision
  // plugin skipped it. Either way it counts as a global step.
  bool manual_step(optim::Optimizer& opt);
  // Clips opt's gradients (after unscaling them) by global norm ("norm") or by value ("value").
  void clip_gradients(optim::Optimizer& opt, double clip_val, const std::string& algorithm = "norm");

  // The Trainer running this module (ValueError outside a run: a run attaches the module and detaches it
  // when it ends).
  Trainer& trainer() const;
  bool has_trainer() const { return trainer_ != nullptr; }
  int64_t current_epoch() const;
  int64_t global_step() const;

 private:
  friend class Trainer;
  Trainer* trainer_ = nullptr;
  nlohmann::json hparams_ = nlohmann::json::object();
};

}  // namespace ember::train
