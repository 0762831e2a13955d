// RMSprop: the fused kernels (core/ops/optim.hpp; multi-tensor launches on CUDA) or PyTorch's
// single-tensor update in in-place ops.
#include "nn/optim/rmsprop.hpp"

#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/optim.hpp"

namespace ember::optim {

RMSprop::RMSprop(std::vector<Tensor> params, RMSpropOptions defaults) : TypedOptimizer("RMSprop", defaults) {
  EMBER_CHECK(!params.empty(), ValueError, "[RMSprop] optimizer got an empty parameter list");
  init({ParamGroup{.params = std::move(params)}});
}

RMSprop::RMSprop(std::vector<ParamGroup> groups, RMSpropOptions defaults) : TypedOptimizer("RMSprop", defaults) {
  init(std::move(groups));
}

void RMSprop::validate(const RMSpropOptions& o, const std::string& prefix) const {
  EMBER_CHECK(o.lr >= 0, ValueError, prefix, "Invalid learning rate: ", o.lr);
  EMBER_CHECK(o.eps >= 0, ValueError, prefix, "Invalid epsilon value: ", o.eps);
  EMBER_CHECK(o.momentum >= 0, ValueError, prefix, "Invalid momentum value: ", o.momentum);
  EMBER_CHECK(o.weight_decay >= 0, ValueError, prefix, "Invalid weight_decay value: ", o.weight_decay);
  EMBER_CHECK(o.alpha >= 0, ValueError, prefix, "Invalid alpha value: ", o.alpha);
}

void RMSprop::step_group(size_t group) {
  const RMSpropOptions& o = options_[group];
  std::vector<detail::FusedBatch<5>> batches;
  for (size_t i = 0; i < params_[group].size(); ++i) {
    Tensor param = params_[group][i];
    const Tensor grad = param.grad();
    if (!grad.defined()) continue;
    check_grad(group, i, param, grad);
    RMSpropState& s = state_[group][i];
    if (!s.square_avg.defined()) s.square_avg = zeros_like(param);
    if (o.momentum > 0 && !s.momentum_buffer.defined()) s.momentum_buffer = zeros_like(param);
    if (o.centered && !s.grad_avg.defined()) s.grad_avg = zeros_like(param);
    s.step += 1;
    const Tensor& buf = o.momentum > 0 ? s.momentum_buffer : Tensor();
    const Tensor& grad_avg = o.centered ? s.grad_avg : Tensor();

    if (o.fused && fused_step_supported(param, {&grad, &s.square_avg, &grad_avg, &buf})) {
      auto& lists = detail::fused_batch(batches, param, 0.0);
      lists[0].push_back(param);
      lists[1].push_back(grad);
      lists[2].push_back(s.square_avg);
      if (o.centered) lists[3].push_back(s.grad_avg);
      if (o.momentum > 0) lists[4].push_back(s.momentum_buffer);
      continue;
    }
    Tensor g = o.maximize ? grad.neg() : grad;
    if (o.weight_decay != 0) g = g.add(param, o.weight_decay);
    s.square_avg.mul_(o.alpha).addcmul_(g, g, 1 - o.alpha);
    Tensor avg;
    if (o.centered) {
      s.grad_avg.lerp_(g, 1 - o.alpha);
      avg = addcmul(s.square_avg, s.grad_avg, s.grad_avg, -1).sqrt_();
    } else {
      avg = s.square_avg.sqrt();
    }
    avg.add_(o.eps);
    if (o.momentum > 0) {
      s.momentum_buffer.mul_(o.momentum).addcdiv_(g, avg);
      param.add_(s.momentum_buffer, -o.lr);
    } else {
      param.addcdiv_(g, avg, -o.lr);
    }
  }
  for (const auto& b : batches)
    rmsprop_step_multi_(b.lists[0], b.lists[1], b.lists[2], b.lists[3], b.lists[4],
                        {.lr = o.lr,
                         .alpha = o.alpha,
                         .eps = o.eps,
                         .weight_decay = o.weight_decay,
                         .momentum = o.momentum,
                         .centered = o.centered,
                         .maximize = o.maximize});
}

}  // namespace ember::optim
