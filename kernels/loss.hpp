// Kernel entries of the fused losses: cross entropy over class indices (log-softmax, target pick,
// label smoothing and class weights in one pass per position, and its backward in one more).
// The builder (core/ops/loss.cpp) has checked shapes and dtypes; targets are checked here.
#pragma once
#include <utility>

#include "core/tensor.hpp"

namespace ember::kernels {

struct CrossEntropyParams {
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
};

// input: contiguous f32/f64 (on CUDA also f16/bf16) [N, C, K]; target: contiguous i64 [N, K]; weight:
// contiguous [C] of the input's dtype or undefined. Writes each position's loss and logsumexp (contiguous
// [N, K], input dtype) and returns {sum of the losses, sum of the target weights of the non-ignored
// positions} (on CUDA reduced on the device and copied back with the out-of-range flag, in one copy).
// A target outside [0, C) other than ignore_index raises IndexError.
std::pair<double, double> cross_entropy_forward(const Tensor& loss, const Tensor& lse, const Tensor& input,
                                                const Tensor& target, const Tensor& weight,
                                                const CrossEntropyParams& p);
// grad_input (contiguous [N, C, K]) <- coef * (s * softmax(input) - q) with coef the upstream
// gradient times grad_scale (grad_loss contiguous [N, K], or one element for every position, or when
// undefined 1), s and q the weighted, smoothed target terms; ignored positions get zeros.
void cross_entropy_backward(const Tensor& grad_input, const Tensor& grad_loss, double grad_scale, const Tensor& input,
                            const Tensor& target, const Tensor& weight, const Tensor& lse, const CrossEntropyParams& p);

namespace cpu {
std::pair<double, double> cross_entropy_forward(const Tensor& loss, const Tensor& lse, const Tensor& input,
                                                const Tensor& target, const Tensor& weight,
                                                const CrossEntropyParams& p);
void cross_entropy_backward(const Tensor& grad_input, const Tensor& grad_loss, double grad_scale, const Tensor& input,
                            const Tensor& target, const Tensor& weight, const Tensor& lse, const CrossEntropyParams& p);
}  // namespace cpu

namespace cuda {
std::pair<double, double> cross_entropy_forward(const Tensor& loss, const Tensor& lse, const Tensor& input,
                                                const Tensor& target, const Tensor& weight,
                                                const CrossEntropyParams& p);
void cross_entropy_backward(const Tensor& grad_input, const Tensor& grad_loss, double grad_scale, const Tensor& input,
                            const Tensor& target, const Tensor& weight, const Tensor& lse, const CrossEntropyParams& p);
}  // namespace cuda

}  // namespace ember::kernels
