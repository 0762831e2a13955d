// Kernel entry points of the matrix-product family (batched GEMM, GEMM with a bias/GELU epilogue, dot,
// the thread count) and the raw strided GEMM that other CPU kernels (conv) build on. kernels/linalg.cpp
// dispatches each entry to cpu:: or cuda:: (cuBLASLt, kernels/cuda/linalg.cu) by the output's device.
#pragma once
#include <cstdint>

#include "core/tensor.hpp"

namespace ember::kernels {

namespace cpu {
// out[..., M, N] = beta * out + alpha * a[..., M, K] @ b[..., K, N]. All three share one batch shape
// (a and b may be broadcast views with stride 0); any strides. beta == 0 overwrites out without reading
// it (NaN in out does not propagate). Numeric dtypes except bool; all three of one dtype.
void gemm(const Tensor& out, const Tensor& a, const Tensor& b, const Scalar& alpha, const Scalar& beta);
// out = alpha * a @ b + bias (bias [N], broadcast over every row), then GELU (tanh form) when `gelu`:
// cuBLASLt's BIAS / GELU_BIAS epilogues. Float dtypes.
void gemm_bias(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias, const Scalar& alpha, bool gelu);
// pre = a @ b + bias (bias [N]), out = gelu_tanh(pre): addmm_gelu's forward (pre, contiguous [M, N], is
// what its backward reads). CPU: gemm_bias, then one GELU pass.
void gemm_bias_gelu(const Tensor& out, const Tensor& pre, const Tensor& a, const Tensor& b, const Tensor& bias);
// out (0-dim) = sum a[i] * b[i] over two 1-D tensors of one size and dtype.
void dot(const Tensor& out, const Tensor& a, const Tensor& b);

// One GEMM on raw strided row-major matrices: element (i, j) of A is a[i * a_rs + j * a_cs].
// C[m, n] = beta * C + alpha * A[m, k] @ B[k, n]. f32/f64 go to OpenBLAS (operands that are row- or
// column-contiguous are passed by trans flag and leading dim, others are copied); integers use an
// i-k-j loop. Defined for float, double, int32_t, int64_t, uint8_t.
template <class T>
void gemm_strided(int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t a_rs, int64_t a_cs, const T* b,
                  int64_t b_rs, int64_t b_cs, T beta, T* c, int64_t c_rs, int64_t c_cs);

// oneTBB's parallelism (a global_control); OpenBLAS always runs single-threaded inside our splits.
void set_num_threads(int n);
int get_num_threads();
}  // namespace cpu

namespace cuda {  // kernels/cuda/linalg.cu; every operand on the output's CUDA device
// cuBLASLt for float dtypes (f16/bf16 accumulate in f32; f32 uses TF32 when float32_matmul_precision
// allows it); integer dtypes run a plain reference kernel.
void gemm(const Tensor& out, const Tensor& a, const Tensor& b, const Scalar& alpha, const Scalar& beta);
void gemm_bias(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias, const Scalar& alpha, bool gelu);
// One cuBLASLt call with GELU_AUX_BIAS (pre is its aux buffer) when linalg_plan allows; else gemm_bias + GELU.
void gemm_bias_gelu(const Tensor& out, const Tensor& pre, const Tensor& a, const Tensor& b, const Tensor& bias);
// out = a @ b (one matrix); with BGRADA/BGRADB also bias_grad (contiguous, out's dtype) = the sums over k
// of b's columns (of_b) or a's rows. False when not fused: out is then computed, bias_grad untouched.
bool gemm_bgrad(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias_grad, bool of_b);
void dot(const Tensor& out, const Tensor& a, const Tensor& b);
}  // namespace cuda

// Dispatched by the output's device (kernels/linalg.cpp); DeviceError for operands on another device.
void gemm(const Tensor& out, const Tensor& a, const Tensor& b, const Scalar& alpha, const Scalar& beta);
void gemm_bias(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias, const Scalar& alpha, bool gelu);
void gemm_bias_gelu(const Tensor& out, const Tensor& pre, const Tensor& a, const Tensor& b, const Tensor& bias);
// CUDA: cuda::gemm_bgrad. CPU: out = a @ b and false (the caller sums the bias gradient itself).
bool gemm_bgrad(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias_grad, bool of_b);
void dot(const Tensor& out, const Tensor& a, const Tensor& b);

inline void set_num_threads(int n) { cpu::set_num_threads(n); }
inline int get_num_threads() { return cpu::get_num_threads(); }

}  // namespace ember::kernels
