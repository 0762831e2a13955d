// Device dispatch of the pooling and normalisation kernels: CUDA tensors go to cuda::, CPU tensors to
// cpu::; every operand must live on the first one's device.
#include "kernels/nn.hpp"

#include <initializer_list>

namespace ember::kernels {
namespace {

// The device of `lead` (which every defined operand must share); raises DeviceError naming the op and
// both devices, or, for a device this build cannot run, that it is not supported.
bool on_cuda(const char* op, const Tensor& lead, std::initializer_list<const Tensor*> others) {
  for (const Tensor* t : others)
    EMBER_CHECK(!t->defined() || t->device() == lead.device(), DeviceError, "[", op,
                "] expected all tensors on one device, got ", describe(lead), " and ", describe(*t));
  if (lead.device().is_cuda()) return true;
  EMBER_CHECK(lead.device().is_cpu(), DeviceError, "[", op, "] device ", lead.device(),
              " is not supported in this build");
  return false;
}

}  // namespace

void max_pool2d(const Tensor& out, const Tensor& indices, const Tensor& in, const Pool2dParams& p) {
  if (on_cuda("max_pool2d", in, {&out, &indices})) return cuda::max_pool2d(out, indices, in, p);
  cpu::max_pool2d(out, indices, in, p);
}
void avg_pool2d(const Tensor& out, const Tensor& in, const Pool2dParams& p) {
  if (on_cuda("avg_pool2d", in, {&out})) return cuda::avg_pool2d(out, in, p);
  cpu::avg_pool2d(out, in, p);
}
void adaptive_avg_pool2d(const Tensor& out, const Tensor& in) {
  if (on_cuda("adaptive_avg_pool2d", in, {&out})) return cuda::adaptive_avg_pool2d(out, in);
  cpu::adaptive_avg_pool2d(out, in);
}
void max_pool2d_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& indices, const Pool2dParams& p) {
  if (on_cuda("max_pool2d_backward", grad_in, {&grad_out, &indices}))
    return cuda::max_pool2d_backward(grad_in, grad_out, indices, p);
  cpu::max_pool2d_backward(grad_in, grad_out, indices, p);
}
void avg_pool2d_backward(const Tensor& grad_in, const Tensor& grad_out, const Pool2dParams& p) {
  if (on_cuda("avg_pool2d_backward", grad_in, {&grad_out})) return cuda::avg_pool2d_backward(grad_in, grad_out, p);
  cpu::avg_pool2d_backward(grad_in, grad_out, p);
}
void adaptive_avg_pool2d_backward(const Tensor& grad_in, const Tensor& grad_out) {
  if (on_cuda("adaptive_avg_pool2d_backward", grad_in, {&grad_out}))
    return cuda::adaptive_avg_pool2d_backward(grad_in, grad_out);
  cpu::adaptive_avg_pool2d_backward(grad_in, grad_out);
}

void layer_norm(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias, double eps) {
  if (on_cuda("layer_norm", in, {&out, &weight, &bias})) return cuda::layer_norm(out, in, weight, bias, eps);
  cpu::layer_norm(out, in, weight, bias, eps);
}
void layer_norm_backward(const Tensor& grad_in, const Tensor& grad_weight, const Tensor& grad_bias, const Tensor& in,
                         const Tensor& grad_out, const Tensor& weight, double eps) {
  if (on_cuda("layer_norm", in, {&grad_in, &grad_weight, &grad_bias, &grad_out, &weight}))
    return cuda::layer_norm_backward(grad_in, grad_weight, grad_bias, in, grad_out, weight, eps);
  cpu::layer_norm_backward(grad_in, grad_weight, grad_bias, in, grad_out, weight, eps);
}
void rms_norm(const Tensor& out, const Tensor& in, const Tensor& weight, double eps) {
  if (on_cuda("rms_norm", in, {&out, &weight})) return cuda::rms_norm(out, in, weight, eps);
  cpu::rms_norm(out, in, weight, eps);
}
void batch_norm_stats(const Tensor& mean, const Tensor& var, const Tensor& in) {
  if (on_cuda("batch_norm", in, {&mean, &var})) return cuda::batch_norm_stats(mean, var, in);
  cpu::batch_norm_stats(mean, var, in);
}
void batch_norm_apply(const Tensor& out, const Tensor& in, const Tensor& scale, const Tensor& shift) {
  if (on_cuda("batch_norm", in, {&out, &scale, &shift})) return cuda::batch_norm_apply(out, in, scale, shift);
  cpu::batch_norm_apply(out, in, scale, shift);
}
void batch_norm_backward(const Tensor& grad_in, const Tensor& sum_g, const Tensor& sum_gxm, const Tensor& in,
                         const Tensor& grad_out, const Tensor& mean, const Tensor& rstd, const Tensor& scale,
                         bool training) {
  if (on_cuda("batch_norm", in, {&grad_in, &sum_g, &sum_gxm, &grad_out, &mean, &rstd, &scale}))
    return cuda::batch_norm_backward(grad_in, sum_g, sum_gxm, in, grad_out, mean, rstd, scale, training);
  cpu::batch_norm_backward(grad_in, sum_g, sum_gxm, in, grad_out, mean, rstd, scale, training);
}

}  // namespace ember::kernels
