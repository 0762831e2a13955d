// Builders of the fused optimizer updates: check the operands, run the kernel, bump the versions of
// what was written (so a tensor saved for backward is seen to have changed).
#include "core/ops/optim.hpp"

#include "core/autograd.hpp"
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
  EMBER_CHECK(param.device().is_cpu(), DeviceError, "[", op, "] the fused update runs on the CPU, got param ",
              describe(param));
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

}  // namespace

bool fused_step_supported(const Tensor& param, std::initializer_list<const Tensor*> others) {
  if (!param.defined() || !param.is_floating_point() || !param.device().is_cpu() || !param.is_contiguous())
    return false;
  for (const Tensor* t : others)
    if (!compatible(param, *t)) return false;
  return true;
}

void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdStepArgs& a) {
  const char* op = "sgd_step_";
  check(op, param, {{"grad", &grad, true}, {"momentum_buffer", &momentum_buffer, false}});
  EMBER_CHECK(a.momentum == 0 || momentum_buffer.defined(), ValueError, "[", op, "] momentum ", a.momentum,
              " needs a momentum_buffer");
  kernels::sgd_step(param, grad, momentum_buffer,
                    {.lr = a.lr,
                     .momentum = a.momentum,
                     .dampening = a.dampening,
                     .weight_decay = a.weight_decay,
                     .nesterov = a.nesterov,
                     .maximize = a.maximize,
                     .first = a.first});
  bump(op, {&param, &momentum_buffer});
}

void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const Tensor& max_exp_avg_sq, const AdamStepArgs& a) {
  const char* op = "adam_step_";
  check(op, param,
        {{"grad", &grad, true},
         {"exp_avg", &exp_avg, true},
         {"exp_avg_sq", &exp_avg_sq, true},
         {"max_exp_avg_sq", &max_exp_avg_sq, false}});
  EMBER_CHECK(!a.amsgrad || max_exp_avg_sq.defined(), ValueError, "[", op, "] amsgrad needs max_exp_avg_sq");
  kernels::adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq,
                     {.lr = a.lr,
                      .beta1 = a.beta1,
                      .beta2 = a.beta2,
                      .eps = a.eps,
                      .weight_decay = a.weight_decay,
                      .decoupled = a.decoupled,
                      .amsgrad = a.amsgrad,
                      .maximize = a.maximize,
                      .step = a.step});
  bump(op, {&param, &exp_avg, &exp_avg_sq, &max_exp_avg_sq});
}

void rmsprop_step_(const Tensor& param, const Tensor& grad, const Tensor& square_avg, const Tensor& grad_avg,
                   const Tensor& momentum_buffer, const RmspropStepArgs& a) {
  const char* op = "rmsprop_step_";
  check(op, param,
        {{"grad", &grad, true},
         {"square_avg", &square_avg, true},
         {"grad_avg", &grad_avg, false},
         {"momentum_buffer", &momentum_buffer, false}});
  EMBER_CHECK(!a.centered || grad_avg.defined(), ValueError, "[", op, "] centered needs grad_avg");
  EMBER_CHECK(!(a.momentum > 0) || momentum_buffer.defined(), ValueError, "[", op, "] momentum ", a.momentum,
              " needs a momentum_buffer");
  kernels::rmsprop_step(param, grad, square_avg, grad_avg, momentum_buffer,
                        {.lr = a.lr,
                         .alpha = a.alpha,
                         .eps = a.eps,
                         .weight_decay = a.weight_decay,
                         .momentum = a.momentum,
                         .centered = a.centered,
                         .maximize = a.maximize});
  bump(op, {&param, &square_avg, &grad_avg, &momentum_buffer});
}

void adagrad_step_(const Tensor& param, const Tensor& grad, const Tensor& sum, const AdagradStepArgs& a) {
  const char* op = "adagrad_step_";
  check(op, param, {{"grad", &grad, true}, {"sum", &sum, true}});
  kernels::adagrad_step(param, grad, sum,
                        {.lr = a.lr,
                         .lr_decay = a.lr_decay,
                         .weight_decay = a.weight_decay,
                         .eps = a.eps,
                         .maximize = a.maximize,
                         .step = a.step});
  bump(op, {&param, &sum});
}

}  // namespace ember
