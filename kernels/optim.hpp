// Kernel entries of the fused optimizer updates (core/ops/optim.cpp checks the operands): each updates
// a parameter and its state in one pass over memory. Every tensor is contiguous, of the parameter's
// dtype and numel, on its device; a state tensor a variant does not use is undefined.
#pragma once
#include "core/tensor.hpp"

namespace ember::kernels {

struct SgdHyper {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize;
  bool first;  // momentum buffer not yet initialised: it becomes the gradient
};
struct AdamHyper {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled, amsgrad, maximize;
  double step;  // after the increment
};
struct RmspropHyper {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered, maximize;
};
struct AdagradHyper {
  double lr, lr_decay, weight_decay, eps;
  bool maximize;
  double step;  // after the increment
};

void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& buf, const SgdHyper& h);
void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const Tensor& max_exp_avg_sq, const AdamHyper& h);
void rmsprop_step(const Tensor& param, const Tensor& grad, const Tensor& square_avg, const Tensor& grad_avg,
                  const Tensor& buf, const RmspropHyper& h);
void adagrad_step(const Tensor& param, const Tensor& grad, const Tensor& sum, const AdagradHyper& h);

namespace cpu {
void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& buf, const SgdHyper& h);
void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const Tensor& max_exp_avg_sq, const AdamHyper& h);
void rmsprop_step(const Tensor& param, const Tensor& grad, const Tensor& square_avg, const Tensor& grad_avg,
                  const Tensor& buf, const RmspropHyper& h);
void adagrad_step(const Tensor& param, const Tensor& grad, const Tensor& sum, const AdagradHyper& h);
}  // namespace cpu

}  // namespace ember::kernels
