// Activation checkpointing: the forward runs under no_grad and records one node holding the inputs,
// the autocast state and the generator state; its backward recomputes the block with grad on and runs
// a nested backward through the recomputed graph (the engine allows a backward inside a node's).
#include "nn/checkpoint.hpp"

#include <memory>
#include <optional>

#include "core/autocast.hpp"
#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops/random.hpp"

namespace ember::nn {
namespace {

using MultiFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

// The autocast scopes open at the forward, reopened for the recompute (the engine turns autocast off).
struct AutocastState {
  bool cpu = false, cuda = false;
  DType cpu_dtype = kBF16, cuda_dtype = kF16;
  static AutocastState capture() {
    const Device cuda_dev{Device::Kind::CUDA, 0};
    return {autocast::is_enabled(kCPU), autocast::is_enabled(cuda_dev), autocast::dtype(kCPU),
            autocast::dtype(cuda_dev)};
  }
};

std::vector<Tensor> run_checked(const MultiFn& fn, const std::vector<Tensor>& inputs) {
  std::vector<Tensor> out = fn(inputs);
  EMBER_CHECK(!out.empty(), ValueError, "[checkpoint] the function returned no tensors");
  for (size_t i = 0; i < out.size(); ++i)
    EMBER_CHECK(out[i].defined(), ValueError, "[checkpoint] the function returned an undefined tensor as output ", i,
                "; it must return defined tensors");
  return out;
}

}  // namespace

std::vector<Tensor> checkpoint(const MultiFn& fn, const std::vector<Tensor>& inputs, bool preserve_rng_state) {
  EMBER_CHECK(static_cast<bool>(fn), ValueError, "[checkpoint] the function is empty");
  for (size_t i = 0; i < inputs.size(); ++i)
    EMBER_CHECK(inputs[i].defined(), ValueError, "[checkpoint] input ", i, " is an undefined tensor");
  if (!autograd::is_grad_enabled()) return run_checked(fn, inputs);  // nothing to save or recompute

  const GeneratorState rng = default_generator().state();
  const AutocastState amp = AutocastState::capture();
  std::vector<Tensor> outputs;
  {
    autograd::NoGradGuard no_grad;
    outputs = run_checked(fn, inputs);
  }
  // Fresh handles: an output that is an input (or a view of one) must not take over its autograd link.
  for (Tensor& o : outputs) o = o.detach();

  const size_t n_in = inputs.size(), n_out = outputs.size();
  auto recompute = [fn, rng, amp, preserve_rng_state, n_in, n_out](autograd::Ctx& c) {
    std::vector<Tensor> in(n_in);
    for (size_t i = 0; i < n_in; ++i) {
      in[i] = c.saved(i).detach();
      if (c.needs_grad(i)) in[i].requires_grad_(true);
    }
    const bool create_graph = autograd::is_grad_enabled();  // the engine's mode
    std::vector<Tensor> outs;
    {
      autograd::EnableGradGuard grad_on;
      Generator& gen = default_generator();
      const GeneratorState now = gen.state();
      struct PutBack {  // the recompute must not shift the stream the rest of the program sees
        Generator& gen;
        GeneratorState state;
        bool on;
        ~PutBack() {
          if (on) gen.set_state(state);
        }
      } put_back{gen, now, preserve_rng_state};
      if (preserve_rng_state) gen.set_state(rng);
      std::optional<Autocast> cpu_amp, cuda_amp;
      if (amp.cpu) cpu_amp.emplace(kCPU, amp.cpu_dtype);
      if (amp.cuda) cuda_amp.emplace(Device{Device::Kind::CUDA, 0}, amp.cuda_dtype);
      outs = run_checked(fn, in);
    }
    EMBER_CHECK(outs.size() == n_out, AutogradError, "[checkpoint] the recompute returned ", outs.size(),
                " tensors but the forward returned ", n_out, "; the function must be deterministic in its outputs");
    std::vector<Tensor> roots, seeds;
    for (size_t i = 0; i < outs.size(); ++i) {
      if (!outs[i].requires_grad()) continue;  // an output that depends on nothing differentiable
      EMBER_CHECK(outs[i].shape() == c.grad(i).shape(), AutogradError, "[checkpoint] recomputed output ", i,
                  " has shape ", outs[i].shape(), " but the forward's had ", c.grad(i).shape());
      roots.push_back(outs[i]);
      seeds.push_back(c.grad(i));
    }
    autograd::Grads grads(n_in);
    if (roots.empty()) return grads;
    autograd::backward(roots, seeds, /*retain_graph=*/false, create_graph);
    for (size_t i = 0; i < n_in; ++i)
      if (c.needs_grad(i)) grads[i] = in[i].grad();
    return grads;
  };

  std::vector<Tensor*> outs;
  for (Tensor& o : outputs) outs.push_back(&o);
  std::vector<const Tensor*> ins;
  for (const Tensor& t : inputs) ins.push_back(&t);
  autograd::record("checkpoint", outs, ins, inputs, std::move(recompute));
  return outputs;
}

Tensor checkpoint(const std::function<Tensor(const std::vector<Tensor>&)>& fn, const std::vector<Tensor>& inputs,
                  bool preserve_rng_state) {
  EMBER_CHECK(static_cast<bool>(fn), ValueError, "[checkpoint] the function is empty");
  return checkpoint(MultiFn([fn](const std::vector<Tensor>& in) { return std::vector<Tensor>{fn(in)}; }), inputs,
                    preserve_rng_state)[0];
}

Tensor checkpoint(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x, bool preserve_rng_state) {
  EMBER_CHECK(static_cast<bool>(fn), ValueError, "[checkpoint] the function is empty");
  return checkpoint(MultiFn([fn](const std::vector<Tensor>& in) { return std::vector<Tensor>{fn(in[0])}; }), {x},
                    preserve_rng_state)[0];
}

}  // namespace ember::nn
