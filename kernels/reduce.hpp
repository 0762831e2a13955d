// Kernel entry points of the reduction family: reductions over dim sets, arg-reductions, scans,
// sort/topk and softmax. Builders (core/ops/reduce.cpp) check arguments and allocate the outputs; the
// public entries (kernels/reduce.cpp) send each call to the cpu:: or cuda:: kernel of its device.
#pragma once
#include "core/tensor.hpp"

namespace ember::kernels {

enum class ReduceKind { Sum, Mean, Prod, Max, Min, NormL0, NormL1, NormL2, NormInf, NormNegInf, NormP, All, Any };

struct ReduceParams {
  double p = 2.0;  // NormP's exponent
};

namespace cpu {
void reduce(ReduceKind kind, const Tensor& out, const Tensor& in, const ReduceParams& params);
void var_mean(const Tensor& var, const Tensor& mean, const Tensor& in, int64_t correction, bool take_sqrt);
void logsumexp(const Tensor& out, const Tensor& in);
void arg_reduce(bool is_max, const Tensor& values, const Tensor& indices, const Tensor& in);
void cumulative(bool is_prod, const Tensor& out, const Tensor& in, int64_t dim);
void sort(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t dim, bool descending);
void topk(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t k, int64_t dim, bool largest,
          bool sorted);
void softmax(const Tensor& out, const Tensor& in, int64_t dim, bool log);
void softmax_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& out, bool log);
}  // namespace cpu

// The CUDA kernels (kernels/cuda/reduce*.cu; a CPU-only build says "built without CUDA support").
namespace cuda {
void reduce(ReduceKind kind, const Tensor& out, const Tensor& in, const ReduceParams& params);
void var_mean(const Tensor& var, const Tensor& mean, const Tensor& in, int64_t correction, bool take_sqrt);
void logsumexp(const Tensor& out, const Tensor& in);
void arg_reduce(bool is_max, const Tensor& values, const Tensor& indices, const Tensor& in);
void cumulative(bool is_prod, const Tensor& out, const Tensor& in, int64_t dim);
void sort(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t dim, bool descending);
void topk(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t k, int64_t dim, bool largest,
          bool sorted);
void softmax(const Tensor& out, const Tensor& in, int64_t dim, bool log);
void softmax_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& out, bool log);
}  // namespace cuda

// `out` has the input's rank, with size 1 on every reduced dim (the keepdim layout), and the result
// dtype of `kind`: i64 for Sum/Prod of bool and integers, bool for All/Any, the input dtype otherwise.
void reduce(ReduceKind kind, const Tensor& out, const Tensor& in, const ReduceParams& params = {});
// Two-pass variance over the size-1 dims of `var` (keepdim layout, floating dtype of `in`);
// `mean` may be undefined; take_sqrt gives the standard deviation.
void var_mean(const Tensor& var, const Tensor& mean, const Tensor& in, int64_t correction, bool take_sqrt);
// Stable log(sum(exp(x))) over the size-1 dims of `out`; the reduced count must be non-zero.
void logsumexp(const Tensor& out, const Tensor& in);
// Values (optional) and first indices of the max/min over the one size-1 dim of `indices` (flatten
// the input first for a flat index); NaN counts as the extreme, as PyTorch.
void arg_reduce(bool is_max, const Tensor& values, const Tensor& indices, const Tensor& in);
// Inclusive scan along dim; out is contiguous with in's shape (in any layout).
void cumulative(bool is_prod, const Tensor& out, const Tensor& in, int64_t dim);
// Stable sort along dim (NaN sorts as the largest value); values and indices contiguous.
void sort(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t dim, bool descending);
void topk(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t k, int64_t dim, bool largest,
          bool sorted);
// softmax / log_softmax along dim; out contiguous with in's shape and floating dtype.
void softmax(const Tensor& out, const Tensor& in, int64_t dim, bool log);
// The first-order backward along the last dim: grad_in <- from grad_out and the forward's output out
// (all contiguous, one shape and floating dtype).
void softmax_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& out, bool log);

}  // namespace ember::kernels
