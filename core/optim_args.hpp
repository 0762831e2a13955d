// The hyperparameters of one fused optimizer step: the builders (core/ops/optim.hpp) take them from
// ember::optim and hand the same struct down to the kernels (kernels/optim.hpp), so the two layers
// share one definition instead of copying field by field.
#pragma once

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

}  // namespace ember
