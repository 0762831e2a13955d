// Normalisation builders: layer_norm, rms_norm and batch_norm check shapes, dtypes and devices as
// PyTorch does; the per-row and per-channel work is in kernels/cpu/norm.cpp and kernels/cuda/norm.cu.
#include <limits>

#include "core/autocast.hpp"
#include "core/autograd.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/nn.hpp"
#include "core/ops/reduce.hpp"
#include "core/profiler.hpp"
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

// The trailing nd dims, which layer_norm and rms_norm normalise over.
Shape last_dims(size_t nd) {
  Shape dims;
  for (size_t i = nd; i > 0; --i) dims.push_back(-static_cast<int64_t>(i));
  return dims;
}

// d/dx of xhat = (x - mean) * rstd (mean-centred when `centred`) given gw = d/dxhat, over `dims`.
Tensor normalized_input_grad(const Tensor& gw, const Tensor& xhat, const Tensor& rstd, const Shape& dims,
                             bool centred) {
  Tensor inner = gw - xhat * mean(gw * xhat, dims, true);
  if (centred) inner = inner - mean(gw, dims, true);
  return rstd * inner;
}

// layer_norm's first-order backward (no graph to build): the input's gradient in one fused pass per row,
// which also sums the weight's and bias's gradients over the rows; the composite in layer_norm's node is
// what double backward differentiates.
autograd::Grads layer_norm_backward_fused(autograd::Ctx& c, const Tensor& x, const Tensor& w, int64_t rows,
                                          int64_t cols, double eps) {
  const DType ct = compute_dtype(x.dtype());
  Tensor g = c.grad().to(x.dtype()).contiguous();
  Tensor dx = make_tensor(x.shape(), x.dtype(), x.device());
  Tensor gw = c.needs_grad(1) ? make_tensor({cols}, ct, x.device()) : Tensor();
  Tensor gb = c.needs_grad(2) ? make_tensor({cols}, ct, x.device()) : Tensor();
  kernels::layer_norm_backward(dx.view({rows, cols}), gw, gb, x.contiguous().view({rows, cols}), g.view({rows, cols}),
                               flat_param(w, ct, cols), eps);
  return autograd::Grads{c.needs_grad(0) ? dx : Tensor(), gw.defined() ? gw.view(c.input(1).shape) : Tensor(),
                         gb.defined() ? gb.view(c.input(2).shape) : Tensor()};
}

// batch_norm's first-order backward: two fused passes per channel (see kernels::batch_norm_backward).
autograd::Grads batch_norm_backward_fused(autograd::Ctx& ctx, const Tensor& x3, const Tensor& w, const Tensor& mean,
                                          const Tensor& rstd, bool training) {
  const int64_t c = x3.size(1);
  const DType ct = compute_dtype(x3.dtype());
  Tensor x = x3.contiguous(), g = ctx.grad().to(x3.dtype()).contiguous().view(x3.shape());
  Tensor dx = make_tensor(x3.shape(), x3.dtype(), x3.device());
  Tensor sum_g = make_tensor({c}, kF64, x3.device()), sum_gxm = make_tensor({c}, kF64, x3.device());
  Tensor scale = w.defined() ? w.to(kF64).contiguous().reshape({c}) : ones({c}, {.dtype = kF64, .device = x3.device()});
  kernels::batch_norm_backward(dx, sum_g, sum_gxm, x, g, mean, rstd, scale, training);
  autograd::Grads r(3);
  if (ctx.needs_grad(0)) r[0] = dx.view(ctx.input(0).shape);
  if (ctx.needs_grad(1)) r[1] = (sum_gxm * rstd).to(ct).reshape(ctx.input(1).shape);
  if (ctx.needs_grad(2)) r[2] = sum_g.to(ct).reshape(ctx.input(2).shape);
  return r;
}

}  // namespace

Tensor layer_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  profiler::OpRecord prof("layer_norm", {&input, &weight, &bias});
  if (autocast::should_cast(CastPolicy::kFloat32, {&input, &weight, &bias}))
    return layer_norm(autocast::to_f32(input), normalized_shape, autocast::to_f32(weight), autocast::to_f32(bias), eps);
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
  const bool record = autograd::needs_grad({&input, &weight, &bias});
  Tensor out = make_tensor(input.shape(), input.dtype(), input.device());
  {
    autograd::NoGradGuard no_grad;
    kernels::layer_norm(out.view({rows, cols}), input.contiguous().view({rows, cols}), flat_param(weight, ct, cols),
                        flat_param(bias, ct, cols), eps);
  }
  if (record)  // recomputes the row statistics from the saved input: cheaper to keep than two more tensors
    autograd::record(op, {&out}, {&input, &weight, &bias}, {input, weight},
                     [dims = last_dims(normalized_shape.size()), eps, rows, cols](autograd::Ctx& c) {
                       Tensor x = c.saved(0), w = c.saved(1);
                       const DType ct = compute_dtype(x.dtype());
                       if (!autograd::is_grad_enabled()) return layer_norm_backward_fused(c, x, w, rows, cols, eps);
                       Tensor xc = x.to(ct), g = c.grad().to(ct);
                       Tensor xm = xc - mean(xc, dims, true);
                       Tensor rstd = rsqrt(mean(xm * xm, dims, true) + eps);
                       Tensor xhat = xm * rstd;
                       Tensor gw = w.defined() ? g * w.to(ct) : g;
                       return autograd::Grads{
                           c.needs_grad(0) ? normalized_input_grad(gw, xhat, rstd, dims, true) : Tensor(),
                           c.needs_grad(1) ? g * xhat : Tensor(),  // the engine sums the rows away
                           c.needs_grad(2) ? g : Tensor()};
                     });
  return out;
}

Tensor rms_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight, std::optional<double> eps) {
  profiler::OpRecord prof("rms_norm", {&input, &weight});
  if (autocast::should_cast(CastPolicy::kFloat32, {&input, &weight}))
    return rms_norm(autocast::to_f32(input), normalized_shape, autocast::to_f32(weight), eps);
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
  const bool record = autograd::needs_grad({&input, &weight});
  Tensor out = make_tensor(input.shape(), input.dtype(), input.device());
  {
    autograd::NoGradGuard no_grad;
    kernels::rms_norm(out.view({rows, cols}), input.contiguous().view({rows, cols}), flat_param(weight, ct, cols), e);
  }
  if (record)
    autograd::record(op, {&out}, {&input, &weight}, {input, weight},
                     [dims = last_dims(normalized_shape.size()), e](autograd::Ctx& c) {
                       Tensor x = c.saved(0), w = c.saved(1);
                       const DType ct = compute_dtype(x.dtype());
                       Tensor xc = x.to(ct), g = c.grad().to(ct);
                       Tensor rstd = rsqrt(mean(xc * xc, dims, true) + e);
                       Tensor xhat = xc * rstd;
                       Tensor gw = w.defined() ? g * w.to(ct) : g;
                       return autograd::Grads{
                           c.needs_grad(0) ? normalized_input_grad(gw, xhat, rstd, dims, false) : Tensor(),
                           c.needs_grad(1) ? g * xhat : Tensor()};
                     });
  return out;
}

Tensor batch_norm(const Tensor& input, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  profiler::OpRecord prof("batch_norm", {&input, &weight, &bias});
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

  const bool record = autograd::needs_grad({&input, &weight, &bias});
  autograd::NoGradGuard no_grad;  // the statistics below are constants; the node is recorded at the end
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
  if (!record) return out;
  // Training differentiates through the batch statistics (recomputed from the saved input); evaluation
  // treats the running statistics as constants, kept here as they were.
  // The statistics used (f64 [C]): the fused backward takes them as they are; the composite below
  // recomputes the batch's from the saved input so that double backward sees them depend on it.
  Tensor stat_mean = training ? mean : mean.clone(), stat_rstd = rsqrt(var + f64(eps));
  autograd::record(
      op, {&out}, {&input, &weight, &bias}, {input, weight},
      [training, eps, n, c, spatial, stat_mean, stat_rstd](autograd::Ctx& ctx) {
        Tensor x = ctx.saved(0), w = ctx.saved(1);
        if (!autograd::is_grad_enabled())
          return batch_norm_backward_fused(ctx, x.reshape({n, c, spatial}), w, stat_mean, stat_rstd, training);
        const DType ct = compute_dtype(x.dtype());
        const Shape dims{0, 2}, channel{1, c, 1};
        Tensor x3 = x.to(ct).reshape({n, c, spatial}), g3 = ctx.grad().to(ct).reshape({n, c, spatial});
        Tensor xm, rstd;
        if (training) {
          xm = x3 - ember::mean(x3, dims, true);
          rstd = rsqrt(ember::mean(xm * xm, dims, true) + eps);
        } else {
          xm = x3 - stat_mean.to(ct).reshape(channel);
          rstd = stat_rstd.to(ct).reshape(channel);
        }
        Tensor xhat = xm * rstd;
        Tensor gw = w.defined() ? g3 * w.to(ct).reshape(channel) : g3;
        autograd::Grads r(3);
        if (ctx.needs_grad(0))
          r[0] = (training ? normalized_input_grad(gw, xhat, rstd, dims, true) : gw * rstd).reshape(ctx.input(0).shape);
        if (ctx.needs_grad(1)) r[1] = sum(g3 * xhat, dims).reshape(ctx.input(1).shape);
        if (ctx.needs_grad(2)) r[2] = sum(g3, dims).reshape(ctx.input(2).shape);
        return r;
      });
  return out;
}

}  // namespace ember
