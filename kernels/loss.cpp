// Device dispatch of the fused losses (kernels/loss.hpp): CUDA tensors go to kernels/cuda/loss.cu,
// CPU tensors to kernels/cpu/loss.cpp; operands on another device than the input are refused.
#include "kernels/loss.hpp"

namespace ember::kernels {
namespace {
void check_devices(const Tensor& input, std::initializer_list<const Tensor*> others) {
  for (const Tensor* t : others)
    EMBER_CHECK(!t->defined() || t->device() == input.device(), DeviceError,
                "[cross_entropy] expected all tensors on one device, got input ", describe(input), " and ",
                describe(*t));
}
}  // namespace

std::pair<double, double> cross_entropy_forward(const Tensor& loss, const Tensor& lse, const Tensor& input,
                                                const Tensor& target, const Tensor& weight,
                                                const CrossEntropyParams& p) {
  check_devices(input, {&loss, &lse, &target, &weight});
  if (input.device().is_cuda()) return cuda::cross_entropy_forward(loss, lse, input, target, weight, p);
  EMBER_CHECK(input.device().is_cpu(), DeviceError, "[cross_entropy] device ", input.device(),
              " is not supported by the fused kernel in this build");
  return cpu::cross_entropy_forward(loss, lse, input, target, weight, p);
}

void cross_entropy_backward(const Tensor& grad_input, const Tensor& grad_loss, double grad_scale, const Tensor& input,
                            const Tensor& target, const Tensor& weight, const Tensor& lse,
                            const CrossEntropyParams& p) {
  check_devices(input, {&grad_input, &grad_loss, &target, &weight, &lse});
  if (input.device().is_cuda())
    return cuda::cross_entropy_backward(grad_input, grad_loss, grad_scale, input, target, weight, lse, p);
  EMBER_CHECK(input.device().is_cpu(), DeviceError, "[cross_entropy] device ", input.device(),
              " is not supported by the fused kernel in this build");
  cpu::cross_entropy_backward(grad_input, grad_loss, grad_scale, input, target, weight, lse, p);
}

}  // namespace ember::kernels
