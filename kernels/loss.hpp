// Kernel entries of the fused losses: cross entropy over class indices (log-softmax, target pick,
// label smoothing and class weights in one pass per position, and its backward in one more).
// The builder (core/ops/loss.cpp) has checked shapes and dtypes; targets are checked here.
#pragma once
#include <utility>

#include "core/tensor.hpp"
#include "kernels/deferred_error.hpp"

namespace ember::kernels {

struct CrossEntropyParams {
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
};

// Which reduced loss the CUDA forward also writes (the CPU's is made by the builder from the sums).
enum class CeReduce { kNone, kSum, kMean };

// The sums of a forward: on the CPU read at once; on CUDA left on the device (no host sync).
struct CrossEntropySums {
  double loss = 0, weight = 0;  // CPU: sum of the losses, sum of the non-ignored target weights
  Tensor device_sums;           // CUDA: float64 [2] {loss sum, weight sum} on the device
  Tensor reduced;               // CUDA, reduce kSum/kMean: the 0-dim loss (the loss's dtype) on the device
};

// input: contiguous f32/f64 (on CUDA also f16/bf16) [N, C, K], or f16/bf16 with a float32 loss (autocast's
// loss: the CUDA kernel reads the logits as they are, the CPU's a float32 copy); target: contiguous i64
// [N, K]; weight: contiguous [C] of the loss's dtype or undefined. Writes each position's loss (contiguous
// [N, K], the input's dtype or float32) and logsumexp (contiguous [N, K], float32 for f16/bf16/f32 input,
// else float64) and returns the sums. A target
// outside [0, C) other than ignore_index raises IndexError: at once on the CPU; on CUDA at the next host
// synchronisation (kernels/deferred_error.hpp).
CrossEntropySums cross_entropy_forward(const Tensor& loss, const Tensor& lse, const Tensor& input, const Tensor& target,
                                       const Tensor& weight, const CrossEntropyParams& p,
                                       CeReduce reduce = CeReduce::kNone);
// grad_input (contiguous [N, C, K], the input's dtype) <- coef * (s * softmax(input) - q) with coef the upstream
// gradient times grad_scale (grad_loss contiguous [N, K] of the loss's dtype, or one element for every position, or
// when undefined 1), s and q the weighted, smoothed target terms; ignored positions get zeros. On CUDA, divide_by (a
// float64 element on the device, or undefined) divides grad_scale: a mean's weight sum that was never read to the host.
void cross_entropy_backward(const Tensor& grad_input, const Tensor& grad_loss, double grad_scale, const Tensor& input,
                            const Tensor& target, const Tensor& weight, const Tensor& lse, const CrossEntropyParams& p,
                            const Tensor& divide_by = Tensor());

namespace cpu {
std::pair<double, double> cross_entropy_forward(const Tensor& loss, const Tensor& lse, const Tensor& input,
                                                const Tensor& target, const Tensor& weight,
                                                const CrossEntropyParams& p);
void cross_entropy_backward(const Tensor& grad_input, const Tensor& grad_loss, double grad_scale, const Tensor& input,
                            const Tensor& target, const Tensor& weight, const Tensor& lse, const CrossEntropyParams& p);
}  // namespace cpu

namespace cuda {
// input: contiguous, floating, on a CUDA device. The first element outside [0, 1] becomes the deferred
// error kProbabilityRange worded for `op` (binary_cross_entropy's input, bernoulli's p), nothing read back.
void check_probabilities(const Tensor& input, ProbabilityOp op = ProbabilityOp::kBinaryCrossEntropy);
// sums: float64 [2] on the device; reduced: 0-dim of the loss's dtype, or undefined for kNone.
void cross_entropy_forward(const Tensor& loss, const Tensor& lse, const Tensor& input, const Tensor& target,
                           const Tensor& weight, const CrossEntropyParams& p, const Tensor& sums, const Tensor& reduced,
                           CeReduce reduce);
void cross_entropy_backward(const Tensor& grad_input, const Tensor& grad_loss, double grad_scale, const Tensor& input,
                            const Tensor& target, const Tensor& weight, const Tensor& lse, const CrossEntropyParams& p,
                            const Tensor& divide_by);
}  // namespace cuda

}  // namespace ember::kernels
