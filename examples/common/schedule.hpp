// The learning-rate schedule the GPT examples (char_gpt, gpt2) share: linear warmup, then cosine decay to
// min_lr at total_steps, stepped per optimizer step; total_steps starts at max_steps and shrinks once the
// first steps show how many fit in the wall-clock budget, and training stops at its end.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include "ember.hpp"

namespace ember_examples {

struct BudgetedCosineOptions {
  double lr = 1e-3, min_lr = 0;  // the optimizer's lr (the peak) and where the cosine ends
  int64_t warmup_steps = 0, max_steps = 1;
  double max_seconds = 0;  // the wall-clock budget for training
  int64_t fit_step = 20;   // the optimizer step whose timing sizes the schedule
  double overhead = 1.05;  // validation (and sampling) take a little extra beyond the timed steps
};

class BudgetedCosine {
 public:
  explicit BudgetedCosine(const BudgetedCosineOptions& o) : opt_(o), total_steps_(o.max_steps) {}

  // The lr multiplier at optimizer step `step` (0-based): (step + 1) / warmup during warmup, then cosine
  // from 1 down to min_lr / lr at total_steps, and flat after.
  double factor(int64_t step) const {
    const int64_t warm = opt_.warmup_steps;
    if (step < warm) return static_cast<double>(step + 1) / static_cast<double>(warm);
    const double ratio = opt_.min_lr / opt_.lr;
    const double t = std::min(
        1.0, static_cast<double>(step - warm) / static_cast<double>(std::max<int64_t>(1, total_steps_ - warm)));
    return ratio + (1 - ratio) * 0.5 * (1 + std::cos(M_PI * t));
  }

  // A LambdaLR on `opt` that reads factor() at each step (total_steps may shrink after it is made). It
  // holds a pointer to this schedule, which must outlive it (both live in the TrainModule).
  std::shared_ptr<ember::optim::LambdaLR> scheduler(ember::optim::OptimizerRef opt) const {
    return std::make_shared<ember::optim::LambdaLR>(opt, [this](int64_t step) { return factor(step); });
  }

  // Called after each optimizer step with the seconds since the budget began: at fit_step (once), shrink
  // total_steps to what the budget allows (never below warmup + 1 nor above max_steps). The time a step
  // takes comes from the steps after fit_step / 2: the first ones also paid for start-up (the CUDA
  // context, the libraries' first-call setup, moving the model). Returns whether training should stop:
  // the schedule's end reached or the budget spent.
  bool after_step(int64_t step, double seconds) {
    if (step >= opt_.fit_step / 2 && mid_step_ < 0) mid_step_ = step, mid_seconds_ = seconds;
    if (step == opt_.fit_step && !fitted_) {
      fitted_ = true;  // with gradient accumulation several batches end at the same optimizer step
      const bool mid = mid_step_ >= 0 && mid_step_ < step;
      const double steps = static_cast<double>(mid ? step - mid_step_ : step);
      const double per_step = std::max(1e-9, (seconds - (mid ? mid_seconds_ : 0.0)) / steps * opt_.overhead);
      const double fit = static_cast<double>(step) + (opt_.max_seconds - seconds) / per_step;
      total_steps_ =
          std::min(opt_.max_steps, std::max<int64_t>(opt_.warmup_steps + 1, static_cast<int64_t>(std::min(fit, 1e18))));
    }
    return step >= total_steps_ || seconds > opt_.max_seconds;
  }

  int64_t total_steps() const { return total_steps_; }

  // The fitted length travels with checkpoints under `key`, so a resumed run decays on the same curve.
  void save(ember::train::Checkpoint& ck, const std::string& key) const { ck.state[key] = total_steps_; }
  void load(const ember::train::Checkpoint& ck, const std::string& key) {
    total_steps_ = ck.state.value(key, total_steps_);
  }

 private:
  BudgetedCosineOptions opt_;
  int64_t total_steps_;
  bool fitted_ = false;
  int64_t mid_step_ = -1;  // the first step at or past fit_step / 2, and its seconds
  double mid_seconds_ = 0;
};

}  // namespace ember_examples
