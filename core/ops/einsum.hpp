// einsum with PyTorch's grammar, built from views, sums and batched matmuls (so gradients and CUDA
// come from those ops).
#pragma once
#include <string_view>
#include <vector>

#include "core/tensor.hpp"

namespace ember {

// "ij,jk->ik" style equations: letters a-z and A-Z label dims, "..." stands for broadcast leading dims,
// a letter repeated within one operand takes the diagonal, letters absent from the output are summed.
// Without "->" the output is "..." followed by the letters that appear exactly once, in ASCII order.
// Operands are contracted left to right, each pair as one bmm.
Tensor einsum(std::string_view equation, const std::vector<Tensor>& operands);

}  // namespace ember
