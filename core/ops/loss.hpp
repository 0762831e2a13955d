// Fused loss ops: cross entropy over class indices (log_softmax + target pick + label smoothing +
// class weights in one kernel, and a one-pass backward). nn::functional::cross_entropy calls it.
#pragma once
#include <cstdint>
#include <optional>

#include "core/tensor.hpp"

namespace ember {

enum class LossReduction { None, Mean, Sum };

// input: f32/f64 logits [N, C, K] (K positions per sample; K = 1 for [N, C]; f16/bf16 on CUDA or with a
// float32 loss_dtype); target: integer class indices [N, K]; weight: [C] or undefined (a constant: no
// gradient, as PyTorch). Returns the losses [N, K] (None), their sum (Sum) or their sum over the summed
// target weights of the non-ignored positions (Mean; NaN when all are ignored, as PyTorch). Backward is
// one fused pass, or under create_graph a formula of public ops over softmax (so double backward works).
// loss_dtype (default: the input's) may be float32 for f16/bf16 logits: the loss is then float32 as the
// float32 logits' would be (up to summation order) and the input's gradient is the float32 one rounded
// once, without a float32 copy of the logits (autocast's cross entropy on CUDA).
Tensor cross_entropy_loss(const Tensor& input, const Tensor& target, const Tensor& weight = {},
                          int64_t ignore_index = -100, LossReduction reduction = LossReduction::Mean,
                          double label_smoothing = 0.0, std::optional<DType> loss_dtype = std::nullopt);

// Raises IndexError naming op ("cross_entropy" or "nll_loss") when a class-index target other than
// ignore_index is outside [0, classes): at once on the CPU; on CUDA at the next host read (a deferred
// error, worded as the fused cross-entropy's, kernels/deferred_error.hpp), so that the composed losses
// are no host sync there. Their target pick (a gather) then reads nothing for a bad target.
void check_class_targets(const char* op, const Tensor& target, int64_t classes, int64_t ignore_index);
// Raises ValueError naming op (binary_cross_entropy) when an element of the input probabilities is
// outside [0, 1]: at once on the CPU, on CUDA at the next host read (a deferred error).
void check_probabilities(const char* op, const Tensor& input);

}  // namespace ember
