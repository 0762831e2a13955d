// Kernel entry points of the elementwise family. Every operand already has the output's shape
// (inputs are broadcast views) and the computation dtype; a predicate's output is bool.
// `op` is the functor's index in UnaryFunctors/BinaryFunctors/TernaryFunctors (kernels/functors.hpp).
#pragma once
#include "core/tensor.hpp"
#include "kernels/functors.hpp"

namespace ember::kernels {

// arange's element i: start + i * step, in double when the dtype or a bound is floating (rounded once
// to the dtype), else in int64. Shared by the CPU loop and the CUDA kernel.
struct ArangeParams {
  bool floating = false;
  double start = 0, step = 1;
  int64_t istart = 0, istep = 1;
};
template <class T>
EMBER_HD T arange_value(const ArangeParams& p, int64_t i) {
  if (p.floating) return static_cast<T>(static_cast<acc_t<T>>(p.start + static_cast<double>(i) * p.step));
  return static_cast<T>(p.istart + i * p.istep);
}

void unary(int op, const Tensor& out, const Tensor& a, const OpParams& p);
void binary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const OpParams& p);
void ternary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c, const OpParams& p);
// dst <- src, converting dtype; shapes equal (src may be a broadcast view).
void copy(const Tensor& dst, const Tensor& src);
void fill(const Tensor& dst, const Scalar& v);
// dst (contiguous 1-D, a NumericTypes dtype) <- arange_value(p, i) for every i, on dst's device.
void arange(const Tensor& dst, const ArangeParams& p);

namespace cpu {
void unary(int op, const Tensor& out, const Tensor& a, const OpParams& p);
void binary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const OpParams& p);
void ternary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c, const OpParams& p);
void copy(const Tensor& dst, const Tensor& src);
void fill(const Tensor& dst, const Scalar& v);
void arange(const Tensor& dst, const ArangeParams& p);
}  // namespace cpu

namespace cuda {  // kernels/cuda/elementwise*.cu; every operand on the output's CUDA device
void unary(int op, const Tensor& out, const Tensor& a, const OpParams& p);
void binary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const OpParams& p);
void ternary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c, const OpParams& p);
void copy(const Tensor& dst, const Tensor& src);
void fill(const Tensor& dst, const Scalar& v);
void arange(const Tensor& dst, const ArangeParams& p);
}  // namespace cuda

}  // namespace ember::kernels
