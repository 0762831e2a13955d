// nn::functional losses with torch.nn.functional's semantics: the regression losses, cross_entropy
// (fused core op for class indices on CPU and CUDA, composite otherwise), nll_loss, the binary cross entropies
// (recorded with PyTorch's own gradient formulas) and kl_div. Argument checks name the loss.
#include "core/ops/loss.hpp"

#include <cmath>
#include <string>

#include "core/autocast.hpp"
#include "core/autograd.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/index.hpp"
#include "core/ops/reduce.hpp"
#include "core/ops/shape.hpp"
#include "nn/functional.hpp"

namespace ember::nn::functional {
namespace {

enum class Reduction { None, Mean, Sum, BatchMean };

Reduction parse_reduction(const char* op, std::string_view r, bool allow_batchmean = false) {
  if (r == "mean") return Reduction::Mean;
  if (r == "sum") return Reduction::Sum;
  if (r == "none") return Reduction::None;
  if (allow_batchmean && r == "batchmean") return Reduction::BatchMean;
  throw ValueError(detail::cat_str("[", op, "] reduction must be ",
                                   allow_batchmean ? "'none', 'mean', 'sum' or 'batchmean'" : "'none', 'mean' or 'sum'",
                                   ", got '", r, "'"));
}

Tensor reduce(const Tensor& loss, Reduction r) {
  switch (r) {
    case Reduction::None:
      return loss;
    case Reduction::Sum:
      return sum(loss);
    default:
      return mean(loss);
  }
}

void check_defined(const char* op, const char* name, const Tensor& t) {
  EMBER_CHECK(t.defined(), ValueError, "[", op, "] ", name, " is undefined");
}

void check_device(const char* op, const char* name, const Tensor& input, const Tensor& t) {
  EMBER_CHECK(!t.defined() || t.device() == input.device(), DeviceError, "[", op,
              "] expected all tensors on one device, got input ", describe(input), " and ", name, " ", describe(t));
}

// Pointwise losses: floating input and target of one shape on one device.
void check_pointwise(const char* op, const Tensor& input, const Tensor& target) {
  check_defined(op, "input", input);
  check_defined(op, "target", target);
  EMBER_CHECK(input.is_floating_point() && target.is_floating_point(), DTypeError, "[", op,
              "] needs floating input and target, got input ", describe(input), " and target ", describe(target));
  EMBER_CHECK(input.shape() == target.shape(), ShapeError, "[", op, "] input ", describe(input), " and target ",
              describe(target), " must have the same shape");
  check_device(op, "target", input, target);
}

// An optional elementwise factor (weight, pos_weight) must broadcast to `shape` without enlarging it.
void check_broadcasts_to(const char* op, const char* name, const Tensor& t, const Shape& shape) {
  if (!t.defined()) return;
  bool ok = t.dim() <= static_cast<int64_t>(shape.size());
  for (int64_t i = 1; ok && i <= t.dim(); ++i)
    ok = t.size(-i) == 1 || t.size(-i) == shape[shape.size() - static_cast<size_t>(i)];
  EMBER_CHECK(ok, ShapeError, "[", op, "] ", name, " ", describe(t), " does not broadcast to the input's shape ",
              shape);
  EMBER_CHECK(t.is_floating_point(), DTypeError, "[", op, "] ", name, " must be floating, got ", describe(t));
}

// ------------------------------------------------------------------------ class-index targets

// The class-dim layout shared by cross_entropy and nll_loss: input [N, C, d...] with target
// [N, d...], or unbatched input [C] with a 0-dim target (returned as [1, C] and [1]).
struct ClassLayout {
  Tensor input, target;
  bool unbatched = false;
  int64_t classes = 0;
};

void check_weight(const char* op, const Tensor& weight, const Tensor& input, int64_t c) {
  if (!weight.defined()) return;
  EMBER_CHECK(weight.dim() == 1 && weight.size(0) == c, ShapeError, "[", op, "] weight must be [", c,
              "] (one per class of input ", describe(input), "), got ", describe(weight));
  EMBER_CHECK(weight.is_floating_point(), DTypeError, "[", op, "] weight must be floating, got ", describe(weight));
  check_device(op, "weight", input, weight);
}

ClassLayout class_layout(const char* op, const Tensor& input, const Tensor& target, const Tensor& weight) {
  check_defined(op, "input", input);
  check_defined(op, "target", target);
  EMBER_CHECK(input.is_floating_point(), DTypeError, "[", op, "] needs a floating input, got ", describe(input));
  EMBER_CHECK(input.dim() >= 1, ShapeError, "[", op, "] input must be [C], [N, C] or [N, C, d1, ...], got ",
              describe(input));
  check_device(op, "target", input, target);
  EMBER_CHECK(target.dtype() == kI64 || target.dtype() == kI32 || target.dtype() == kU8, DTypeError, "[", op,
              "] class-index target must be int64 (int32 and uint8 are accepted), got ", describe(target),
              input.shape() == target.shape()
                  ? " (a target of the input's shape holds class probabilities and must be floating)"
                  : "");
  ClassLayout l;
  l.unbatched = input.dim() == 1;
  l.input = l.unbatched ? input.unsqueeze(0) : input;
  l.target = l.unbatched ? target.unsqueeze(0) : target;
  Shape want(l.input.shape());
  want.erase(1);
  EMBER_CHECK(l.target.shape() == want, ShapeError, "[", op, "] expected target ", l.unbatched ? Shape{} : want,
              " (input ", describe(input), " without its class dim) for class indices, got ", describe(target));
  l.classes = l.input.size(1);
  check_weight(op, weight, input, l.classes);
  return l;
}

// nll_loss on the canonical layout, without argument checks; also returns the per-position weights.
std::pair<Tensor, Tensor> nll_impl(const ClassLayout& l, const Tensor& weight, int64_t ignore_index) {
  Tensor t = l.target.to(kI64);
  Tensor valid = t != Scalar(ignore_index);
  Tensor safe = where(valid, t, Scalar(0));
  Tensor validf = valid.to(l.input.dtype());
  Tensor wt = weight.defined()
                  ? index_select(weight.to(l.input.dtype()), 0, safe.reshape({-1})).reshape(t.shape()) * validf
                  : validf;
  Tensor picked = gather(l.input, 1, safe.unsqueeze(1)).squeeze(1);
  return {-picked * wt, wt};
}

// 'mean' of per-position losses over the summed target weights D, as PyTorch: NaN when D is 0 (every
// target ignored), yet zero gradients there (a plain sum / D would send inf * 0 = NaN back).
Tensor weighted_mean(const Tensor& loss, const Tensor& valid, const Tensor& wt) {
  Tensor d = sum(wt).detach();
  Tensor scale = where(valid, reciprocal(d), Scalar(0.0));
  return sum(loss * scale) + (d - d) / d;  // + NaN only when D = 0
}

Tensor finish_class_loss(const Tensor& loss, const ClassLayout& l, Reduction r) {
  return r == Reduction::None && l.unbatched ? loss.squeeze(0) : loss;
}

// The composite cross entropy for class-index targets (PyTorch's cross_entropy_loss_label_smoothing).
Tensor cross_entropy_indices_composite(const ClassLayout& l, const Tensor& weight, int64_t ignore_index, Reduction r,
                                       double label_smoothing) {
  Tensor logp = ember::log_softmax(l.input, 1);
  auto [nll, wt] = nll_impl({logp, l.target, l.unbatched, l.classes}, weight, ignore_index);
  if (label_smoothing > 0) {
    Tensor smooth;
    if (weight.defined()) {
      Shape ch(static_cast<size_t>(logp.dim()), 1);
      ch[1] = l.classes;
      smooth = -sum(logp * weight.to(logp.dtype()).reshape(ch), {1});
    } else {
      smooth = -sum(logp, {1});
    }
    smooth = where(l.target.to(kI64) != Scalar(ignore_index), smooth, Scalar(0.0));
    nll = nll * (1.0 - label_smoothing) + smooth * (label_smoothing / static_cast<double>(l.classes));
  }
  if (r == Reduction::None) return nll;
  if (r == Reduction::Sum) return sum(nll);
  return weighted_mean(nll, l.target.to(kI64) != Scalar(ignore_index), wt);
}

// Class-probability targets: -sum_c w_c t_c log_softmax(x)_c per position; 'mean' over positions.
Tensor cross_entropy_probs(const Tensor& input, const Tensor& target, const Tensor& weight, Reduction r,
                           double label_smoothing) {
  const bool unbatched = input.dim() == 1;
  Tensor x = unbatched ? input.unsqueeze(0) : input, t = unbatched ? target.unsqueeze(0) : target;
  const int64_t c = x.size(1);
  Tensor logp = ember::log_softmax(x, 1);
  if (label_smoothing > 0) t = t * (1.0 - label_smoothing) + label_smoothing / static_cast<double>(c);
  Tensor prod = logp * t;
  if (weight.defined()) {
    Shape ch(static_cast<size_t>(x.dim()), 1);
    ch[1] = c;
    prod = prod * weight.to(x.dtype()).reshape(ch);
  }
  Tensor loss = -sum(prod, {1});
  if (r == Reduction::None) return unbatched ? loss.squeeze(0) : loss;
  if (r == Reduction::Sum) return sum(loss);
  return sum(loss) / static_cast<double>(loss.numel());  // 0 / 0 = NaN for an empty batch, as PyTorch
}

// Dispatch shared by cross_entropy and cross_entropy_composite.
Tensor cross_entropy_impl(const Tensor& input, const Tensor& target, const Tensor& weight, int64_t ignore_index,
                          std::string_view reduction, double label_smoothing, bool fused,
                          std::optional<DType> loss_dtype = std::nullopt) {
  if (!loss_dtype && autocast::should_cast(CastPolicy::kFloat32, {&input, &target, &weight})) {
    // Class indices on CUDA: the fused kernel reads f16/bf16 logits as they are and gives the float32 loss,
    // without the float32 copy of the logits (GPT-2's [8192, 50257]: 1.6 GB saved for backward).
    const bool low = input.defined() && (input.dtype() == kF16 || input.dtype() == kBF16);
    const bool indices = target.defined() && !target.is_floating_point();
    if (fused && low && indices && input.device().is_cuda())
      return cross_entropy_impl(input, target, autocast::to_f32(weight), ignore_index, reduction, label_smoothing, true,
                                kF32);
    return cross_entropy_impl(autocast::to_f32(input), autocast::to_f32(target), autocast::to_f32(weight), ignore_index,
                              reduction, label_smoothing, fused);
  }
  const char* op = "cross_entropy";
  const Reduction r = parse_reduction(op, reduction);
  EMBER_CHECK(label_smoothing >= 0 && label_smoothing <= 1, ValueError, "[", op,
              "] label_smoothing must be in [0, 1], got ", label_smoothing);
  check_defined(op, "input", input);
  check_defined(op, "target", target);
  if (target.is_floating_point()) {
    EMBER_CHECK(input.is_floating_point(), DTypeError, "[", op, "] needs a floating input, got ", describe(input));
    EMBER_CHECK(input.dim() >= 1 && target.shape() == input.shape(), ShapeError, "[", op,
                "] a floating target holds class probabilities and must have the input's shape: input ",
                describe(input), ", target ", describe(target));
    EMBER_CHECK(ignore_index < 0, ValueError, "[", op, "] ignore_index (", ignore_index,
                ") is not supported with class-probability targets ", describe(target));
    check_device(op, "target", input, target);
    check_weight(op, weight, input, input.dim() == 1 ? input.size(0) : input.size(1));
    return cross_entropy_probs(input, target, weight, r, label_smoothing);
  }
  ClassLayout l = class_layout(op, input, target, weight);
  // The fused op: f32/f64 on the CPU, every floating dtype on CUDA (f16/bf16 accumulate in f32 there).
  const bool kernel = fused && (input.device().is_cuda() ||
                                (input.device().is_cpu() && (input.dtype() == kF32 || input.dtype() == kF64)));
  if (!kernel) {
    check_class_targets(op, l.target, l.classes, ignore_index);
    return finish_class_loss(cross_entropy_indices_composite(l, weight, ignore_index, r, label_smoothing), l, r);
  }
  // [N, C, d...] -> [N, C, K]; the kernel checks the targets itself.
  const int64_t n = l.input.size(0);
  int64_t k = 1;
  for (int64_t d = 2; d < l.input.dim(); ++d) k *= l.input.size(d);
  Tensor x3 = l.input.reshape({n, l.classes, k});
  Tensor t2 = l.target.reshape({n, k});
  const LossReduction lr = r == Reduction::None  ? LossReduction::None
                           : r == Reduction::Sum ? LossReduction::Sum
                                                 : LossReduction::Mean;
  Tensor loss = cross_entropy_loss(x3, t2, weight, ignore_index, lr, label_smoothing, loss_dtype);
  return r == Reduction::None ? loss.reshape(target.shape()) : loss;
}

}  // namespace

// ------------------------------------------------------------------------------ regression

Tensor mse_loss(const Tensor& input, const Tensor& target, std::string_view reduction) {
  if (autocast::should_cast(CastPolicy::kFloat32, {&input, &target}))
    return mse_loss(autocast::to_f32(input), autocast::to_f32(target), reduction);
  const Reduction r = parse_reduction("mse_loss", reduction);
  check_pointwise("mse_loss", input, target);
  Tensor d = input - target;
  return reduce(d * d, r);
}

Tensor l1_loss(const Tensor& input, const Tensor& target, std::string_view reduction) {
  if (autocast::should_cast(CastPolicy::kFloat32, {&input, &target}))
    return l1_loss(autocast::to_f32(input), autocast::to_f32(target), reduction);
  const Reduction r = parse_reduction("l1_loss", reduction);
  check_pointwise("l1_loss", input, target);
  return reduce(abs(input - target), r);
}

Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, std::string_view reduction, double beta) {
  if (autocast::should_cast(CastPolicy::kFloat32, {&input, &target}))
    return smooth_l1_loss(autocast::to_f32(input), autocast::to_f32(target), reduction, beta);
  const Reduction r = parse_reduction("smooth_l1_loss", reduction);
  check_pointwise("smooth_l1_loss", input, target);
  EMBER_CHECK(beta >= 0, ValueError, "[smooth_l1_loss] beta must be non-negative, got ", beta);
  Tensor d = abs(input - target);
  if (beta == 0) return reduce(d, r);
  return reduce(where(d < Scalar(beta), d * d * (0.5 / beta), d - 0.5 * beta), r);
}

Tensor huber_loss(const Tensor& input, const Tensor& target, std::string_view reduction, double delta) {
  if (autocast::should_cast(CastPolicy::kFloat32, {&input, &target}))
    return huber_loss(autocast::to_f32(input), autocast::to_f32(target), reduction, delta);
  const Reduction r = parse_reduction("huber_loss", reduction);
  check_pointwise("huber_loss", input, target);
  EMBER_CHECK(delta > 0, ValueError, "[huber_loss] delta must be positive, got ", delta);
  Tensor d = abs(input - target);
  return reduce(where(d < Scalar(delta), d * d * 0.5, (d - 0.5 * delta) * delta), r);
}

// ------------------------------------------------------------------------------ classification

Tensor cross_entropy(const Tensor& input, const Tensor& target, const Tensor& weight, int64_t ignore_index,
                     std::string_view reduction, double label_smoothing) {
  return cross_entropy_impl(input, target, weight, ignore_index, reduction, label_smoothing, true);
}

Tensor cross_entropy_composite(const Tensor& input, const Tensor& target, const Tensor& weight, int64_t ignore_index,
                               std::string_view reduction, double label_smoothing) {
  return cross_entropy_impl(input, target, weight, ignore_index, reduction, label_smoothing, false);
}

Tensor nll_loss(const Tensor& input, const Tensor& target, const Tensor& weight, int64_t ignore_index,
                std::string_view reduction) {
  if (autocast::should_cast(CastPolicy::kFloat32, {&input, &weight}))
    return nll_loss(autocast::to_f32(input), target, autocast::to_f32(weight), ignore_index, reduction);
  const char* op = "nll_loss";
  const Reduction r = parse_reduction(op, reduction);
  check_defined(op, "target", target);
  EMBER_CHECK(!target.is_floating_point(), DTypeError, "[", op,
              "] takes class-index targets (int64); for class probabilities use cross_entropy, got ", describe(target));
  ClassLayout l = class_layout(op, input, target, weight);
  check_class_targets(op, l.target, l.classes, ignore_index);
  auto [loss, wt] = nll_impl(l, weight, ignore_index);
  if (r == Reduction::None) return finish_class_loss(loss, l, r);
  if (r == Reduction::Sum) return sum(loss);
  return weighted_mean(loss, l.target.to(kI64) != Scalar(ignore_index), wt);
}

Tensor binary_cross_entropy(const Tensor& input, const Tensor& target, const Tensor& weight,
                            std::string_view reduction) {
  if (autocast::should_cast(CastPolicy::kFloat32, {&input, &target, &weight}))
    return binary_cross_entropy(autocast::to_f32(input), autocast::to_f32(target), autocast::to_f32(weight), reduction);
  const char* op = "binary_cross_entropy";
  const Reduction r = parse_reduction(op, reduction);
  check_pointwise(op, input, target);
  check_broadcasts_to(op, "weight", weight, input.shape());
  check_device(op, "weight", input, weight);
  Tensor loss;
  {
    autograd::NoGradGuard no_grad;
    check_probabilities(op, input);
    // PyTorch: (t - 1) * max(log1p(-x), -100) - t * max(log(x), -100).
    loss = (target - 1.0) * clamp(log1p(-input), Scalar(-100.0)) - target * clamp(log(input), Scalar(-100.0));
    if (weight.defined()) loss = loss * weight;
  }
  if (autograd::needs_grad({&input, &target}))
    autograd::record(op, {&loss}, {&input, &target}, {input, target, weight}, [](autograd::Ctx& c) {
      Tensor x = c.saved(0), t = c.saved(1), w = c.saved(2);
      Tensor g = w.defined() ? c.grad() * w : c.grad();
      autograd::Grads grads(2);
      // PyTorch's gradients: finite at x = 0 and 1 thanks to its epsilon (1e-12 rounded to float), and
      // the clamped logs for t.
      if (c.needs_grad(0)) grads[0] = g * (x - t) / clamp((1.0 - x) * x, Scalar(static_cast<double>(1e-12f)));
      if (c.needs_grad(1)) grads[1] = g * (clamp(log1p(-x), Scalar(-100.0)) - clamp(log(x), Scalar(-100.0)));
      return grads;
    });
  return reduce(loss, r);
}

Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target, const Tensor& weight,
                                        std::string_view reduction, const Tensor& pos_weight) {
  if (autocast::should_cast(CastPolicy::kFloat32, {&input, &target, &weight, &pos_weight}))
    return binary_cross_entropy_with_logits(autocast::to_f32(input), autocast::to_f32(target), autocast::to_f32(weight),
                                            reduction, autocast::to_f32(pos_weight));
  const char* op = "binary_cross_entropy_with_logits";
  const Reduction r = parse_reduction(op, reduction);
  check_pointwise(op, input, target);
  check_broadcasts_to(op, "weight", weight, input.shape());
  check_broadcasts_to(op, "pos_weight", pos_weight, input.shape());
  check_device(op, "weight", input, weight);
  check_device(op, "pos_weight", input, pos_weight);
  // softplus(-x) = -log(sigmoid(x)) = log1p(exp(-|x|)) + max(-x, 0), exact for large |x|.
  auto softplus_neg = [](const Tensor& x) { return log1p(exp(-abs(x))) + clamp(-x, Scalar(0.0)); };
  Tensor loss;
  {
    autograd::NoGradGuard no_grad;
    Tensor sp = softplus_neg(input);
    loss = pos_weight.defined() ? (1.0 - target) * input + ((pos_weight - 1.0) * target + 1.0) * sp
                                : (1.0 - target) * input + sp;
    if (weight.defined()) loss = loss * weight;
  }
  if (autograd::needs_grad({&input, &target}))
    autograd::record(op, {&loss}, {&input, &target}, {input, target, weight, pos_weight},
                     [softplus_neg](autograd::Ctx& c) {
                       Tensor x = c.saved(0), t = c.saved(1), w = c.saved(2), pw = c.saved(3);
                       Tensor g = w.defined() ? c.grad() * w : c.grad();
                       autograd::Grads grads(2);
                       if (c.needs_grad(0)) {
                         Tensor s = ember::sigmoid(x);
                         grads[0] = g * (pw.defined() ? (pw * t + 1.0 - t) * s - pw * t : s - t);
                       }
                       if (c.needs_grad(1)) grads[1] = g * (pw.defined() ? (pw - 1.0) * softplus_neg(x) - x : -x);
                       return grads;
                     });
  return reduce(loss, r);
}

Tensor kl_div(const Tensor& input, const Tensor& target, std::string_view reduction, bool log_target) {
  if (autocast::should_cast(CastPolicy::kFloat32, {&input, &target}))
    return kl_div(autocast::to_f32(input), autocast::to_f32(target), reduction, log_target);
  const char* op = "kl_div";
  const Reduction r = parse_reduction(op, reduction, true);
  check_pointwise(op, input, target);
  Tensor loss;
  if (log_target) {
    loss = exp(target) * (target - input);
  } else {
    // xlogy(t, t) - t * x: 0 where t == 0 (log of 1 there keeps the gradient finite).
    Tensor safe = where(target == Scalar(0.0), Scalar(1.0), target);
    loss = target * (log(safe) - input);
  }
  if (r == Reduction::BatchMean) return sum(loss) / static_cast<double>(input.dim() > 0 ? input.size(0) : 1);
  return reduce(loss, r);
}

}  // namespace ember::nn::functional
