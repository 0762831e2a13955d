// Fused in-place optimizer updates: each updates one parameter and its state tensors in a single pass
// over memory (kernels/cpu/optim.cpp, kernels/cuda/optim.cu), with PyTorch's single-tensor arithmetic.
// The *_multi_ forms take lists, which CUDA steps in a few multi-tensor launches. They need contiguous
// operands of the parameter's dtype and device, on the CPU or CUDA (fused_step_supported says whether
// they hold); ember::optim falls back to its composite form of in-place tensor ops otherwise.
#pragma once
#include <initializer_list>
#include <vector>

#include "core/optim_args.hpp"
#include "core/tensor.hpp"

namespace ember {

// Whether the fused updates take these operands: a floating CPU or CUDA parameter, and every defined tensor in
// `others` contiguous with its dtype, numel and device (the parameter itself contiguous too).
bool fused_step_supported(const Tensor& param, std::initializer_list<const Tensor*> others);

// Undefined state tensors are those the options don't use (momentum_buffer without momentum,
// max_exp_avg_sq without amsgrad, grad_avg without centered). Each bumps the written tensors' versions.
void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdStepArgs& a);
void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const Tensor& max_exp_avg_sq, const AdamStepArgs& a);
void rmsprop_step_(const Tensor& param, const Tensor& grad, const Tensor& square_avg, const Tensor& grad_avg,
                   const Tensor& momentum_buffer, const RmspropStepArgs& a);
void adagrad_step_(const Tensor& param, const Tensor& grad, const Tensor& sum, const AdagradStepArgs& a);

// The same over lists of one device and dtype (each checked as above); a state list the options don't use
// is empty. On CUDA one launch covers many parameters; on the CPU each parameter runs as above.
void sgd_step_multi_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                     const std::vector<Tensor>& momentum_buffers, const SgdStepArgs& a);
void adam_step_multi_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                      const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                      const std::vector<Tensor>& max_exp_avg_sqs, const AdamStepArgs& a);
void rmsprop_step_multi_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                         const std::vector<Tensor>& square_avgs, const std::vector<Tensor>& grad_avgs,
                         const std::vector<Tensor>& momentum_buffers, const RmspropStepArgs& a);
void adagrad_step_multi_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                         const std::vector<Tensor>& sums, const AdagradStepArgs& a);

// The p-norm (p > 0 or inf) of all the tensors' elements together as a 0-dim tensor of out_dtype on their
// device, in one deterministic multi-tensor reduction (no autograd): clip_grad_norm_'s total norm on
// CUDA. Contiguous floating tensors on one device.
Tensor multi_tensor_norm(const std::vector<Tensor>& tensors, double p, DType out_dtype);

}  // namespace ember
