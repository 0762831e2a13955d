// Activation checkpointing (torch.utils.checkpoint): run a block without keeping its intermediate
// activations and recompute them during backward, trading compute for memory.
#pragma once
#include <functional>
#include <vector>

#include "core/tensor.hpp"

namespace ember::nn {

// Runs fn(inputs) under no_grad and records one node that saves only the inputs. Its backward
// re-runs fn with grad on (same autocast state, same random stream: dropout masks repeat) and
// backpropagates through the recomputed graph, so parameters fn reaches (closures included) get
// exactly the gradients a plain run gives. Under no_grad it simply calls fn. Outputs of a checkpoint
// made with grad mode on always require grad (what fn reaches is unknown until the recompute).
std::vector<Tensor> checkpoint(const std::function<std::vector<Tensor>(const std::vector<Tensor>&)>& fn,
                               const std::vector<Tensor>& inputs, bool preserve_rng_state = true);
// Several inputs, one output.
Tensor checkpoint(const std::function<Tensor(const std::vector<Tensor>&)>& fn, const std::vector<Tensor>& inputs,
                  bool preserve_rng_state = true);
// One input, one output: `x = nn::checkpoint([&](const Tensor& t) { return block(t); }, x);` (a module
// handle goes through a lambda like this one).
Tensor checkpoint(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x, bool preserve_rng_state = true);

}  // namespace ember::nn
