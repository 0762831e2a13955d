// Kernel entry points of the matrix-product family (batched GEMM, dot, the thread count) and the raw
// strided GEMM that other CPU kernels (conv) build on. Device dispatch is inline: CPU only for now.
#pragma once
#include <cstdint>

#include "core/tensor.hpp"

namespace ember::kernels {

namespace cpu {
// out[..., M, N] = beta * out + alpha * a[..., M, K] @ b[..., K, N]. All three share one batch shape
// (a and b may be broadcast views with stride 0); any strides. beta == 0 overwrites out without reading
// it (NaN in out does not propagate). Numeric dtypes except bool; all three of one dtype.
void gemm(const Tensor& out, const Tensor& a, const Tensor& b, const Scalar& alpha, const Scalar& beta);
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

inline void linalg_check_cpu(const Tensor& t, const char* op) {
  EMBER_CHECK(t.device().is_cpu(), DeviceError, "[", op, "] device ", t.device(), " is not supported in this build");
}

inline void gemm(const Tensor& out, const Tensor& a, const Tensor& b, const Scalar& alpha, const Scalar& beta) {
  linalg_check_cpu(out, "matmul");
  cpu::gemm(out, a, b, alpha, beta);
}
inline void dot(const Tensor& out, const Tensor& a, const Tensor& b) {
  linalg_check_cpu(out, "dot");
  cpu::dot(out, a, b);
}
inline void set_num_threads(int n) { cpu::set_num_threads(n); }
inline int get_num_threads() { return cpu::get_num_threads(); }

}  // namespace ember::kernels
