// Kernel entries of the fused optimizer updates (core/ops/optim.cpp checks the operands): each updates
// a parameter and its state in one pass over memory. Every tensor is contiguous, of the parameter's
// dtype and numel, on its device; a state tensor a variant does not use is undefined. The *_multi
// entries take lists (one dtype, one device, one set of hyperparameters): on CUDA one multi-tensor
// launch covers many parameters; on the CPU they run the single-tensor loop per parameter.
#pragma once
#include <vector>

#include "core/optim_args.hpp"
#include "core/tensor.hpp"

namespace ember::kernels {

using TensorList = std::vector<Tensor>;

// The hyperparameters are the builders' own ember::*StepArgs (core/optim_args.hpp), passed through as they are.
void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& buf, const SgdStepArgs& h);
void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const Tensor& max_exp_avg_sq, const AdamStepArgs& h);
void rmsprop_step(const Tensor& param, const Tensor& grad, const Tensor& square_avg, const Tensor& grad_avg,
                  const Tensor& buf, const RmspropStepArgs& h);
void adagrad_step(const Tensor& param, const Tensor& grad, const Tensor& sum, const AdagradStepArgs& h);
// Lists of equal length, or empty for a state the options don't use.
void sgd_step_multi(const TensorList& params, const TensorList& grads, const TensorList& bufs, const SgdStepArgs& h);
void adam_step_multi(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                     const TensorList& exp_avg_sqs, const TensorList& max_exp_avg_sqs, const AdamStepArgs& h);
void rmsprop_step_multi(const TensorList& params, const TensorList& grads, const TensorList& square_avgs,
                        const TensorList& grad_avgs, const TensorList& bufs, const RmspropStepArgs& h);
void adagrad_step_multi(const TensorList& params, const TensorList& grads, const TensorList& sums,
                        const AdagradStepArgs& h);
// The p-norm of all the tensors' elements together (p > 0, or inf: the largest magnitude), as a 0-dim
// tensor of out_dtype on their device: one multi-tensor reduction, deterministic. Contiguous floating
// tensors on one device.
Tensor multi_tensor_norm(const TensorList& tensors, double p, DType out_dtype);

namespace cpu {
void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& buf, const SgdStepArgs& h);
void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const Tensor& max_exp_avg_sq, const AdamStepArgs& h);
void rmsprop_step(const Tensor& param, const Tensor& grad, const Tensor& square_avg, const Tensor& grad_avg,
                  const Tensor& buf, const RmspropStepArgs& h);
void adagrad_step(const Tensor& param, const Tensor& grad, const Tensor& sum, const AdagradStepArgs& h);
void sgd_step_multi(const TensorList& params, const TensorList& grads, const TensorList& bufs, const SgdStepArgs& h);
void adam_step_multi(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                     const TensorList& exp_avg_sqs, const TensorList& max_exp_avg_sqs, const AdamStepArgs& h);
void rmsprop_step_multi(const TensorList& params, const TensorList& grads, const TensorList& square_avgs,
                        const TensorList& grad_avgs, const TensorList& bufs, const RmspropStepArgs& h);
void adagrad_step_multi(const TensorList& params, const TensorList& grads, const TensorList& sums,
                        const AdagradStepArgs& h);
Tensor multi_tensor_norm(const TensorList& tensors, double p, DType out_dtype);
}  // namespace cpu

namespace cuda {
void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& buf, const SgdStepArgs& h);
void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const Tensor& max_exp_avg_sq, const AdamStepArgs& h);
void rmsprop_step(const Tensor& param, const Tensor& grad, const Tensor& square_avg, const Tensor& grad_avg,
                  const Tensor& buf, const RmspropStepArgs& h);
void adagrad_step(const Tensor& param, const Tensor& grad, const Tensor& sum, const AdagradStepArgs& h);
void sgd_step_multi(const TensorList& params, const TensorList& grads, const TensorList& bufs, const SgdStepArgs& h);
void adam_step_multi(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                     const TensorList& exp_avg_sqs, const TensorList& max_exp_avg_sqs, const AdamStepArgs& h);
void rmsprop_step_multi(const TensorList& params, const TensorList& grads, const TensorList& square_avgs,
                        const TensorList& grad_avgs, const TensorList& bufs, const RmspropStepArgs& h);
void adagrad_step_multi(const TensorList& params, const TensorList& grads, const TensorList& sums,
                        const AdagradStepArgs& h);
Tensor multi_tensor_norm(const TensorList& tensors, double p, DType out_dtype);
}  // namespace cuda

}  // namespace ember::kernels
