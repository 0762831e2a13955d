// Fused in-place optimizer updates: each updates one parameter and its state tensors in a single pass
// over memory (kernels/cpu/optim.cpp), with PyTorch's single-tensor arithmetic. They need contiguous
// operands of the parameter's dtype on the CPU (fused_step_supported says whether they hold); ember::optim
// falls back to its composite form of in-place tensor ops otherwise (other devices, strided views).
#pragma once
#include <initializer_list>

#include "core/tensor.hpp"

namespace ember {

struct SgdStepArgs {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
  bool maximize = false;
  bool first = false;  // the momentum buffer is new: it takes the gradient (PyTorch's clone on the first step)
};
struct AdamStepArgs {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool decoupled = false;  // AdamW: param *= 1 - lr * weight_decay instead of grad += weight_decay * param
  bool amsgrad = false;
  bool maximize = false;
  double step = 1;  // the step count after this step's increment
};
struct RmspropStepArgs {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0;
  double momentum = 0;
  bool centered = false;
  bool maximize = false;
};
struct AdagradStepArgs {
  double lr = 1e-2;
  double lr_decay = 0;
  double weight_decay = 0;
  double eps = 1e-10;
  bool maximize = false;
  double step = 1;  // the step count after this step's increment
};

// Whether the fused updates take these operands: a floating CPU parameter, and every defined tensor in
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

}  // namespace ember
