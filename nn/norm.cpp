// Normalisation layers over core/ops/nn.hpp (batch_norm, layer_norm, rms_norm) and functional::group_norm.
#include "nn/norm.hpp"

#include <sstream>

#include "core/autograd.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/nn.hpp"
#include "nn/functional.hpp"
#include "nn/init.hpp"

namespace ember::nn {

namespace {

Tensor make(const Shape& shape, const Placement& p) { return empty(shape, {.dtype = p.dtype, .device = p.device}); }

std::string shape_tuple(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += std::to_string(s[i]) + (s.size() == 1 || i + 1 < s.size() ? "," : "");
  return out + ")";
}

}  // namespace

// ---------------------------------------------------------------- BatchNorm

BatchNormImpl::BatchNormImpl(int64_t n, BatchNormOptions o, int64_t lo, int64_t hi, const char* name)
    : num_features(n), options(o), dims_lo_(lo), dims_hi_(hi), name_(name) {
  EMBER_CHECK(n > 0, ValueError, "[nn.", name, "] num_features must be positive, got ", n);
  if (o.affine) {
    weight = register_parameter("weight", make({n}, o.placement));
    bias = register_parameter("bias", make({n}, o.placement));
  }
  if (o.track_running_stats) {
    running_mean = register_buffer("running_mean", make({n}, o.placement));
    running_var = register_buffer("running_var", make({n}, o.placement));
    num_batches_tracked =
        register_buffer("num_batches_tracked", zeros({}, {.dtype = kI64, .device = o.placement.device}));
  }
  reset_parameters();
}

void BatchNormImpl::reset_running_stats() {
  if (!options.track_running_stats) return;
  autograd::NoGradGuard no_grad;
  running_mean.zero_();
  running_var.fill_(1);
  num_batches_tracked.zero_();
}

void BatchNormImpl::reset_parameters() {
  reset_running_stats();
  if (options.affine) {
    init::ones_(weight);
    init::zeros_(bias);
  }
}

Tensor BatchNormImpl::forward(const Tensor& x) {
  EMBER_CHECK(
      x.dim() >= dims_lo_ && x.dim() <= dims_hi_, ShapeError, "[nn.", name_, "] expected ",
      dims_lo_ == dims_hi_ ? std::to_string(dims_lo_) : std::to_string(dims_lo_) + "-D or " + std::to_string(dims_hi_),
      "-D input, got ", describe(x));
  EMBER_CHECK(x.size(1) == num_features, ShapeError, "[nn.", name_, "] expected ", num_features,
              " channels in dim 1, got ", describe(x));
  double factor = options.momentum.value_or(0.0);
  if (is_training() && options.track_running_stats) {
    autograd::NoGradGuard no_grad;
    num_batches_tracked.add_(1);
    if (!options.momentum) factor = 1.0 / static_cast<double>(num_batches_tracked.item<int64_t>());
  }
  // Without running statistics, eval also normalises by the batch (PyTorch's rule).
  return batch_norm(x, running_mean, running_var, weight, bias, is_training() || !options.track_running_stats, factor,
                    options.eps);
}

std::string BatchNormImpl::extra_repr() const {
  std::ostringstream os;
  os << num_features << ", eps=" << options.eps << ", momentum=";
  if (options.momentum)
    os << *options.momentum;
  else
    os << "None";
  os << ", affine=" << (options.affine ? "True" : "False")
     << ", track_running_stats=" << (options.track_running_stats ? "True" : "False");
  return os.str();
}

// ---------------------------------------------------------------- LayerNorm, RMSNorm

LayerNormImpl::LayerNormImpl(Shape shape, LayerNormOptions o) : normalized_shape(std::move(shape)), options(o) {
  EMBER_CHECK(!normalized_shape.empty(), ValueError, "[nn.LayerNorm] normalized_shape is empty");
  if (o.elementwise_affine) {
    weight = register_parameter("weight", make(normalized_shape, o.placement));
    if (o.bias) bias = register_parameter("bias", make(normalized_shape, o.placement));
  }
  reset_parameters();
}

void LayerNormImpl::reset_parameters() {
  if (weight.defined()) init::ones_(weight);
  if (bias.defined()) init::zeros_(bias);
}

Tensor LayerNormImpl::forward(const Tensor& x) { return layer_norm(x, normalized_shape, weight, bias, options.eps); }

std::string LayerNormImpl::extra_repr() const {
  std::ostringstream os;
  os << shape_tuple(normalized_shape) << ", eps=" << options.eps
     << ", elementwise_affine=" << (options.elementwise_affine ? "True" : "False");
  return os.str();
}

RMSNormImpl::RMSNormImpl(Shape shape, RMSNormOptions o) : normalized_shape(std::move(shape)), options(o) {
  EMBER_CHECK(!normalized_shape.empty(), ValueError, "[nn.RMSNorm] normalized_shape is empty");
  if (o.elementwise_affine) weight = register_parameter("weight", make(normalized_shape, o.placement));
  reset_parameters();
}

void RMSNormImpl::reset_parameters() {
  if (weight.defined()) init::ones_(weight);
}

Tensor RMSNormImpl::forward(const Tensor& x) { return rms_norm(x, normalized_shape, weight, options.eps); }

std::string RMSNormImpl::extra_repr() const {
  std::ostringstream os;
  os << shape_tuple(normalized_shape) << ", eps=";
  if (options.eps)
    os << *options.eps;
  else
    os << "None";
  os << ", elementwise_affine=" << (options.elementwise_affine ? "True" : "False");
  return os.str();
}

// ---------------------------------------------------------------- GroupNorm

GroupNormImpl::GroupNormImpl(int64_t groups, int64_t channels, GroupNormOptions o)
    : num_groups(groups), num_channels(channels), options(o) {
  EMBER_CHECK(groups > 0 && channels > 0 && channels % groups == 0, ValueError, "[nn.GroupNorm] num_channels ",
              channels, " must be divisible by num_groups ", groups);
  if (o.affine) {
    weight = register_parameter("weight", make({channels}, o.placement));
    bias = register_parameter("bias", make({channels}, o.placement));
  }
  reset_parameters();
}

void GroupNormImpl::reset_parameters() {
  if (weight.defined()) init::ones_(weight);
  if (bias.defined()) init::zeros_(bias);
}

Tensor GroupNormImpl::forward(const Tensor& x) {
  return functional::group_norm(x, num_groups, weight, bias, options.eps);
}

std::string GroupNormImpl::extra_repr() const {
  std::ostringstream os;
  os << num_groups << ", " << num_channels << ", eps=" << options.eps
     << ", affine=" << (options.affine ? "True" : "False");
  return os.str();
}

}  // namespace ember::nn
