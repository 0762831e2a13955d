// Learning-rate schedulers (torch.optim.lr_scheduler): the same recursive ("chainable") updates and
// closed forms as PyTorch 2.x, so lr sequences match its get_last_lr() to rounding. Constructing one sets
// each group's initial_lr (kept in the optimizer, as PyTorch's param_groups) and takes the first step.
// State goes through state_dict()/load_state_dict() as JSON.
#pragma once
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "nn/optim/optimizer.hpp"

namespace ember::optim {

// What a scheduler is given: an optimizer it refers to, or a shared_ptr it keeps alive.
class OptimizerRef {
 public:
  OptimizerRef(Optimizer& o) : ptr_(&o) {}  // NOLINT: implicit by design
  template <class T>
  requires std::derived_from<T, Optimizer> OptimizerRef(std::shared_ptr<T> o)
      : keep_(std::move(o)), ptr_(keep_.get()) {  // NOLINT
    EMBER_CHECK(ptr_ != nullptr, ValueError, "[LRScheduler] got a null optimizer");
  }
  Optimizer& operator*() const { return *ptr_; }
  Optimizer* operator->() const { return ptr_; }
  Optimizer* get() const { return ptr_; }

 private:
  std::shared_ptr<Optimizer> keep_;
  Optimizer* ptr_;
};

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  // One scheduling step (after optimizer.step()): advances last_epoch and sets each group's lr.
  virtual void step();
  const std::vector<double>& get_last_lr() const { return last_lr_; }
  int64_t last_epoch() const { return last_epoch_; }
  Optimizer& optimizer() const { return *opt_; }
  const std::string& name() const { return name_; }

  // PyTorch's attributes ("last_epoch", "_step_count", "base_lrs", "_last_lr", and each scheduler's own).
  virtual nlohmann::json state_dict() const;
  virtual void load_state_dict(const nlohmann::json& state);

 protected:
  // set_initial_lr: record each group's lr as its "initial_lr" unless one is set (PyTorch's setdefault).
  LRScheduler(OptimizerRef opt, std::string name, bool set_initial_lr = true);
  void initial_step();                           // PyTorch's _initial_step: the constructor's step
  void update_lr(std::optional<int64_t> epoch);  // PyTorch's _update_lr; an epoch uses the closed form
  virtual std::vector<double> get_lr() = 0;      // the chainable form, from the groups' current lrs
  virtual std::optional<std::vector<double>> closed_form_lr() const { return std::nullopt; }
  std::vector<double> group_lrs() const;
  std::vector<double> group_values(const std::string& key) const;
  std::string prefix(const char* what) const { return "[" + name_ + "] " + what + ": "; }

  friend class SequentialLR;
  OptimizerRef opt_;
  std::string name_;
  std::vector<double> base_lrs_;
  std::vector<double> last_lr_;
  int64_t last_epoch_ = -1;
  int64_t step_count_ = 0;
  bool is_initial_ = false;
};

// lr *= gamma every step_size steps.
class StepLR : public LRScheduler {
 public:
  StepLR(OptimizerRef opt, int64_t step_size, double gamma = 0.1);
  nlohmann::json state_dict() const override;
  void load_state_dict(const nlohmann::json& state) override;

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() const override;
  int64_t step_size_;
  double gamma_;
};

// lr *= gamma at each milestone (a milestone listed twice multiplies twice).
class MultiStepLR : public LRScheduler {
 public:
  MultiStepLR(OptimizerRef opt, std::vector<int64_t> milestones, double gamma = 0.1);
  nlohmann::json state_dict() const override;
  void load_state_dict(const nlohmann::json& state) override;

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() const override;
  std::vector<int64_t> milestones_;  // sorted
  double gamma_;
};

// lr *= gamma every step.
class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(OptimizerRef opt, double gamma);
  nlohmann::json state_dict() const override;
  void load_state_dict(const nlohmann::json& state) override;

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() const override;
  double gamma_;
};

// Cosine from the initial lr down to eta_min over t_max steps (then back up, as PyTorch's).
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(OptimizerRef opt, int64_t t_max, double eta_min = 0.0);
  nlohmann::json state_dict() const override;
  void load_state_dict(const nlohmann::json& state) override;

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() const override;
  int64_t t_max_;
  double eta_min_;
};

// Linear change of the lr factor from start_factor to end_factor over total_iters steps (warmup).
class LinearLR : public LRScheduler {
 public:
  explicit LinearLR(OptimizerRef opt, double start_factor = 1.0 / 3, double end_factor = 1.0, int64_t total_iters = 5);
  nlohmann::json state_dict() const override;
  void load_state_dict(const nlohmann::json& state) override;

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() const override;
  double start_factor_, end_factor_;
  int64_t total_iters_;
};

// lr = initial_lr * lambda(last_epoch); one function for every group or one per group.
class LambdaLR : public LRScheduler {
 public:
  using Lambda = std::function<double(int64_t)>;
  LambdaLR(OptimizerRef opt, Lambda lr_lambda);
  LambdaLR(OptimizerRef opt, std::vector<Lambda> lr_lambdas);

 protected:
  std::vector<double> get_lr() override;
  std::vector<Lambda> lambdas_;
};

// Runs schedulers one after another, switching at the milestones (steps).
class SequentialLR : public LRScheduler {
 public:
  SequentialLR(OptimizerRef opt, std::vector<std::shared_ptr<LRScheduler>> schedulers, std::vector<int64_t> milestones);
  void step() override;
  nlohmann::json state_dict() const override;
  void load_state_dict(const nlohmann::json& state) override;

 protected:
  std::vector<double> get_lr() override { return last_lr_; }
  void undo(LRScheduler& s);  // PyTorch's recursive_undo
  std::vector<std::shared_ptr<LRScheduler>> schedulers_;
  std::vector<int64_t> milestones_;
};

struct OneCycleLROptions {
  double max_lr = 0;              // every group's peak lr ...
  std::vector<double> max_lrs{};  // ... or one per group
  int64_t total_steps = 0;        // or epochs * steps_per_epoch
  int64_t epochs = 0;
  int64_t steps_per_epoch = 0;
  double pct_start = 0.3;
  std::string anneal_strategy = "cos";  // "cos" or "linear"
  bool cycle_momentum = true;           // SGD/RMSprop momentum or Adam's beta1, inversely to the lr
  double base_momentum = 0.85;
  double max_momentum = 0.95;
  double div_factor = 25;         // initial_lr = max_lr / div_factor
  double final_div_factor = 1e4;  // min_lr = initial_lr / final_div_factor
  bool three_phase = false;
};

// The 1cycle policy: warm up to max_lr, then anneal to min_lr (optionally in three phases), cycling the
// momentum the other way. Stepping past total_steps is an error, as in PyTorch.
class OneCycleLR : public LRScheduler {
 public:
  OneCycleLR(OptimizerRef opt, const OneCycleLROptions& options);
  int64_t total_steps() const { return total_steps_; }
  nlohmann::json state_dict() const override;

 protected:
  std::vector<double> get_lr() override;
  double anneal(double start, double end, double pct) const;
  struct Phase {
    double end_step;
    const char *start_lr, *end_lr, *start_momentum, *end_momentum;
  };
  OneCycleLROptions o_;
  int64_t total_steps_ = 0;
  std::vector<Phase> phases_;
};

struct ReduceLROnPlateauOptions {
  std::string mode = "min";  // "min": the metric should fall; "max": rise
  double factor = 0.1;
  int64_t patience = 10;
  double threshold = 1e-4;
  std::string threshold_mode = "rel";  // "rel" or "abs"
  int64_t cooldown = 0;
  double min_lr = 0;              // every group's floor ...
  std::vector<double> min_lrs{};  // ... or one per group
  double eps = 1e-8;
};

// Multiplies the lr by factor when the metric stopped improving for patience steps. step() needs the
// metric: call step(metric).
class ReduceLROnPlateau : public LRScheduler {
 public:
  ReduceLROnPlateau(OptimizerRef opt, const ReduceLROnPlateauOptions& options = {});
  void step() override;  // throws: the metric is needed
  void step(double metric);
  void step(const Tensor& metric) { step(metric.item().to_double()); }
  int64_t num_bad_epochs() const { return num_bad_epochs_; }
  double best() const { return best_; }
  nlohmann::json state_dict() const override;
  void load_state_dict(const nlohmann::json& state) override;

 protected:
  std::vector<double> get_lr() override { return group_lrs(); }
  bool is_better(double a, double best) const;
  double mode_worse() const;
  ReduceLROnPlateauOptions o_;
  std::vector<double> min_lrs_;
  double best_ = 0;
  int64_t num_bad_epochs_ = 0;
  int64_t cooldown_counter_ = 0;
};

}  // namespace ember::optim
