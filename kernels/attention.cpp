// Device dispatch of the blocked attention (kernels/attention.hpp): CPU tensors go to
// kernels/cpu/attention.cpp; there is no CUDA kernel yet, so the builder keeps CUDA on the composed path.
#include "kernels/attention.hpp"

namespace ember::kernels {
namespace {
void check_cpu(const Tensor& q, std::initializer_list<const Tensor*> others) {
  EMBER_CHECK(q.device().is_cpu(), DeviceError,
              "[scaled_dot_product_attention] the blocked kernel runs on the CPU "
              "only, got query ",
              describe(q));
  for (const Tensor* t : others)
    EMBER_CHECK(!t->defined() || t->device() == q.device(), DeviceError,
                "[scaled_dot_product_attention] expected all tensors on one device, got query ", describe(q), " and ",
                describe(*t));
}
}  // namespace

void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       const Tensor& mask, const AttentionParams& p) {
  check_cpu(q, {&out, &lse, &k, &v, &mask});
  cpu::attention_forward(out, lse, q, k, v, mask, p);
}

void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, const Tensor& mask,
                        const AttentionParams& p) {
  check_cpu(q, {&dq, &dk, &dv, &dout, &k, &v, &out, &lse, &mask});
  cpu::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, mask, p);
}

}  // namespace ember::kernels
