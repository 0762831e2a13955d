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
Tensor baddbmm(const Tensor& input, const Tensor& a, const Tensor& b, const Scalar& beta = 1, const Scalar& alpha = 1);
Tensor outer(const Tensor& a, const Tensor& b);
Tensor dot(const Tensor& a, const Tensor& b);

// Thread count for Ember's kernels and OpenBLAS together (one pool busy at a time).
void set_num_threads(int n);
int get_num_threads();

}  // namespace ember
