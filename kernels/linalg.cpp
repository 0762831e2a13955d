// Device dispatch of the matrix-product family: cuda:: (cuBLASLt) for CUDA outputs, cpu:: otherwise.
#include "kernels/linalg.hpp"

#include <initializer_list>

namespace ember::kernels {
namespace {

// Every operand on the output's device (the builders check this too; the kernels rely on it).
void check_devices(const char* op, const Tensor& out, std::initializer_list<const Tensor*> operands) {
  for (const Tensor* t : operands)
    EMBER_CHECK(t->device() == out.device(), DeviceError, "[", op, "] expected all tensors on ", out.device(), ", got ",
                describe(*t));
  EMBER_CHECK(out.device().is_cpu() || out.device().is_cuda(), DeviceError, "[", op, "] device ", out.device(),
              " is not supported in this build");
}

}  // namespace

void gemm(const Tensor& out, const Tensor& a, const Tensor& b, const Scalar& alpha, const Scalar& beta) {
  check_devices("matmul", out, {&a, &b});
  if (out.device().is_cuda()) return cuda::gemm(out, a, b, alpha, beta);
  cpu::gemm(out, a, b, alpha, beta);
}

void gemm_bias(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias, const Scalar& alpha,
               bool gelu) {
  check_devices("linear", out, {&a, &b, &bias});
  if (out.device().is_cuda()) return cuda::gemm_bias(out, a, b, bias, alpha, gelu);
  cpu::gemm_bias(out, a, b, bias, alpha, gelu);
}

void gemm_bias_gelu(const Tensor& out, const Tensor& pre, const Tensor& a, const Tensor& b, const Tensor& bias) {
  check_devices("addmm_gelu", out, {&pre, &a, &b, &bias});
  if (out.device().is_cuda()) return cuda::gemm_bias_gelu(out, pre, a, b, bias);
  cpu::gemm_bias_gelu(out, pre, a, b, bias);
}

bool gemm_bgrad(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias_grad, bool of_b) {
  check_devices("matmul", out, {&a, &b, &bias_grad});
  if (out.device().is_cuda()) return cuda::gemm_bgrad(out, a, b, bias_grad, of_b);
  cpu::gemm(out, a, b, 1, 0);
  return false;
}

void dot(const Tensor& out, const Tensor& a, const Tensor& b) {
  check_devices("dot", out, {&a, &b});
  if (out.device().is_cuda()) return cuda::dot(out, a, b);
  cpu::dot(out, a, b);
}

}  // namespace ember::kernels
