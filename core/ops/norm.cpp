// Normalisation builders: layer_norm, rms_norm and batch_norm check shapes, dtypes and devices as
// PyTorch does; the per-row and per-channel work is in kernels/cpu/norm.cpp.
#include <limits>

#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/nn.hpp"
#include "kernels/nn.hpp"

namespace ember {
namespace {

// f64 computes in f64, everything else in f32.
DType compute_dtype(DType dt) { return dt == kF64 ? kF64 : kF32; }

void check_float_input(const char* op, const Tensor& input) {
  EMBER_CHECK(input.defined(), ValueError, "[", op, "] input is undefined");
  EMBER_CHECK(input.is_floating_point(), DTypeError, "[", op, "] needs a floating input, got ", describe(input));
}

void check_device(const char* op, const char* name, const Tensor& input, const Tensor& t) {
  EMBER_CHECK(!t.defined() || t.device() == input.device(), DeviceError, "[", op,
              "] expected all tensors on one device, got input ", describe(input), " and ", name, " ", describe(t));
}

// PyTorch's rule for affine parameters and running statistics: the input's dtype, or f32 beside an
// f16/bf16 input (mixed precision).
void check_param_dtype(const char* op, const char* name, const Tensor& input, const Tensor& t) {
  if (!t.defined()) return;
  const DType in = input.dtype();
  const bool ok = t.dtype() == in || ((in == kF16 || in == kBF16) && t.dtype() == kF32);
  EMBER_CHECK(ok, DTypeError, "[", op, "] ", name, " must have the input's dtype ", in,
              (in == kF16 || in == kBF16 ? " or float32" : ""), ", got ", describe(t));
}

// Checks that input ends with normalized_shape; returns the number of elements per row.
int64_t check_normalized_shape(const char* op, const Tensor& input, const Shape& normalized_shape) {
  const auto nd = static_cast<int64_t>(normalized_shape.size());
  EMBER_CHECK(nd >= 1, ShapeError, "[", op, "] normalized_shape must have at least one dim, got ", normalized_shape);
  bool ok = input.dim() >= nd;
  for (int64_t i = 0; ok && i < nd; ++i) ok = input.size(input.dim() - nd + i) == normalized_shape[i];
  EMBER_CHECK(ok, ShapeError, "[", op, "] given normalized_shape=", normalized_shape,
              ", expected input with shape [*, ", normalized_shape.str().substr(1), ", got ", describe(input));
  return shape_numel(normalized_shape);
}

void check_affine_shape(const char* op, const char* name, const Tensor& t, const Shape& normalized_shape) {
  EMBER_CHECK(!t.defined() || t.shape() == normalized_shape, ShapeError, "[", op, "] ", name,
              " shape must equal normalized_shape ", normalized_shape, ", got ", describe(t));
}

// A contiguous [cols] copy of an affine parameter in the computation dtype, or undefined.
Tensor flat_param(const Tensor& t, DType ct, int64_t cols) {
  return t.defined() ? t.to(ct).contiguous().reshape({cols}) : Tensor();
}

// The leading dims collapsed into rows: [rows, cols].
int64_t row_count(const Tensor& input, int64_t nd) {
  int64_t rows = 1;
  for (int64_t d = 0; d < input.dim() - nd; ++d) rows *= input.size(d);
  return rows;
}

}  // namespace

Tensor layer_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  const char* op = "layer_norm";
  check_float_input(op, input);
  const int64_t cols = check_normalized_shape(op, input, normalized_shape);
  check_affine_shape(op, "weight", weight, normalized_shape);
  check_affine_shape(op, "bias", bias, normalized_shape);
  check_param_dtype(op, "weight", input, weight);
  check_param_dtype(op, "bias", input, bias);
  check_device(op, "weight", input, weight);
  check_device(op, "bias", input, bias);
  const int64_t rows = row_count(input, static_cast<int64_t>(normalized_shape.size()));
  const DType ct = compute_dtype(input.dtype());
  Tensor out = make_tensor(input.shape(), input.dtype(), input.device());
  kernels::layer_norm(out.view({rows, cols}), input.contiguous().view({rows, cols}), flat_param(weight, ct, cols),
                      flat_param(bias, ct, cols), eps);
  return out;
}

Tensor rms_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight, std::optional<double> eps) {
  const char* op = "rms_norm";
  check_float_input(op, input);
  const int64_t cols = check_normalized_shape(op, input, normalized_shape);
  check_affine_shape(op, "weight", weight, normalized_shape);
  EMBER_CHECK(!weight.defined() || weight.is_floating_point(), DTypeError, "[", op, "] weight must be floating, got ",
              describe(weight));
  check_device(op, "weight", input, weight);
  const int64_t rows = row_count(input, static_cast<int64_t>(normalized_shape.size()));
  const DType ct = compute_dtype(input.dtype());
  // PyTorch's default is the machine epsilon of the computation type (f32 for f16/bf16 inputs).
  const double e = eps.value_or(ct == kF64 ? std::numeric_limits<double>::epsilon()
                                           : static_cast<double>(std::numeric_limits<float>::epsilon()));
  Tensor out = make_tensor(input.shape(), input.dtype(), input.device());
  kernels::rms_norm(out.view({rows, cols}), input.contiguous().view({rows, cols}), flat_param(weight, ct, cols), e);
  return out;
}

Tensor batch_norm(const Tensor& input, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  const char* op = "batch_norm";
  check_float_input(op, input);
  EMBER_CHECK(input.dim() >= 2, ShapeError, "[", op, "] expected an input [N, C, *] of at least 2 dims, got ",
              describe(input));
  const int64_t n = input.size(0), c = input.size(1);
  const std::pair<const char*, const Tensor*> params[] = {
      {"running_mean", &running_mean}, {"running_var", &running_var}, {"weight", &weight}, {"bias", &bias}};
  for (const auto& [name, t] : params) {
    if (!t->defined()) continue;
    EMBER_CHECK(t->numel() == c, ShapeError, "[", op, "] ", name, " should contain ", c, " elements (the channels of ",
                describe(input), "), got ", describe(*t));
    check_param_dtype(op, name, input, *t);
    check_device(op, name, input, *t);
  }
  EMBER_CHECK(running_mean.defined() == running_var.defined(), ValueError, "[", op,
              "] running_mean and running_var must be given together");
  EMBER_CHECK(training || running_mean.defined(), ValueError, "[", op,
              "] running_mean and running_var must be defined in evaluation mode");
  int64_t spatial = 1;
  for (int64_t d = 2; d < input.dim(); ++d) spatial *= input.size(d);
  const int64_t count = n * spatial;  // values per channel
  EMBER_CHECK(!training || count != 1, ValueError, "[", op,
              "] expected more than 1 value per channel when training, got input ", describe(input));

  Tensor x = input.reshape({n, c, spatial});
  Tensor out = make_tensor(input.shape(), input.dtype(), input.device());
  if (out.numel() == 0) return out;  // nothing to normalise and, as PyTorch, no statistics to update

  // Per-channel constants are 0-dim f64 tensors so they stay exact in double (a Scalar operand would be
  // wrapped as f32).
  const Device dev = input.device();
  auto f64 = [&](double v) { return full({}, v, {.dtype = kF64, .device = dev}); };
  Tensor mean, var;
  if (training) {
    mean = make_tensor({c}, kF64, dev);
    var = make_tensor({c}, kF64, dev);
    kernels::batch_norm_stats(mean, var, x);
    if (running_mean.defined()) {
      // As PyTorch: running = (1 - momentum) * running + momentum * batch, with the unbiased variance.
      const double unbias = static_cast<double>(count) / static_cast<double>(count - 1);
      Tensor rm = running_mean.to(kF64).reshape({c}) * f64(1.0 - momentum) + mean * f64(momentum);
      Tensor rv = running_var.to(kF64).reshape({c}) * f64(1.0 - momentum) + var * f64(unbias * momentum);
      Tensor(running_mean).copy_(rm.reshape(running_mean.shape()));
      Tensor(running_var).copy_(rv.reshape(running_var.shape()));
    }
  } else {
    mean = running_mean.to(kF64).reshape({c});
    var = running_var.to(kF64).reshape({c});
  }
  // y = x * scale + shift with scale = weight / sqrt(var + eps), shift = bias - mean * scale.
  Tensor scale = rsqrt(var + f64(eps));
  if (weight.defined()) scale = scale * weight.to(kF64).reshape({c});
  Tensor shift = bias.defined() ? bias.to(kF64).reshape({c}) - mean * scale : -(mean * scale);
  kernels::batch_norm_apply(out.view(x.shape()), x, scale.contiguous(), shift.contiguous());
  return out;
}

}  // namespace ember
