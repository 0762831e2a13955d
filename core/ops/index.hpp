// Indexing ops: index_select, gather, scatter(_add), index_add, masked_fill/select, take_along_dim,
// one_hot, embedding. Index tensors are i64 (i32 accepted); out-of-range indices raise IndexError.
#pragma once
#include "core/tensor.hpp"

namespace ember {

Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& t, int64_t dim, const Tensor& index);
Tensor scatter(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src);
Tensor scatter(const Tensor& t, int64_t dim, const Tensor& index, const Scalar& value);
Tensor scatter_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src);
Tensor index_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src, const Scalar& alpha = 1);
Tensor masked_fill(const Tensor& t, const Tensor& mask, const Scalar& value);
Tensor masked_select(const Tensor& t, const Tensor& mask);  // 1-D result
Tensor take_along_dim(const Tensor& t, const Tensor& indices, int64_t dim);
// i64 tensor with a trailing dim of num_classes (-1: max index + 1).
Tensor one_hot(const Tensor& indices, int64_t num_classes = -1);
// Rows of weight [num_embeddings, dim] picked by indices of any shape; padding_idx only matters for grads.
// Argument order as torch.nn.functional.embedding (indices, then weight).
Tensor embedding(const Tensor& input, const Tensor& weight, std::optional<int64_t> padding_idx = {});

}  // namespace ember
