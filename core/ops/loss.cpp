// Fused cross entropy over class indices: the builder checks the canonical [N, C, K] layout, runs the
// kernel of kernels/loss.hpp (CPU or CUDA), reduces, and records a node whose backward is the fused
// kernel, or under create_graph the same formula in public ops (softmax stays differentiable).
#include "core/ops/loss.hpp"

#include <string_view>

#include "core/autograd.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/index.hpp"
#include "core/ops/reduce.hpp"
#include "core/profiler.hpp"
#include "kernels/index.hpp"
#include "kernels/loss.hpp"

namespace ember {
namespace {

// d loss / d input = coef * (s * softmax(x) - q) in public ops: coef the upstream gradient per
// position, s = (1 - ls) w_t + ls W / C, q_c = (1 - ls) w_t [c == t] + ls w_c / C.
// divisor_t, when defined, is the mean's divisor on the device (CUDA: never read to the host).
Tensor cross_entropy_grad_composite(const Tensor& g, const Tensor& x, const Tensor& target, const Tensor& weight,
                                    const kernels::CrossEntropyParams& p, LossReduction reduction, double divisor,
                                    const Tensor& divisor_t) {
  const int64_t n = x.size(0), c = x.size(1), k = x.size(2);
  const TensorOptions fo{.dtype = x.dtype(), .device = x.device()};
  const double ls = p.label_smoothing;
  Tensor valid = target != Scalar(p.ignore_index);
  Tensor safe = where(valid, target, zeros({}, {.dtype = kI64, .device = x.device()}));
  Tensor validf = valid.to(x.dtype());
  Tensor wt = weight.defined() ? index_select(weight, 0, safe.reshape({-1})).reshape({n, k}) * validf : validf;
  Tensor coef = reduction == LossReduction::None ? g : g.expand({n, k});
  if (reduction == LossReduction::Mean) coef = divisor_t.defined() ? coef / divisor_t.to(coef.dtype()) : coef / divisor;
  coef = where(valid, coef, zeros({}, fo));
  Tensor s = wt * (1.0 - ls);
  if (ls != 0)  // + ls W / C, W the weights' total (1 each without weights), kept on the device
    s = s + (weight.defined() ? validf * sum(weight) * (ls / static_cast<double>(c)) : validf * ls);
  Tensor q = one_hot(safe, c).to(x.dtype()).permute({0, 2, 1}) * (wt * (1.0 - ls)).unsqueeze(1);
  if (ls != 0) {
    Tensor wc = weight.defined() ? weight.reshape({1, c, 1}) : ones({1, c, 1}, fo);
    q = q + wc * validf.unsqueeze(1) * (ls / static_cast<double>(c));
  }
  return coef.unsqueeze(1) * (s.unsqueeze(1) * softmax(x, 1) - q);
}

}  // namespace

void check_class_targets(const char* op, const Tensor& target, int64_t classes, int64_t ignore_index) {
  if (target.numel() == 0) return;
  Tensor t = target.to(kI64);
  if (t.device().is_cuda()) {
    using kernels::DeferredCode;
    const DeferredCode code =
        std::string_view(op) == "nll_loss" ? DeferredCode::kNllLossTarget : DeferredCode::kCrossEntropyTarget;
    kernels::check_index_range(t.contiguous(), 0, classes, ignore_index,
                               {.code = code, .a1 = classes, .a3 = ignore_index, .position = true});
    return;
  }
  Tensor bad = (t != Scalar(ignore_index)) & ((t < Scalar(0)) | (t >= Scalar(classes)));
  if (!any(bad).item<bool>()) return;
  const int64_t v = masked_select(t, bad).reshape({-1})[0].item<int64_t>();
  throw IndexError(detail::cat_str("[", op, "] target ", v, " is out of bounds for ", classes, " classes (target ",
                                   describe(target), ", ignore_index ", ignore_index, ")"));
}

void check_probabilities(const char* op, const Tensor& input) {
  if (input.numel() == 0) return;
  if (input.device().is_cuda()) return kernels::cuda::check_probabilities(input.contiguous());
  autograd::NoGradGuard no_grad;
  EMBER_CHECK(!any((input < Scalar(0)) | (input > Scalar(1))).item<bool>(), ValueError, "[", op,
              "] all elements of input ", describe(input), " should be between 0 and 1");
}

Tensor cross_entropy_loss(const Tensor& input, const Tensor& target, const Tensor& weight, int64_t ignore_index,
                          LossReduction reduction, double label_smoothing, std::optional<DType> loss_dtype) {
  profiler::OpRecord prof("cross_entropy", {&input, &target});
  EMBER_CHECK(input.defined() && target.defined(), ValueError, "[cross_entropy] input and target must be defined");
  const DType dt = input.dtype(), lt = loss_dtype.value_or(dt);
  const bool half = dt == kF16 || dt == kBF16;
  EMBER_CHECK(dt == kF32 || dt == kF64 || (half && (input.device().is_cuda() || lt == kF32)), DTypeError,
              "[cross_entropy] the fused op takes float32 or float64 logits (f16 and bf16 on CUDA, or with a "
              "float32 loss), got ",
              describe(input));
  EMBER_CHECK(lt == dt || (half && lt == kF32), DTypeError, "[cross_entropy] the loss of ", describe(input),
              " is computed in its dtype (or float32 for float16 and bfloat16), not ", dtype_name(lt));
  EMBER_CHECK(input.dim() == 3, ShapeError, "[cross_entropy] the fused op takes input [N, C, K], got ",
              describe(input));
  const int64_t n = input.size(0), c = input.size(1), k = input.size(2);
  EMBER_CHECK(target.dim() == 2 && target.size(0) == n && target.size(1) == k, ShapeError,
              "[cross_entropy] expected target [", n, ", ", k, "] for input ", describe(input), ", got ",
              describe(target));
  EMBER_CHECK(target.dtype() == kI64 || target.dtype() == kI32 || target.dtype() == kU8, DTypeError,
              "[cross_entropy] class-index target must be int64 (or int32/uint8), got ", describe(target));
  EMBER_CHECK(!weight.defined() || (weight.dim() == 1 && weight.size(0) == c), ShapeError,
              "[cross_entropy] weight must be [", c, "] (one per class of input ", describe(input), "), got ",
              describe(weight));
  EMBER_CHECK(c > 0 || n * k == 0, ShapeError, "[cross_entropy] input ", describe(input), " has no classes");
  EMBER_CHECK(label_smoothing >= 0 && label_smoothing <= 1, ValueError,
              "[cross_entropy] label_smoothing must be in [0, 1], got ", label_smoothing);
  for (const Tensor* t : {&target, &weight})
    EMBER_CHECK(!t->defined() || t->device() == input.device(), DeviceError,
                "[cross_entropy] expected all tensors on one device, got input ", describe(input), " and ",
                describe(*t));

  const kernels::CrossEntropyParams params{.ignore_index = ignore_index, .label_smoothing = label_smoothing};
  Tensor x = input.contiguous();
  Tensor t = target.to(kI64).contiguous();
  Tensor w = weight.defined() ? weight.to(lt).contiguous() : Tensor();
  // lse stays in the accumulation type: a bf16 lse near 10 is off by up to 0.03, which would scale every
  // softmax of its row in backward by exp(0.03).
  Tensor loss = make_tensor({n, k}, lt, input.device());
  Tensor lse = make_tensor({n, k}, dt == kF64 ? kF64 : kF32, input.device());
  const kernels::CeReduce reduce = reduction == LossReduction::None  ? kernels::CeReduce::kNone
                                   : reduction == LossReduction::Sum ? kernels::CeReduce::kSum
                                                                     : kernels::CeReduce::kMean;
  const kernels::CrossEntropySums sums = [&] {
    autograd::NoGradGuard no_grad;
    return kernels::cross_entropy_forward(loss, lse, x, t, w, params, reduce);
  }();
  // CPU: the sums were read (the target check is immediate there). CUDA: the reduced loss and the weight
  // sum stay on the device, so the op is no host sync.
  const double total = sums.loss, wsum = sums.weight;
  const Tensor wsum_t = sums.device_sums.defined() ? sums.device_sums.narrow(0, 1, 1) : Tensor();
  Tensor out = reduction == LossReduction::None  ? loss
               : sums.reduced.defined()          ? sums.reduced
               : reduction == LossReduction::Sum ? full({}, total, {.dtype = lt, .device = input.device()})
                                                 : full({}, total / wsum, {.dtype = lt, .device = input.device()});
  if (autograd::needs_grad(input)) {
    autograd::record(
        "cross_entropy", {&out}, {&input}, {x, t, w, lse}, [params, reduction, wsum, wsum_t, lt](autograd::Ctx& ctx) {
          Tensor x = ctx.saved(0), t = ctx.saved(1), w = ctx.saved(2), g = ctx.grad();
          if (autograd::is_grad_enabled())  // in the loss's dtype, then (differentiably) the input's
            return autograd::Grads{
                cross_entropy_grad_composite(g, x.to(lt), t, w, params, reduction, wsum, wsum_t).to(x.dtype())};
          Tensor gi = make_tensor(x.shape(), x.dtype(), x.device());
          // On CUDA a reduced loss's upstream gradient stays on the device (one element for every position).
          const bool device_g = reduction == LossReduction::None || !x.device().is_cpu();
          Tensor g_loss = device_g ? g.to(lt).contiguous() : Tensor();
          double scale = 1.0;
          Tensor divide_by;
          if (device_g) {
            if (reduction == LossReduction::Mean) {
              if (wsum_t.defined())
                divide_by = wsum_t;  // the kernel takes 1.0 / wsum on the device
              else
                scale = 1.0 / wsum;
            }
          } else {
            scale = *g.to(kF64).contiguous().data_ptr<double>();  // CPU memory: no device to wait for
            if (reduction == LossReduction::Mean) scale /= wsum;
          }
          kernels::cross_entropy_backward(gi, g_loss, scale, x, t, w, ctx.saved(3), params, divide_by);
          return autograd::Grads{gi};
        });
  }
  return out;
}

}  // namespace ember
