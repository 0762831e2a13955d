// Builders of the fused optimizer updates: check the operands, run the kernel, bump the versions of
// what was written (so a tensor saved for backward is seen to have changed).
#include "core/ops/optim.hpp"

#include "core/autograd.hpp"
#include "core/profiler.hpp"
#include "kernels/optim.hpp"

namespace ember {
namespace {

bool compatible(const Tensor& param, const Tensor& t) {
  return !t.defined() || (t.dtype() == param.dtype() && t.numel() == param.numel() && t.device() == param.device() &&
                          t.is_contiguous());
}

struct Operand {
  const char* name;
  const Tensor* t;
  bool required;
};

// Checks every operand against param; throws naming the first one that doesn't fit.
void check(const char* op, const Tensor& param, std::initializer_list<Operand> operands) {
  EMBER_CHECK(param.defined(), ValueError, "[", op, "] param is undefined");
  EMBER_CHECK(param.is_floating_point(), DTypeError, "[", op, "] needs a floating parameter, got ", describe(param));
  EMBER_CHECK(param.device().is_cpu() || param.device().is_cuda(), DeviceError, "[", op,
              "] the fused update runs on the CPU or CUDA, got param ", describe(param));
  EMBER_CHECK(param.is_contiguous(), ValueError, "[", op, "] param ", describe(param), " must be contiguous");
  for (const Operand& o : operands) {
    EMBER_CHECK(o.t->defined() || !o.required, ValueError, "[", op, "] ", o.name, " is undefined");
    EMBER_CHECK(compatible(param, *o.t), ValueError, "[", op, "] ", o.name, " ", describe(*o.t),
                " must be a contiguous tensor of param's numel, dtype and device (param ", describe(param), ")");
  }
  autograd::check_inplace(param, op);
}

void bump(const char* op, std::initializer_list<const Tensor*> written) {
  for (const Tensor* t : written)
    if (t->defined()) t->impl().storage->bump_version(op);
}

// Element j of a list, or undefined for an empty (unused) list; the list lengths must match.
const Tensor& item_of(const char* op, const char* name, const std::vector<Tensor>& l, size_t n, size_t j) {
  static const Tensor none;
  EMBER_CHECK(l.empty() || l.size() == n, ValueError, "[", op, "] ", name, " has ", l.size(), " tensors for ", n,
              " parameters");
  return l.empty() ? none : l[j];
}

void check_list_kind(const char* op, const std::vector<Tensor>& params) {
  EMBER_CHECK(!params.empty(), ValueError, "[", op, "] got no parameters");
  for (const Tensor& p : params)
    EMBER_CHECK(p.defined() && p.dtype() == params[0].dtype() && p.device() == params[0].device(), ValueError, "[", op,
                "] every parameter of one list must share a dtype and device, got ", describe(params[0]), " and ",
                describe(p));
}

void bump_all(const char* op, std::initializer_list<const std::vector<Tensor>*> lists) {
  for (const auto* l : lists)
    for (const Tensor& t : *l) bump(op, {&t});
}

}  // namespace

bool fused_step_supported(const Tensor& param, std::initializer_list<const Tensor*> others) {
  if (!param.defined() || !param.is_floating_point() || !(param.device().is_cpu() || param.device().is_cuda()) ||
      !param.is_contiguous())
    return false;
  for (const Tensor* t : others)
    if (!compatible(param, *t)) return false;
  return true;
}

void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdStepArgs& a) {
  const char* op = "sgd_step_";
  profiler::OpRecord prof(op, {&param, &grad});
  check(op, param, {{"grad", &grad, true}, {"momentum_buffer", &momentum_buffer, false}});
  EMBER_CHECK(a.momentum == 0 || momentum_buffer.defined(), ValueError, "[", op, "] momentum ", a.momentum,
              " needs a momentum_buffer");
  kernels::sgd_step(param, grad, momentum_buffer, a);
  bump(op, {&param, &momentum_buffer});
}

void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const Tensor& max_exp_avg_sq, const AdamStepArgs& a) {
  const char* op = "adam_step_";
  profiler::OpRecord prof(op, {&param, &grad});
  check(op, param,
        {{"grad", &grad, true},
         {"exp_avg", &exp_avg, true},
         {"exp_avg_sq", &exp_avg_sq, true},
         {"max_exp_avg_sq", &max_exp_avg_sq, false}});
  EMBER_CHECK(!a.amsgrad || max_exp_avg_sq.defined(), ValueError, "[", op, "] amsgrad needs max_exp_avg_sq");
  kernels::adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, a);
  bump(op, {&param, &exp_avg, &exp_avg_sq, &max_exp_avg_sq});
}

void rmsprop_step_(const Tensor& param, const Tensor& grad, const Tensor& square_avg, const Tensor& grad_avg,
                   const Tensor& momentum_buffer, const RmspropStepArgs& a) {
  const char* op = "rmsprop_step_";
  profiler::OpRecord prof(op, {&param, &grad});
  check(op, param,
        {{"grad", &grad, true},
         {"square_avg", &square_avg, true},
         {"grad_avg", &grad_avg, false},
         {"momentum_buffer", &momentum_buffer, false}});
  EMBER_CHECK(!a.centered || grad_avg.defined(), ValueError, "[", op, "] centered needs grad_avg");
  EMBER_CHECK(!(a.momentum > 0) || momentum_buffer.defined(), ValueError, "[", op, "] momentum ", a.momentum,
              " needs a momentum_buffer");
  kernels::rmsprop_step(param, grad, square_avg, grad_avg, momentum_buffer, a);
  bump(op, {&param, &square_avg, &grad_avg, &momentum_buffer});
}

void adagrad_step_(const Tensor& param, const Tensor& grad, const Tensor& sum, const AdagradStepArgs& a) {
  const char* op = "adagrad_step_";
  profiler::OpRecord prof(op, {&param, &grad});
  check(op, param, {{"grad", &grad, true}, {"sum", &sum, true}});
  kernels::adagrad_step(param, grad, sum, a);
  bump(op, {&param, &sum});
}

void sgd_step_multi_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                     const std::vector<Tensor>& momentum_buffers, const SgdStepArgs& a) {
  const char* op = "sgd_step_";
  profiler::OpRecord prof(op, std::span<const Tensor>(params));
  check_list_kind(op, params);
  const size_t n = params.size();
  for (size_t j = 0; j < n; ++j) {
    const Tensor& buf = item_of(op, "momentum_buffer", momentum_buffers, n, j);
    check(op, params[j], {{"grad", &item_of(op, "grad", grads, n, j), true}, {"momentum_buffer", &buf, false}});
    EMBER_CHECK(a.momentum == 0 || buf.defined(), ValueError, "[", op, "] momentum ", a.momentum,
                " needs a momentum_buffer");
  }
  kernels::sgd_step_multi(params, grads, a.momentum != 0 ? momentum_buffers : std::vector<Tensor>{}, a);
  bump_all(op, {&params, &momentum_buffers});
}

void adam_step_multi_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                      const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                      const std::vector<Tensor>& max_exp_avg_sqs, const AdamStepArgs& a) {
  const char* op = "adam_step_";
  profiler::OpRecord prof(op, std::span<const Tensor>(params));
  check_list_kind(op, params);
  const size_t n = params.size();
  for (size_t j = 0; j < n; ++j) {
    const Tensor& vmax = item_of(op, "max_exp_avg_sq", max_exp_avg_sqs, n, j);
    check(op, params[j],
          {{"grad", &item_of(op, "grad", grads, n, j), true},
           {"exp_avg", &item_of(op, "exp_avg", exp_avgs, n, j), true},
           {"exp_avg_sq", &item_of(op, "exp_avg_sq", exp_avg_sqs, n, j), true},
           {"max_exp_avg_sq", &vmax, false}});
    EMBER_CHECK(!a.amsgrad || vmax.defined(), ValueError, "[", op, "] amsgrad needs max_exp_avg_sq");
  }
  kernels::adam_step_multi(params, grads, exp_avgs, exp_avg_sqs, a.amsgrad ? max_exp_avg_sqs : std::vector<Tensor>{},
                           a);
  bump_all(op, {&params, &exp_avgs, &exp_avg_sqs, &max_exp_avg_sqs});
}

void rmsprop_step_multi_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                         const std::vector<Tensor>& square_avgs, const std::vector<Tensor>& grad_avgs,
                         const std::vector<Tensor>& momentum_buffers, const RmspropStepArgs& a) {
  const char* op = "rmsprop_step_";
  profiler::OpRecord prof(op, std::span<const Tensor>(params));
  check_list_kind(op, params);
  const size_t n = params.size();
  for (size_t j = 0; j < n; ++j) {
    const Tensor& ga = item_of(op, "grad_avg", grad_avgs, n, j);
    const Tensor& buf = item_of(op, "momentum_buffer", momentum_buffers, n, j);
    check(op, params[j],
          {{"grad", &item_of(op, "grad", grads, n, j), true},
           {"square_avg", &item_of(op, "square_avg", square_avgs, n, j), true},
           {"grad_avg", &ga, false},
           {"momentum_buffer", &buf, false}});
    EMBER_CHECK(!a.centered || ga.defined(), ValueError, "[", op, "] centered needs grad_avg");
    EMBER_CHECK(!(a.momentum > 0) || buf.defined(), ValueError, "[", op, "] momentum ", a.momentum,
                " needs a momentum_buffer");
  }
  kernels::rmsprop_step_multi(params, grads, square_avgs, a.centered ? grad_avgs : std::vector<Tensor>{},
                              a.momentum > 0 ? momentum_buffers : std::vector<Tensor>{}, a);
  bump_all(op, {&params, &square_avgs, &grad_avgs, &momentum_buffers});
}

void adagrad_step_multi_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                         const std::vector<Tensor>& sums, const AdagradStepArgs& a) {
  const char* op = "adagrad_step_";
  profiler::OpRecord prof(op, std::span<const Tensor>(params));
  check_list_kind(op, params);
  const size_t n = params.size();
  for (size_t j = 0; j < n; ++j)
    check(op, params[j],
          {{"grad", &item_of(op, "grad", grads, n, j), true}, {"sum", &item_of(op, "sum", sums, n, j), true}});
  kernels::adagrad_step_multi(params, grads, sums, a);
  bump_all(op, {&params, &sums});
}

Tensor multi_tensor_norm(const std::vector<Tensor>& tensors, double p, DType out_dtype) {
  autograd::NoGradGuard no_grad;
  return kernels::multi_tensor_norm(tensors, p, out_dtype);
}

}  // namespace ember
