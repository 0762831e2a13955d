// Advanced indexing in the style of LibTorch's TensorIndex: x.index({Slice(), idx}) reads, and
// x.index_put_({mask}, v) writes, with PyTorch's rules for integers, slices, None, Ellipsis, integer
// tensors (broadcast together) and bool masks. Built on index_select / index_add / scatter, so
// gradients and CUDA come from those ops.
#pragma once
#include <optional>
#include <vector>

#include "core/scalar.hpp"
#include "core/tensor.hpp"

namespace ember::indexing {

struct NoneIndex {};
struct EllipsisIndex {};
// x.index({None}) adds a dim of size 1 (unsqueeze); x.index({Ellipsis, 0}) selects in the last dim.
inline constexpr NoneIndex None{};
inline constexpr EllipsisIndex Ellipsis{};

// A slice bound: an integer (negative counts from the end) or None for "to the edge".
struct SliceBound {
  std::optional<int64_t> value;
  SliceBound() = default;
  SliceBound(int64_t v) : value(v) {}
  SliceBound(int v) : value(v) {}
  SliceBound(NoneIndex) {}
  SliceBound(std::nullopt_t) {}
};

// Python's start:stop:step (step > 0): Slice() is ":", Slice(1, None) is "1:", Slice(None, None, 2) is "::2".
struct Slice {
  std::optional<int64_t> start, stop;
  int64_t step = 1;
  Slice(SliceBound start = {}, SliceBound stop = {}, int64_t step = 1)
      : start(start.value), stop(stop.value), step(step) {}
};

// One entry of an index list: an integer (selects, removing the dim), a Slice, None, Ellipsis, or a
// tensor: integer (i64 or i32; indexes one dim, several broadcast together) or bool (a mask over as
// many dims as it has, taking the positions where it is true).
class TensorIndex {
 public:
  enum class Kind { Integer, Slice, None, Ellipsis, Tensor };
  TensorIndex(int64_t i) : kind_(Kind::Integer), integer_(i) {}
  TensorIndex(int i) : kind_(Kind::Integer), integer_(i) {}
  TensorIndex(indexing::Slice s) : kind_(Kind::Slice), slice_(s) {}
  TensorIndex(NoneIndex) : kind_(Kind::None) {}
  TensorIndex(EllipsisIndex) : kind_(Kind::Ellipsis) {}
  TensorIndex(ember::Tensor t) : kind_(Kind::Tensor), tensor_(std::move(t)) {}
  Kind kind() const { return kind_; }
  int64_t integer() const { return integer_; }
  const indexing::Slice& slice() const { return slice_; }
  const ember::Tensor& tensor() const { return tensor_; }

 private:
  Kind kind_;
  int64_t integer_ = 0;
  indexing::Slice slice_;
  ember::Tensor tensor_;
};

}  // namespace ember::indexing

namespace ember {

// x[indices] as PyTorch: a view when only integers, slices, None and Ellipsis are used; otherwise a
// copy whose dims are those of the broadcast index tensors, placed where the (adjacent) tensor
// indices stood, or first when slices separate them. Integers count as basic indices (as PyTorch).
Tensor index(const Tensor& t, const std::vector<indexing::TensorIndex>& indices);
// A copy of t with t[indices] = values (values broadcast to the shape of t[indices]); accumulate adds
// instead, duplicates included (index_put with accumulate). Without accumulate, duplicate positions
// get one of their values.
Tensor index_put(const Tensor& t, const std::vector<indexing::TensorIndex>& indices, const Tensor& values,
                 bool accumulate = false);
// In place (Tensor::index_put_ calls these).
Tensor& index_put_(Tensor& t, const std::vector<indexing::TensorIndex>& indices, const Tensor& values,
                   bool accumulate = false);
Tensor& index_put_(Tensor& t, const std::vector<indexing::TensorIndex>& indices, const Scalar& value,
                   bool accumulate = false);
// The coordinates of the true (nonzero) elements: [count, t.dim()] i64, in row-major order.
Tensor nonzero(const Tensor& t);

}  // namespace ember
