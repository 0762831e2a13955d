// Kernel entry points of the elementwise family. Every operand already has the output's shape
// (inputs are broadcast views) and the computation dtype; a predicate's output is bool.
// `op` is the functor's index in UnaryFunctors/BinaryFunctors/TernaryFunctors (kernels/functors.hpp).
#pragma once
#include "core/tensor.hpp"
#include "kernels/functors.hpp"

namespace ember::kernels {

// arange's element i: start + i * step, in double when the dtype or a bound is floating (rounded once
// to the dtype), else in int64. linspace sets from_end: the elements from there on count back from
// its end, end - (last - i) * step, so the last one is exactly `end`. Shared by the CPU loop and the
// CUDA kernel, with the same two roundings on both (nvcc would fuse the product and sum into an FMA).
struct ArangeParams {
  bool floating = false;
  double start = 0, step = 1;
  int64_t istart = 0, istep = 1;
  double end = 0;
  int64_t from_end = INT64_MAX, last = 0;
};
EMBER_HD double add_product(double a, double b, double c, bool subtract) {
#ifdef __CUDA_ARCH__
  return subtract ? __dsub_rn(a, __dmul_rn(b, c)) : __dadd_rn(a, __dmul_rn(b, c));
#else
  return subtract ? a - b * c : a + b * c;
#endif
}
template <class T>
EMBER_HD T arange_value(const ArangeParams& p, int64_t i) {
  if (!p.floating) return static_cast<T>(p.istart + i * p.istep);
  const double v = i < p.from_end ? add_product(p.start, p.step, static_cast<double>(i), false)
                                  : add_product(p.end, p.step, static_cast<double>(p.last - i), true);
  return static_cast<T>(static_cast<acc_t<T>>(v));
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
