// ember::optim: optimizers (SGD, Adam, AdamW, RMSprop, Adagrad), learning-rate schedulers, and gradient
// clipping (ember::nn::clip_grad_norm_ / clip_grad_value_, beside them as in torch.nn.utils).
#pragma once
#include "core/ops/optim.hpp"
#include "nn/clip_grad.hpp"
#include "nn/optim/adagrad.hpp"
#include "nn/optim/adam.hpp"
#include "nn/optim/lr_scheduler.hpp"
#include "nn/optim/optimizer.hpp"
#include "nn/optim/rmsprop.hpp"
#include "nn/optim/sgd.hpp"
