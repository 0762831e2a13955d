// Shape and view ops. Views (view, permute, transpose, squeeze, unsqueeze, expand, narrow, slice,
// select, as_strided) share storage; cat, stack, flip, repeat and pad copy.
#pragma once
#include <vector>

#include "core/tensor.hpp"

namespace ember {

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& t, int64_t split_size, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& t, const std::vector<int64_t>& sizes, int64_t dim = 0);
std::vector<Tensor> chunk(const Tensor& t, int64_t chunks, int64_t dim = 0);
// The slices along dim, that dim removed (views); core/ops/triangle.cpp.
std::vector<Tensor> unbind(const Tensor& t, int64_t dim = 0);
// The lower / upper triangle of the last two dims (diagonal > 0 above the main one), the rest zero.
Tensor tril(const Tensor& t, int64_t diagonal = 0);
Tensor triu(const Tensor& t, int64_t diagonal = 0);
Tensor flip(const Tensor& t, const Shape& dims);
Tensor repeat(const Tensor& t, const Shape& repeats);
// Constant padding; pad lists (before, after) pairs starting from the last dim, as torch.nn.functional.pad.
// Negative amounts crop.
Tensor pad(const Tensor& t, const std::vector<int64_t>& pad, double value = 0.0);
// The shape two tensors broadcast to.
Tensor broadcast_to(const Tensor& t, const Shape& shape);
std::vector<Tensor> broadcast_tensors(const std::vector<Tensor>& tensors);

}  // namespace ember
