// Matrix products: matmul with PyTorch's 1-D/2-D/batched broadcasting rules, mm, bmm, addmm, baddbmm,
// outer, dot. CPU: f32/f64 go to OpenBLAS; f16/bf16 compute through f32; integers use a plain loop.
// CUDA: cuBLASLt (f16/bf16 accumulate in f32; TF32 per set_float32_matmul_precision, core/backend.hpp).
#pragma once
#include "core/tensor.hpp"

namespace ember {

Tensor matmul(const Tensor& a, const Tensor& b);
Tensor mm(const Tensor& a, const Tensor& b);
Tensor bmm(const Tensor& a, const Tensor& b);
// beta * input + alpha * (a @ b), input broadcast to the product's shape.
Tensor addmm(const Tensor& input, const Tensor& a, const Tensor& b, const Scalar& beta = 1, const Scalar& alpha = 1);
// gelu_tanh(a @ b + bias) for a [M, K], b [K, N], bias [N]: one cuBLASLt call on CUDA (GELU_AUX_BIAS keeps
// the pre-activation for the backward), gemm + bias + one GELU pass on CPU (the bits of addmm then
// gelu(tanh)). Backward: one elementwise pass for GELU's derivative, then the two products, the bias
// gradient summed inside the weight gradient's GEMM on CUDA. Float dtypes; autocast like addmm.
Tensor addmm_gelu(const Tensor& bias, const Tensor& a, const Tensor& b);
Tensor baddbmm(const Tensor& input, const Tensor& a, const Tensor& b, const Scalar& beta = 1, const Scalar& alpha = 1);
Tensor outer(const Tensor& a, const Tensor& b);
Tensor dot(const Tensor& a, const Tensor& b);

// Thread count for Ember's kernels and OpenBLAS together (one pool busy at a time).
void set_num_threads(int n);
int get_num_threads();

}  // namespace ember
