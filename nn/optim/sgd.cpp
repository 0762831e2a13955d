// SGD: the fused kernels (core/ops/optim.hpp; multi-tensor launches on CUDA) or PyTorch's single-tensor
// update in in-place ops.
#include "nn/optim/sgd.hpp"

#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/optim.hpp"

namespace ember::optim {

SGD::SGD(std::vector<Tensor> params, SGDOptions defaults) : TypedOptimizer("SGD", defaults) {
  EMBER_CHECK(!params.empty(), ValueError, "[SGD] optimizer got an empty parameter list");
  init({ParamGroup{.params = std::move(params)}});
}

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions defaults) : TypedOptimizer("SGD", defaults) {
  init(std::move(groups));
}

void SGD::validate(const SGDOptions& o, const std::string& prefix) const {
  EMBER_CHECK(o.lr >= 0, ValueError, prefix, "Invalid learning rate: ", o.lr);
  EMBER_CHECK(o.momentum >= 0, ValueError, prefix, "Invalid momentum value: ", o.momentum);
  EMBER_CHECK(o.weight_decay >= 0, ValueError, prefix, "Invalid weight_decay value: ", o.weight_decay);
  EMBER_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0), ValueError, prefix,
              "Nesterov momentum requires a momentum and zero dampening (momentum ", o.momentum, ", dampening ",
              o.dampening, ")");
}

void SGD::step_group(size_t group) {
  const SGDOptions& o = options_[group];
  SgdStepArgs args{.lr = o.lr,
                   .momentum = o.momentum,
                   .dampening = o.dampening,
                   .weight_decay = o.weight_decay,
                   .nesterov = o.nesterov,
                   .maximize = o.maximize,
                   .first = false};
  std::vector<detail::FusedBatch<3>> batches;  // keyed by whether the momentum buffer is new
  for (size_t i = 0; i < params_[group].size(); ++i) {
    Tensor param = params_[group][i];
    const Tensor grad = param.grad();
    if (!grad.defined()) continue;
    check_grad(group, i, param, grad);
    Tensor& buf = state_[group][i].momentum_buffer;
    const bool first = o.momentum != 0 && !buf.defined();

    if (o.fused && fused_step_supported(param, {&grad, &buf})) {
      if (first) buf = empty_like(param);
      auto& lists = detail::fused_batch(batches, param, first ? 1.0 : 0.0);
      lists[0].push_back(param);
      lists[1].push_back(grad);
      if (o.momentum != 0) lists[2].push_back(buf);
      continue;
    }
    Tensor g = o.maximize ? grad.neg() : grad;
    if (o.weight_decay != 0) g = g.add(param, o.weight_decay);
    if (o.momentum != 0) {
      if (first)
        buf = g.clone();
      else
        buf.mul_(o.momentum).add_(g, 1 - o.dampening);
      g = o.nesterov ? g.add(buf, o.momentum) : buf;
    }
    param.add_(g, -o.lr);
  }
  for (const auto& b : batches) {
    args.first = b.key != 0;
    sgd_step_multi_(b.lists[0], b.lists[1], b.lists[2], args);
  }
}

}  // namespace ember::optim
