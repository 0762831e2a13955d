// Device dispatch of the fused losses (kernels/loss.hpp): CUDA tensors go to kernels/cuda/loss.cu,
// CPU tensors to kernels/cpu/loss.cpp; operands on another device than the input are refused.
#include "kernels/loss.hpp"

#include <tuple>

namespace ember::kernels {
namespace {
void check_devices(const Tensor& input, std::initializer_list<const Tensor*> others) {
  for (const Tensor* t : others)
    EMBER_CHECK(!t->defined() || t->device() == input.device(), DeviceError,
                "[cross_entropy] expected all tensors on one device, got input ", describe(input), " and ",
                describe(*t));
}
}  // namespace

CrossEntropySums cross_entropy_forward(const Tensor& loss, const Tensor& lse, const Tensor& input, const Tensor& target,
                                       const Tensor& weight, const CrossEntropyParams& p, CeReduce reduce) {
  check_devices(input, {&loss, &lse, &target, &weight});
  CrossEntropySums out;
  if (input.device().is_cuda()) {
    out.device_sums = make_tensor({2}, kF64, input.device());
    if (reduce != CeReduce::kNone) out.reduced = make_tensor({}, loss.dtype(), input.device());
    cuda::cross_entropy_forward(loss, lse, input, target, weight, p, out.device_sums, out.reduced, reduce);
    return out;
  }
  EMBER_CHECK(input.device().is_cpu(), DeviceError, "[cross_entropy] device ", input.device(),
              " is not supported by the fused kernel in this build");
  // f16/bf16 logits with a float32 loss: the CPU kernel runs on a float32 copy (the CUDA kernel reads them).
  const Tensor x = input.dtype() == loss.dtype() ? input : input.to(loss.dtype());
  std::tie(out.loss, out.weight) = cpu::cross_entropy_forward(loss, lse, x, target, weight, p);
  return out;
}

void cross_entropy_backward(const Tensor& grad_input, const Tensor& grad_loss, double grad_scale, const Tensor& input,
                            const Tensor& target, const Tensor& weight, const Tensor& lse, const CrossEntropyParams& p,
                            const Tensor& divide_by) {
  check_devices(input, {&grad_input, &grad_loss, &target, &weight, &lse, &divide_by});
  if (input.device().is_cuda())
    return cuda::cross_entropy_backward(grad_input, grad_loss, grad_scale, input, target, weight, lse, p, divide_by);
  EMBER_CHECK(input.device().is_cpu(), DeviceError, "[cross_entropy] device ", input.device(),
              " is not supported by the fused kernel in this build");
  EMBER_CHECK(!divide_by.defined(), ValueError, "[cross_entropy] divide_by is for CUDA tensors");
  if (lse.dtype() == input.dtype() || input.dtype() == kF64)
    return cpu::cross_entropy_backward(grad_input, grad_loss, grad_scale, input, target, weight, lse, p);
  // f16/bf16 logits (a float32 lse): the float32 gradient, rounded once into grad_input.
  Tensor g = make_tensor(input.shape(), lse.dtype(), input.device());
  cpu::cross_entropy_backward(g, grad_loss, grad_scale, input.to(lse.dtype()), target, weight, lse, p);
  Tensor(grad_input).copy_(g);
}

}  // namespace ember::kernels
