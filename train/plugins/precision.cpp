// Precision plugins and GradScaler (see precision.hpp).
#include "train/plugins/precision.hpp"

#include <cmath>

#include "core/autocast.hpp"
#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/io/json_read.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/reduce.hpp"
#include "core/ops/shape.hpp"

namespace ember::train {

GradScaler::GradScaler(GradScalerOptions options) : options_(options), scale_(options.init_scale) {
  EMBER_CHECK(options_.init_scale > 0 && std::isfinite(options_.init_scale), ValueError,
              "[GradScaler] init_scale must be positive and finite, got ", options_.init_scale);
  EMBER_CHECK(options_.growth_factor > 1, ValueError, "[GradScaler] growth_factor must be > 1, got ",
              options_.growth_factor);
  EMBER_CHECK(options_.backoff_factor > 0 && options_.backoff_factor < 1, ValueError,
              "[GradScaler] backoff_factor must lie in (0, 1), got ", options_.backoff_factor);
  EMBER_CHECK(options_.growth_interval >= 1, ValueError, "[GradScaler] growth_interval must be >= 1, got ",
              options_.growth_interval);
}

Tensor GradScaler::scale(const Tensor& loss) const {
  if (!options_.enabled) return loss;
  EMBER_CHECK(loss.defined() && is_floating(loss.dtype()), ValueError,
              "[GradScaler.scale] expected a floating-point loss, got ", loss.defined() ? describe(loss) : "undefined");
  // In float32 at least: a float16 loss times 65536 overflows long before its gradients would.
  return (loss.dtype() == kF64 ? loss : loss.to(kF32)) * scale_;
}

void GradScaler::unscale_(optim::Optimizer& opt) {
  if (!options_.enabled) return;
  EMBER_CHECK(!found_inf_.contains(&opt), ValueError,
              "[GradScaler.unscale_] already called for this optimizer since the last update()");
  autograd::NoGradGuard no_grad;
  const double inv = 1.0 / scale_;
  std::vector<Tensor> finite;  // one flag per gradient, read with a single sync below
  for (const Tensor& p : opt.parameters()) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    g.mul_(inv);
    finite.push_back(isfinite(g).all().reshape({1}));
  }
  const bool found = !finite.empty() && !cat(finite).all().item<bool>();
  found_inf_[&opt] = any_rank_ ? any_rank_(found) : found;
}

bool GradScaler::step(optim::Optimizer& opt) {
  if (!options_.enabled) {
    opt.step();
    return true;
  }
  if (!found_inf_.contains(&opt)) unscale_(opt);
  if (found_inf_.at(&opt)) return false;
  opt.step();
  return true;
}

void GradScaler::update() {
  if (!options_.enabled) return;
  bool inf = false;
  for (const auto& [opt, f] : found_inf_) inf = inf || f;
  if (inf) {
    scale_ *= options_.backoff_factor;
    growth_tracker_ = 0;
  } else if (!found_inf_.empty() && ++growth_tracker_ == options_.growth_interval) {
    scale_ *= options_.growth_factor;
    growth_tracker_ = 0;
  }
  found_inf_.clear();
}

nlohmann::json GradScaler::state_dict() const {
  return {{"scale", scale_},
          {"growth_factor", options_.growth_factor},
          {"backoff_factor", options_.backoff_factor},
          {"growth_interval", options_.growth_interval},
          {"growth_tracker", growth_tracker_}};
}

void GradScaler::load_state_dict(const nlohmann::json& s) {
  GradScalerOptions o = options_;
  double scale = 0;
  int64_t tracker = 0;
  try {
    scale = s.at("scale").get<double>();
    o.growth_factor = s.at("growth_factor").get<double>();
    o.backoff_factor = s.at("backoff_factor").get<double>();
    o.growth_interval = json_int64(s.at("growth_interval"), "[GradScaler] growth_interval");
    tracker = json_int64(s.at("growth_tracker"), "[GradScaler] growth_tracker");
  } catch (const nlohmann::json::exception& e) {
    throw ValueError(detail::cat_str("[GradScaler.load_state_dict] malformed state: ", e.what()));
  }
  // The constructor's checks (a scale of 0 would skip every step, a growth_interval of 0 never grow it).
  o.init_scale = scale;
  GradScaler checked(o);
  EMBER_CHECK(tracker >= 0 && tracker < o.growth_interval, ValueError,
              "[GradScaler.load_state_dict] growth_tracker must lie in [0, growth_interval = ", o.growth_interval,
              "), got ", tracker);
  o.init_scale = options_.init_scale;
  options_ = o;
  scale_ = scale;
  growth_tracker_ = tracker;
  found_inf_.clear();
}

std::shared_ptr<Precision> make_precision(const std::string& p) {
  if (p == "32" || p == "32-true") return std::make_shared<TruePrecision>(kF32);
  if (p == "64" || p == "64-true") return std::make_shared<TruePrecision>(kF64);
  if (p == "bf16-true") return std::make_shared<TruePrecision>(kBF16);
  if (p == "16-true") return std::make_shared<TruePrecision>(kF16);
  if (p == "bf16-mixed") return std::make_shared<MixedPrecision>(kBF16);
  if (p == "16-mixed") return std::make_shared<MixedPrecision>(kF16);
  throw ValueError(detail::cat_str("[Trainer] precision \"", p,
                                   "\" is not one of \"64\", \"32\", \"bf16-mixed\", \"16-mixed\", \"bf16-true\", "
                                   "\"16-true\" (\"-true\" may follow 32 and 64)"));
}

TruePrecision::TruePrecision(DType dtype) : dtype_(dtype) {
  EMBER_CHECK(is_floating(dtype), ValueError, "[TruePrecision] needs a floating dtype, got ", dtype_name(dtype));
}

std::string TruePrecision::name() const {
  return dtype_ == kF32 ? "32-true" : dtype_ == kF64 ? "64-true" : dtype_ == kBF16 ? "bf16-true" : "16-true";
}

MixedPrecision::MixedPrecision(DType dtype, GradScalerOptions scaler) : dtype_(dtype), scaler_options_(scaler) {
  EMBER_CHECK(dtype == kBF16 || dtype == kF16, ValueError, "[MixedPrecision] autocasts to bfloat16 or float16, got ",
              dtype_name(dtype));
  reset();
}

void MixedPrecision::reset() {
  scaler_.reset();
  if (dtype_ == kF16) scaler_.emplace(scaler_options_);
}

std::shared_ptr<void> MixedPrecision::forward_context(Device device) const {
  return std::make_shared<Autocast>(device, dtype_);
}

Tensor MixedPrecision::pre_backward(const Tensor& loss) { return scaler_ ? scaler_->scale(loss) : loss; }

void MixedPrecision::unscale_gradients(optim::Optimizer& opt) {
  if (scaler_) scaler_->unscale_(opt);
}

bool MixedPrecision::optimizer_step(optim::Optimizer& opt) {
  if (!scaler_) {
    opt.step();
    return true;
  }
  // Skipped when unscaling found a non-finite gradient (the scale then shrinks at update()).
  return scaler_->step(opt);
}

void MixedPrecision::update() {
  if (scaler_) scaler_->update();
}

nlohmann::json MixedPrecision::state_dict() const { return scaler_ ? scaler_->state_dict() : nlohmann::json(); }

void MixedPrecision::load_state_dict(const nlohmann::json& state) {
  if (scaler_) scaler_->load_state_dict(state);
}

}  // namespace ember::train
