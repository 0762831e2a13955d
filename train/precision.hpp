// Precision (Lightning's precision plugins): what each `precision` string means, and GradScaler, the
// dynamic loss scaling that keeps float16 gradients from underflowing (torch.amp.GradScaler).
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/tensor.hpp"
#include "nn/optim/optimizer.hpp"

namespace ember::train {

// "64"/"64-true": module and batches in float64. "32"/"32-true": float32. "bf16-mixed"/"16-mixed":
// float32 weights, forward steps under Autocast in bfloat16/float16 (16-mixed adds a GradScaler).
// "bf16-true"/"16-true": module and floating batches in bfloat16/float16.
struct PrecisionMode {
  DType param_dtype = kF32;
  std::optional<DType> autocast_dtype = std::nullopt;
  bool scale_loss = false;
};
PrecisionMode parse_precision(const std::string& precision);

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

 private:
  GradScalerOptions options_;
  double scale_;
  int64_t growth_tracker_ = 0;
  std::map<const optim::Optimizer*, bool> found_inf_;  // unscaled this iteration -> saw Inf/NaN
};

}  // namespace ember::train
