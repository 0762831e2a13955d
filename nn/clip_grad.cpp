// Gradient clipping as torch.nn.utils.clip_grad: one norm per gradient, the norm of those norms (on CUDA
// one multi-tensor reduction instead), one in-place multiply per gradient by the clamped coefficient (a
// 0-dim tensor, so no host sync is needed).
#include "nn/clip_grad.hpp"

#include <cmath>

#include "core/autograd.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/optim.hpp"
#include "core/ops/reduce.hpp"
#include "core/ops/shape.hpp"

namespace ember::nn {
namespace {
std::vector<Tensor> grads_of(const std::vector<Tensor>& params) {
  std::vector<Tensor> grads;
  for (const Tensor& p : params) {
    EMBER_CHECK(p.defined(), ValueError, "[clip_grad] a parameter is undefined");
    Tensor g = p.grad();
    if (g.defined()) grads.push_back(std::move(g));
  }
  return grads;
}

void check_finite(const Tensor& total, double norm_type, bool error_if_nonfinite) {
  if (!error_if_nonfinite) return;
  const double v = total.item().to_double();
  EMBER_CHECK(std::isfinite(v), ValueError, "[clip_grad_norm_] The total norm of order ", norm_type,
              " for gradients from `parameters` is non-finite (", v,
              "), so it cannot be clipped. To disable this error and scale the gradients by the non-finite norm "
              "anyway, set error_if_nonfinite=false");
}
}  // namespace

Tensor get_total_norm(const std::vector<Tensor>& tensors, double norm_type, bool error_if_nonfinite) {
  autograd::NoGradGuard no_grad;
  if (tensors.empty()) return full(Shape{}, 0.0);
  EMBER_CHECK(norm_type > 0 || std::isinf(norm_type), ValueError,
              "[clip_grad_norm_] norm_type must be positive or inf, got ", norm_type);
  DType dt = tensors[0].dtype();
  for (const Tensor& t : tensors) {
    EMBER_CHECK(t.is_floating_point(), DTypeError, "[clip_grad_norm_] needs floating gradients, got ", describe(t));
    dt = promote_types(dt, t.dtype());
  }
  const Device first = tensors[0].device();
  // One multi-tensor reduction (contiguous tensors on one device; squares summed in double on both
  // devices, so f32 gradients past 1.8e19 do not overflow) for p > 0 and +inf; -inf (the smallest
  // magnitude) takes the per-tensor norms.
  bool one_pass = norm_type > 0;
  for (const Tensor& t : tensors) one_pass = one_pass && t.device() == first && t.is_contiguous() && t.numel() > 0;
  if (one_pass) {
    Tensor total = multi_tensor_norm(tensors, norm_type, dt);
    check_finite(total, norm_type, error_if_nonfinite);
    return total;
  }
  std::vector<Tensor> norms;
  norms.reserve(tensors.size());
  for (const Tensor& t : tensors) norms.push_back(norm(t, norm_type).to(first, dt));
  Tensor total = norm(stack(norms), norm_type);
  check_finite(total, norm_type, error_if_nonfinite);
  return total;
}

void clip_grads_with_norm_(const std::vector<Tensor>& params, double max_norm, const Tensor& total_norm) {
  autograd::NoGradGuard no_grad;
  std::vector<Tensor> grads = grads_of(params);
  if (grads.empty()) return;
  Tensor coef = (max_norm / (total_norm + 1e-6)).clamp(std::nullopt, 1.0);
  for (Tensor& g : grads) g.mul_(coef.to(g.device()));
}

Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type, bool error_if_nonfinite) {
  Tensor total = get_total_norm(grads_of(params), norm_type, error_if_nonfinite);
  clip_grads_with_norm_(params, max_norm, total);
  return total;
}

void clip_grad_value_(const std::vector<Tensor>& params, double clip_value) {
  autograd::NoGradGuard no_grad;
  for (Tensor& g : grads_of(params)) g.clamp_(-clip_value, clip_value);
}

}  // namespace ember::nn
