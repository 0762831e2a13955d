// Kernel entry points of the indexing family (gather/scatter, index_select, masked ops). The builders
// in core/ops/index.cpp have already checked shapes and dtypes, and on the CPU the index ranges. The
// CUDA kernels check each index themselves: a bad one reads or writes nothing (a read gives 0) and is
// reported as a deferred error naming `op` (kernels/deferred_error.hpp), so that no host read is needed.
// kernels/index.cpp sends each call to cpu:: or cuda:: by the output's device.
#pragma once
#include <cstdint>
#include <optional>
#include <utility>

#include "core/tensor.hpp"
#include "kernels/deferred_error.hpp"

namespace ember::kernels {

enum class ScatterMode : uint8_t { Assign, Add };

// (min, max) over a non-empty i32/i64 index tensor of any strides.
std::pair<int64_t, int64_t> index_range(const Tensor& index);
// out <- self.index_select(dim, index): self and out contiguous, index 1-D.
void index_select(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index,
                  IndexOp op = IndexOp::kIndexSelect);
// out[..j..] = self[..index[..j..]..] along dim; out has index's shape, self any strides.
void gather(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index, IndexOp op = IndexOp::kGather);
// out[..index[..j..]..] = src[..j..] (Assign) or += alpha * src[..j..] (Add), walking index's shape;
// src may be a broadcast view, and has out's dtype. Duplicates: CPU runs them in order along dim;
// CUDA does too unless it takes the per-element kernel (atomics for Add; see kernels/index_plan.hpp),
// and never uses float atomics when ember::deterministic() is set.
void scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, ScatterMode mode,
             const Scalar& alpha = 1, IndexOp op = IndexOp::kScatter);
// What a deferred range check reports for its first bad value v (at the smallest flat position i):
// `code` with args (v, a1, position ? i : a2, a3).
struct RangeReport {
  DeferredCode code = DeferredCode::kIndexOutOfRange;
  int64_t a1 = 0, a2 = 0, a3 = 0;
  bool position = false;
};
// Checks every value of index (contiguous i64, on a CUDA device) against [lo, hi), `skip` passing too,
// without a host read: the first bad one becomes the deferred error `report`. For ops whose kernels do
// not see the values as given (advanced indexing wraps negative indices first; the composed losses pick
// the targets with a gather that would word the error as its own).
void check_index_range(const Tensor& index, int64_t lo, int64_t hi, std::optional<int64_t> skip,
                       const RangeReport& report);
// out = mask ? value : self, all three of out's shape (mask bool, self of out's dtype).
void masked_fill(const Tensor& out, const Tensor& self, const Tensor& mask, const Scalar& value);
// Number of true elements of a bool tensor.
int64_t count_true(const Tensor& mask);
// out (1-D, count_true(mask) elements) <- the elements of self where mask, in row-major order;
// self and mask share a shape.
void masked_select(const Tensor& out, const Tensor& self, const Tensor& mask);

namespace cpu {
std::pair<int64_t, int64_t> index_range(const Tensor& index);
void index_select(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index);
void gather(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index);
void scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, ScatterMode mode,
             const Scalar& alpha);
void masked_fill(const Tensor& out, const Tensor& self, const Tensor& mask, const Scalar& value);
int64_t count_true(const Tensor& mask);
void masked_select(const Tensor& out, const Tensor& self, const Tensor& mask);
}  // namespace cpu

namespace cuda {
std::pair<int64_t, int64_t> index_range(const Tensor& index);
void index_select(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index, IndexOp op);
void gather(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index, IndexOp op);
void scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, ScatterMode mode,
             const Scalar& alpha, IndexOp op);
void check_index_range(const Tensor& index, int64_t lo, int64_t hi, std::optional<int64_t> skip,
                       const RangeReport& report);
void masked_fill(const Tensor& out, const Tensor& self, const Tensor& mask, const Scalar& value);
int64_t count_true(const Tensor& mask);
void masked_select(const Tensor& out, const Tensor& self, const Tensor& mask);
}  // namespace cuda

}  // namespace ember::kernels
