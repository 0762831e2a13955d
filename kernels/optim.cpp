// Device dispatch of the fused optimizer updates and the multi-tensor norm (kernels/optim.hpp): CUDA
// parameters go to kernels/cuda/optim.cu, CPU ones to kernels/cpu/optim.cpp. Every operand must be on
// the parameter's device (core/ops/optim.cpp checks that for the builders; the lists are checked here).
#include "kernels/optim.hpp"

namespace ember::kernels {
namespace {
void check_cpu(const Tensor& t, const char* op) {
  EMBER_CHECK(t.device().is_cpu(), DeviceError, "[", op, "] device ", t.device(), " is not supported in this build");
}

// Equal lengths (or empty), and every tensor on the first parameter's device.
Device list_device(const char* op, const TensorList& params, std::initializer_list<const TensorList*> others) {
  EMBER_CHECK(!params.empty(), ValueError, "[", op, "] got no parameters");
  const Device d = params[0].device();
  for (const Tensor& p : params)
    EMBER_CHECK(p.device() == d, DeviceError, "[", op, "] expected all tensors on ", d, ", got ", describe(p));
  for (const TensorList* l : others) {
    EMBER_CHECK(l->empty() || l->size() == params.size(), ValueError, "[", op, "] got ", params.size(),
                " parameters but a list of ", l->size());
    for (const Tensor& t : *l)
      EMBER_CHECK(!t.defined() || t.device() == d, DeviceError, "[", op, "] expected all tensors on ", d, ", got ",
                  describe(t));
  }
  return d;
}
}  // namespace

void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& buf, const SgdStepArgs& h) {
  if (param.device().is_cuda()) return cuda::sgd_step(param, grad, buf, h);
  check_cpu(param, "sgd_step_");
  cpu::sgd_step(param, grad, buf, h);
}
void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const Tensor& max_exp_avg_sq, const AdamStepArgs& h) {
  if (param.device().is_cuda()) return cuda::adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, h);
  check_cpu(param, "adam_step_");
  cpu::adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, h);
}
void rmsprop_step(const Tensor& param, const Tensor& grad, const Tensor& square_avg, const Tensor& grad_avg,
                  const Tensor& buf, const RmspropStepArgs& h) {
  if (param.device().is_cuda()) return cuda::rmsprop_step(param, grad, square_avg, grad_avg, buf, h);
  check_cpu(param, "rmsprop_step_");
  cpu::rmsprop_step(param, grad, square_avg, grad_avg, buf, h);
}
void adagrad_step(const Tensor& param, const Tensor& grad, const Tensor& sum, const AdagradStepArgs& h) {
  if (param.device().is_cuda()) return cuda::adagrad_step(param, grad, sum, h);
  check_cpu(param, "adagrad_step_");
  cpu::adagrad_step(param, grad, sum, h);
}

void sgd_step_multi(const TensorList& params, const TensorList& grads, const TensorList& bufs, const SgdStepArgs& h) {
  if (list_device("sgd_step_", params, {&grads, &bufs}).is_cuda()) return cuda::sgd_step_multi(params, grads, bufs, h);
  check_cpu(params[0], "sgd_step_");
  cpu::sgd_step_multi(params, grads, bufs, h);
}
void adam_step_multi(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                     const TensorList& exp_avg_sqs, const TensorList& max_exp_avg_sqs, const AdamStepArgs& h) {
  if (list_device("adam_step_", params, {&grads, &exp_avgs, &exp_avg_sqs, &max_exp_avg_sqs}).is_cuda())
    return cuda::adam_step_multi(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, h);
  check_cpu(params[0], "adam_step_");
  cpu::adam_step_multi(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, h);
}
void rmsprop_step_multi(const TensorList& params, const TensorList& grads, const TensorList& square_avgs,
                        const TensorList& grad_avgs, const TensorList& bufs, const RmspropStepArgs& h) {
  if (list_device("rmsprop_step_", params, {&grads, &square_avgs, &grad_avgs, &bufs}).is_cuda())
    return cuda::rmsprop_step_multi(params, grads, square_avgs, grad_avgs, bufs, h);
  check_cpu(params[0], "rmsprop_step_");
  cpu::rmsprop_step_multi(params, grads, square_avgs, grad_avgs, bufs, h);
}
void adagrad_step_multi(const TensorList& params, const TensorList& grads, const TensorList& sums,
                        const AdagradStepArgs& h) {
  if (list_device("adagrad_step_", params, {&grads, &sums}).is_cuda())
    return cuda::adagrad_step_multi(params, grads, sums, h);
  check_cpu(params[0], "adagrad_step_");
  cpu::adagrad_step_multi(params, grads, sums, h);
}

Tensor multi_tensor_norm(const TensorList& tensors, double p, DType out_dtype) {
  const char* op = "multi_tensor_norm";
  EMBER_CHECK(p > 0, ValueError, "[", op, "] p must be positive or inf, got ", p);
  EMBER_CHECK(!tensors.empty(), ValueError, "[", op, "] got no tensors");
  for (const Tensor& t : tensors)
    EMBER_CHECK(t.is_floating_point() && t.is_contiguous(), ValueError, "[", op,
                "] takes contiguous floating tensors, got ", describe(t));
  if (list_device(op, tensors, {}).is_cuda()) return cuda::multi_tensor_norm(tensors, p, out_dtype);
  check_cpu(tensors[0], op);
  return cpu::multi_tensor_norm(tensors, p, out_dtype);
}

}  // namespace ember::kernels
