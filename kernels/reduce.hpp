// Kernel entry points of the reduction family: reductions over dim sets, arg-reductions, scans,
// sort/topk and softmax. Builders (core/ops/reduce.cpp) check arguments and allocate the outputs.
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

namespace detail {
inline void check_reduce_device(const Tensor& t, const char* op) {
  EMBER_CHECK(t.device().is_cpu(), DeviceError, "[", op, "] device ", t.device(), " is not supported in this build");
}
}  // namespace detail

// `out` has the input's rank, with size 1 on every reduced dim (the keepdim layout), and the result
// dtype of `kind`: i64 for Sum/Prod of bool and integers, bool for All/Any, the input dtype otherwise.
inline void reduce(ReduceKind kind, const Tensor& out, const Tensor& in, const ReduceParams& params = {}) {
  detail::check_reduce_device(in, "reduce");
  cpu::reduce(kind, out, in, params);
}
// Two-pass variance over the size-1 dims of `var` (keepdim layout, floating dtype of `in`);
// `mean` may be undefined; take_sqrt gives the standard deviation.
inline void var_mean(const Tensor& var, const Tensor& mean, const Tensor& in, int64_t correction, bool take_sqrt) {
  detail::check_reduce_device(in, "var");
  cpu::var_mean(var, mean, in, correction, take_sqrt);
}
// Stable log(sum(exp(x))) over the size-1 dims of `out`; the reduced count must be non-zero.
inline void logsumexp(const Tensor& out, const Tensor& in) {
  detail::check_reduce_device(in, "logsumexp");
  cpu::logsumexp(out, in);
}
// Values (optional) and first indices of the max/min over the one size-1 dim of `indices` (flatten
// the input first for a flat index); NaN counts as the extreme, as PyTorch.
inline void arg_reduce(bool is_max, const Tensor& values, const Tensor& indices, const Tensor& in) {
  detail::check_reduce_device(in, is_max ? "argmax" : "argmin");
  cpu::arg_reduce(is_max, values, indices, in);
}
// Inclusive scan along dim; out is contiguous with in's shape (in any layout).
inline void cumulative(bool is_prod, const Tensor& out, const Tensor& in, int64_t dim) {
  detail::check_reduce_device(in, is_prod ? "cumprod" : "cumsum");
  cpu::cumulative(is_prod, out, in, dim);
}
// Stable sort along dim (NaN sorts as the largest value); values and indices contiguous.
inline void sort(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t dim, bool descending) {
  detail::check_reduce_device(in, "sort");
  cpu::sort(values, indices, in, dim, descending);
}
inline void topk(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t k, int64_t dim, bool largest,
                 bool sorted) {
  detail::check_reduce_device(in, "topk");
  cpu::topk(values, indices, in, k, dim, largest, sorted);
}
// softmax / log_softmax along dim; out contiguous with in's shape and floating dtype.
inline void softmax(const Tensor& out, const Tensor& in, int64_t dim, bool log) {
  detail::check_reduce_device(in, log ? "log_softmax" : "softmax");
  cpu::softmax(out, in, dim, log);
}
// The first-order backward along the last dim: grad_in <- from grad_out and the forward's output out
// (all contiguous, one shape and floating dtype).
inline void softmax_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& out, bool log) {
  detail::check_reduce_device(out, log ? "log_softmax" : "softmax");
  cpu::softmax_backward(grad_in, grad_out, out, log);
}

}  // namespace ember::kernels
