// Gradient clipping over a set of parameters (torch.nn.utils): by total norm and by value, in place on
// each parameter's .grad; parameters without a gradient are skipped.
#pragma once
#include <vector>

#include "core/tensor.hpp"

namespace ember::nn {

// The norm of the norms of the tensors (each by norm_type: any p > 0, or INFINITY), as one 0-dim tensor
// of the tensors' promoted dtype; 0 for none. error_if_nonfinite raises on a NaN or infinite total.
Tensor get_total_norm(const std::vector<Tensor>& tensors, double norm_type = 2.0, bool error_if_nonfinite = false);
// Scales every gradient by clamp(max_norm / (total_norm + 1e-6), max=1).
void clip_grads_with_norm_(const std::vector<Tensor>& params, double max_norm, const Tensor& total_norm);
// Both: returns the total norm of the gradients before clipping.
Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);
// Clamps every gradient to [-clip_value, clip_value].
void clip_grad_value_(const std::vector<Tensor>& params, double clip_value);

}  // namespace ember::nn
