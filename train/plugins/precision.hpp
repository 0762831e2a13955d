// Precision plugins (Lightning's): the dtype a module trains in, the autocast scope of its forward steps,
// and the loss scaling of float16 (GradScaler, torch.amp.GradScaler's dynamic scaling). The Trainer asks
// the plugin at each of these points and has no case of its own for any mode: a new mode is a new class.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/tensor.hpp"
#include "nn/optim/optimizer.hpp"

namespace ember::train {

struct GradScalerOptions {
  double init_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
  bool enabled = true;
};

// Multiplies the loss by a scale before backward, divides the gradients by it before the step, skips
// steps whose gradients hold Inf or NaN and then halves the scale, and doubles it after growth_interval
// clean steps. Use: backward(scaler.scale(loss)); scaler.unscale_(opt) (optional, e.g. before clipping);
// scaler.step(opt); scaler.update().
class GradScaler {
 public:
  explicit GradScaler(GradScalerOptions options = {});

  Tensor scale(const Tensor& loss) const;
  // Divides opt's gradients by the scale once per step and records whether any is non-finite.
  void unscale_(optim::Optimizer& opt);
  // unscale_ if not done, then opt.step() unless a gradient was non-finite; true when it stepped.
  bool step(optim::Optimizer& opt);
  // Adjusts the scale from this step's findings (all optimizers); call once per iteration.
  void update();

  double get_scale() const { return options_.enabled ? scale_ : 1.0; }
  bool is_enabled() const { return options_.enabled; }
  int64_t growth_tracker() const { return growth_tracker_; }
  nlohmann::json state_dict() const;
  void load_state_dict(const nlohmann::json& state);
  // When each process sees only some of the gradients (a sharded strategy), every process must take
  // the same decision: `any_rank` turns this process's "found Inf/NaN" into "some process found one".
  void set_found_inf_sync(std::function<bool(bool)> any_rank) { any_rank_ = std::move(any_rank); }

 private:
  std::function<bool(bool)> any_rank_;
  GradScalerOptions options_;
  double scale_;
  int64_t growth_tracker_ = 0;
  std::map<const optim::Optimizer*, bool> found_inf_;  // unscaled this iteration -> saw Inf/NaN
};

// The plugin interface. The default is full float32 ("32"); every hook has a do-nothing default, so a
// plugin overrides only what it changes.
class Precision {
 public:
  virtual ~Precision() = default;
  // The `precision` string this plugin stands for ("32", "bf16-mixed", ...), shown in summaries.
  virtual std::string name() const { return "32-true"; }
  // The dtype of the module's floating tensors, and of the float32 tensors of each batch.
  virtual DType param_dtype() const { return kF32; }
  // A scope held around each forward step (training/validation/test/predict_step): autocast for the
  // "-mixed" modes; null for none.
  virtual std::shared_ptr<void> forward_context(Device /*device*/) const { return nullptr; }
  // The tensor backward starts from (16-mixed: the loss times the scale).
  virtual Tensor pre_backward(const Tensor& loss) { return loss; }
  // Makes opt's gradients the true ones (16-mixed divides them by the scale). The Trainer calls it once
  // per optimizer and step, before gradient clipping, the on_before_optimizer_step hooks and
  // optimizer_step (so optimizer_step always sees true gradients).
  virtual void unscale_gradients(optim::Optimizer& /*opt*/) {}
  // Steps opt unless this step must be skipped (16-mixed: a non-finite gradient found when unscaling);
  // true when it stepped.
  virtual bool optimizer_step(optim::Optimizer& opt) {
    opt.step();
    return true;
  }
  // The iteration's optimizer steps are done (after each automatic step; after training_step under manual
  // optimisation): 16-mixed adjusts its scale once for all of them, as GradScaler.update().
  virtual void update() {}
  // The scaler of 16-mixed (null otherwise).
  virtual GradScaler* scaler() { return nullptr; }
  // Its state in checkpoints (the run state's "precision" entry): null when it has none.
  virtual nlohmann::json state_dict() const { return nullptr; }
  virtual void load_state_dict(const nlohmann::json& /*state*/) {}
  // A fit starts: state from an earlier fit is dropped.
  virtual void reset() {}
};

// "32"/"32-true", "64"/"64-true", "bf16-true", "16-true": the module and the floating batches in `dtype`.
class TruePrecision : public Precision {
 public:
  explicit TruePrecision(DType dtype);
  std::string name() const override;
  DType param_dtype() const override { return dtype_; }

 private:
  DType dtype_;
};

// "bf16-mixed" and "16-mixed": float32 weights; forward steps under Autocast in `dtype`. float16 adds a
// GradScaler (its options: `scaler`); bfloat16 needs none.
class MixedPrecision : public Precision {
 public:
  explicit MixedPrecision(DType dtype, GradScalerOptions scaler = {});
  std::string name() const override { return dtype_ == kBF16 ? "bf16-mixed" : "16-mixed"; }
  std::shared_ptr<void> forward_context(Device device) const override;
  Tensor pre_backward(const Tensor& loss) override;
  void unscale_gradients(optim::Optimizer& opt) override;
  bool optimizer_step(optim::Optimizer& opt) override;
  void update() override;
  GradScaler* scaler() override { return scaler_ ? &*scaler_ : nullptr; }
  nlohmann::json state_dict() const override;
  void load_state_dict(const nlohmann::json& state) override;
  void reset() override;

 private:
  DType dtype_;
  GradScalerOptions scaler_options_;
  std::optional<GradScaler> scaler_;
};

// The plugin a `precision` string names; ValueError for an unknown one.
std::shared_ptr<Precision> make_precision(const std::string& precision);

}  // namespace ember::train
