// Autograd metadata carried by a tensor. The tape engine (nodes, backward, hooks) builds on this.
#pragma once
#include "core/tensor.hpp"

namespace ember {

struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;
};

}  // namespace ember
