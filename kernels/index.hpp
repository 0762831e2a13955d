// Kernel entry points of the indexing family (gather/scatter, index_select, masked ops). The builders
// in core/ops/index.cpp have already checked shapes, dtypes and index ranges; kernels only compute.
#pragma once
#include <cstdint>
#include <utility>

#include "core/tensor.hpp"

namespace ember::kernels {

enum class ScatterMode : uint8_t { Assign, Add };

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

namespace detail {
inline void check_index_device(const Tensor& t, const char* op) {
  EMBER_CHECK(t.device().is_cpu(), DeviceError, "[", op, "] device ", t.device(), " is not supported in this build");
}
}  // namespace detail

// (min, max) over a non-empty i32/i64 index tensor of any strides.
inline std::pair<int64_t, int64_t> index_range(const Tensor& index) {
  detail::check_index_device(index, "index_range");
  return cpu::index_range(index);
}
// out <- self.index_select(dim, index): self and out contiguous, index 1-D.
inline void index_select(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index) {
  detail::check_index_device(out, "index_select");
  cpu::index_select(out, self, dim, index);
}
// out[..j..] = self[..index[..j..]..] along dim; out has index's shape, self any strides.
inline void gather(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index) {
  detail::check_index_device(out, "gather");
  cpu::gather(out, self, dim, index);
}
// out[..index[..j..]..] = src[..j..] (Assign) or += alpha * src[..j..] (Add), walking index's shape;
// src may be a broadcast view, and has out's dtype.
inline void scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, ScatterMode mode,
                    const Scalar& alpha = 1) {
  detail::check_index_device(out, "scatter");
  cpu::scatter(out, dim, index, src, mode, alpha);
}
// out = mask ? value : self, all three of out's shape (mask bool, self of out's dtype).
inline void masked_fill(const Tensor& out, const Tensor& self, const Tensor& mask, const Scalar& value) {
  detail::check_index_device(out, "masked_fill");
  cpu::masked_fill(out, self, mask, value);
}
// Number of true elements of a bool tensor.
inline int64_t count_true(const Tensor& mask) {
  detail::check_index_device(mask, "count_true");
  return cpu::count_true(mask);
}
// out (1-D, count_true(mask) elements) <- the elements of self where mask, in row-major order;
// self and mask share a shape.
inline void masked_select(const Tensor& out, const Tensor& self, const Tensor& mask) {
  detail::check_index_device(out, "masked_select");
  cpu::masked_select(out, self, mask);
}

}  // namespace ember::kernels
