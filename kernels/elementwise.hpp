// Kernel entry points of the elementwise family. Every operand already has the output's shape
// (inputs are broadcast views) and the computation dtype; a predicate's output is bool.
// `op` is the functor's index in UnaryFunctors/BinaryFunctors/TernaryFunctors (kernels/functors.hpp).
#pragma once
#include "core/tensor.hpp"
#include "kernels/functors.hpp"

namespace ember::kernels {

void unary(int op, const Tensor& out, const Tensor& a, const OpParams& p);
void binary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const OpParams& p);
void ternary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c, const OpParams& p);
// dst <- src, converting dtype; shapes equal (src may be a broadcast view).
void copy(const Tensor& dst, const Tensor& src);
void fill(const Tensor& dst, const Scalar& v);

namespace cpu {
void unary(int op, const Tensor& out, const Tensor& a, const OpParams& p);
void binary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const OpParams& p);
void ternary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c, const OpParams& p);
void copy(const Tensor& dst, const Tensor& src);
void fill(const Tensor& dst, const Scalar& v);
}  // namespace cpu

namespace cuda {  // kernels/cuda/elementwise*.cu; every operand on the output's CUDA device
void unary(int op, const Tensor& out, const Tensor& a, const OpParams& p);
void binary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const OpParams& p);
void ternary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c, const OpParams& p);
void copy(const Tensor& dst, const Tensor& src);
void fill(const Tensor& dst, const Scalar& v);
}  // namespace cuda

}  // namespace ember::kernels
