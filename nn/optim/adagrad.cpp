// Adagrad: the fused kernels (core/ops/optim.hpp; multi-tensor launches on CUDA) or PyTorch's
// single-tensor update in in-place ops.
#include "nn/optim/adagrad.hpp"

#include <cmath>

#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/optim.hpp"

namespace ember::optim {

Adagrad::Adagrad(std::vector<Tensor> params, AdagradOptions defaults) : TypedOptimizer("Adagrad", defaults) {
  EMBER_CHECK(!params.empty(), ValueError, "[Adagrad] optimizer got an empty parameter list");
  init({ParamGroup{.params = std::move(params)}});
}

Adagrad::Adagrad(std::vector<ParamGroup> groups, AdagradOptions defaults) : TypedOptimizer("Adagrad", defaults) {
  init(std::move(groups));
}

void Adagrad::validate(const AdagradOptions& o, const std::string& prefix) const {
  EMBER_CHECK(o.lr >= 0, ValueError, prefix, "Invalid learning rate: ", o.lr);
  EMBER_CHECK(o.lr_decay >= 0, ValueError, prefix, "Invalid lr_decay value: ", o.lr_decay);
  EMBER_CHECK(o.weight_decay >= 0, ValueError, prefix, "Invalid weight_decay value: ", o.weight_decay);
  EMBER_CHECK(o.initial_accumulator_value >= 0, ValueError, prefix,
              "Invalid initial_accumulator_value value: ", o.initial_accumulator_value);
  EMBER_CHECK(o.eps >= 0, ValueError, prefix, "Invalid epsilon value: ", o.eps);
}

void Adagrad::group_added(size_t group) {
  for (size_t i = 0; i < params_[group].size(); ++i) {
    AdagradState& s = state_[group][i];
    s.step = 0;
    s.sum = full_like(params_[group][i], options_[group].initial_accumulator_value);
  }
}

void Adagrad::step_group(size_t group) {
  const AdagradOptions& o = options_[group];
  std::vector<detail::FusedBatch<3>> batches;  // keyed by the step count (the decayed lr)
  for (size_t i = 0; i < params_[group].size(); ++i) {
    Tensor param = params_[group][i];
    const Tensor grad = param.grad();
    if (!grad.defined()) continue;
    check_grad(group, i, param, grad);
    AdagradState& s = state_[group][i];
    if (!s.sum.defined()) s.sum = full_like(param, o.initial_accumulator_value);
    s.step += 1;

    if (o.fused && fused_step_supported(param, {&grad, &s.sum})) {
      auto& lists = detail::fused_batch(batches, param, s.step);
      lists[0].push_back(param);
      lists[1].push_back(grad);
      lists[2].push_back(s.sum);
      continue;
    }
    Tensor g = o.maximize ? grad.neg() : grad;
    if (o.weight_decay != 0) g = g.add(param, o.weight_decay);
    const double clr = o.lr / (1 + (s.step - 1) * o.lr_decay);
    s.sum.addcmul_(g, g, 1);
    Tensor std = s.sum.sqrt();
    std.add_(o.eps);
    param.addcdiv_(g, std, -clr);
  }
  for (const auto& b : batches)
    adagrad_step_multi_(b.lists[0], b.lists[1], b.lists[2],
                        {.lr = o.lr,
                         .lr_decay = o.lr_decay,
                         .weight_decay = o.weight_decay,
                         .eps = o.eps,
                         .maximize = o.maximize,
                         .step = b.key});
}

}  // namespace ember::optim
