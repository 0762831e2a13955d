// Device dispatch of the blocked attention (kernels/attention.hpp): CPU tensors go to
// kernels/cpu/attention.cpp, CUDA tensors to the fused kernel of kernels/cuda/attention.cu.
#include "kernels/attention.hpp"

namespace ember::kernels {
namespace {
void check_one_device(const Tensor& q, std::initializer_list<const Tensor*> others) {
  for (const Tensor* t : others)
    EMBER_CHECK(!t->defined() || t->device() == q.device(), DeviceError,
                "[scaled_dot_product_attention] expected all tensors on one device, got query ", describe(q), " and ",
                describe(*t));
}
}  // namespace

void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       const Tensor& mask, const AttentionParams& p) {
  check_one_device(q, {&out, &lse, &k, &v, &mask});
  if (q.device().is_cuda())
    cuda::attention_forward(out, lse, q, k, v, mask, p);
  else
    cpu::attention_forward(out, lse, q, k, v, mask, p);
}

void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, const Tensor& mask,
                        const AttentionParams& p) {
  check_one_device(q, {&dq, &dk, &dv, &dout, &k, &v, &out, &lse, &mask});
  if (q.device().is_cuda())
    cuda::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, mask, p);
  else
    cpu::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, mask, p);
}

}  // namespace ember::kernels
