// Adam and AdamW share one update: the fused kernels (core/ops/optim.hpp; multi-tensor launches on CUDA,
// parameters batched by step count) or PyTorch's single-tensor form in in-place ops.
#include "nn/optim/adam.hpp"

#include <cmath>

#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/optim.hpp"

namespace ember::optim {
namespace {

template <class O>
void validate_adam(const O& o, const std::string& prefix) {
  EMBER_CHECK(o.lr >= 0, ValueError, prefix, "Invalid learning rate: ", o.lr);
  EMBER_CHECK(o.eps >= 0, ValueError, prefix, "Invalid epsilon value: ", o.eps);
  EMBER_CHECK(o.betas.first >= 0 && o.betas.first < 1, ValueError, prefix,
              "Invalid beta parameter at index 0: ", o.betas.first);
  EMBER_CHECK(o.betas.second >= 0 && o.betas.second < 1, ValueError, prefix,
              "Invalid beta parameter at index 1: ", o.betas.second);
  EMBER_CHECK(o.weight_decay >= 0, ValueError, prefix, "Invalid weight_decay value: ", o.weight_decay);
}

// The state a step needs, made on first use; counts the step.
void adam_prepare(const Tensor& param, AdamState& s, bool amsgrad) {
  if (!s.exp_avg.defined()) {
    s.exp_avg = zeros_like(param);
    s.exp_avg_sq = zeros_like(param);
  }
  if (amsgrad && !s.max_exp_avg_sq.defined()) s.max_exp_avg_sq = zeros_like(param);
  s.step += 1;
}

// PyTorch's single-tensor form in in-place ops (where the fused kernels don't apply).
void adam_composite(Tensor param, const Tensor& grad, AdamState& s, const AdamStepArgs& a) {
  Tensor g = a.maximize ? grad.neg() : grad;
  if (a.weight_decay != 0) {
    if (a.decoupled)
      param.mul_(1 - a.lr * a.weight_decay);
    else
      g = g.add(param, a.weight_decay);
  }
  s.exp_avg.lerp_(g, 1 - a.beta1);
  s.exp_avg_sq.mul_(a.beta2).addcmul_(g, g, 1 - a.beta2);
  const double bias_correction1 = 1 - std::pow(a.beta1, s.step);
  const double bias_correction2 = 1 - std::pow(a.beta2, s.step);
  const double step_size = a.lr / bias_correction1;
  const double bias_correction2_sqrt = std::pow(bias_correction2, 0.5);
  Tensor denom;
  if (a.amsgrad) {
    s.max_exp_avg_sq.copy_(maximum(s.max_exp_avg_sq, s.exp_avg_sq));
    denom = s.max_exp_avg_sq.sqrt() / bias_correction2_sqrt;
  } else {
    denom = s.exp_avg_sq.sqrt() / bias_correction2_sqrt;
  }
  denom.add_(a.eps);
  param.addcdiv_(s.exp_avg, denom, -step_size);
}

template <class O>
AdamStepArgs adam_args(const O& o, bool decoupled) {
  return {.lr = o.lr,
          .beta1 = o.betas.first,
          .beta2 = o.betas.second,
          .eps = o.eps,
          .weight_decay = o.weight_decay,
          .decoupled = decoupled,
          .amsgrad = o.amsgrad,
          .maximize = o.maximize,
          .step = 0};
}

}  // namespace

template <class Options>
AdamFamily<Options>::AdamFamily(const char* name, std::vector<ParamGroup> groups, Options defaults)
    : TypedOptimizer<Options, AdamState>(name, defaults) {
  this->init(std::move(groups));
}

template <class Options>
void AdamFamily<Options>::validate(const Options& o, const std::string& prefix) const {
  validate_adam(o, prefix);
}

template <class Options>
void AdamFamily<Options>::step_group(size_t group) {
  const Options& o = this->options_[group];
  bool decoupled = true;
  if constexpr (std::is_same_v<Options, AdamOptions>) decoupled = o.decoupled_weight_decay;
  AdamStepArgs args = adam_args(o, decoupled);
  std::vector<detail::FusedBatch<5>> batches;  // keyed by the step count (the bias corrections)
  for (size_t i = 0; i < this->params_[group].size(); ++i) {
    const Tensor& param = this->params_[group][i];
    const Tensor grad = param.grad();
    if (!grad.defined()) continue;
    this->check_grad(group, i, param, grad);
    AdamState& s = this->state_[group][i];
    adam_prepare(param, s, args.amsgrad);
    const Tensor& vmax = args.amsgrad ? s.max_exp_avg_sq : Tensor();
    if (o.fused && fused_step_supported(param, {&grad, &s.exp_avg, &s.exp_avg_sq, &vmax})) {
      auto& lists = detail::fused_batch(batches, param, s.step);
      lists[0].push_back(param);
      lists[1].push_back(grad);
      lists[2].push_back(s.exp_avg);
      lists[3].push_back(s.exp_avg_sq);
      if (args.amsgrad) lists[4].push_back(s.max_exp_avg_sq);
      continue;
    }
    AdamStepArgs a = args;
    a.step = s.step;
    adam_composite(param, grad, s, a);
  }
  for (const auto& b : batches) {
    args.step = b.key;
    adam_step_multi_(b.lists[0], b.lists[1], b.lists[2], b.lists[3], b.lists[4], args);
  }
}

template class AdamFamily<AdamOptions>;
template class AdamFamily<AdamWOptions>;

namespace {
// An empty parameter list is an error; an empty list of groups is not (groups may be added later).
std::vector<ParamGroup> one_group(std::vector<Tensor> params, const char* name) {
  EMBER_CHECK(!params.empty(), ValueError, "[", name, "] optimizer got an empty parameter list");
  return {ParamGroup{.params = std::move(params)}};
}
}  // namespace

Adam::Adam(std::vector<Tensor> params, AdamOptions defaults)
    : AdamFamily("Adam", one_group(std::move(params), "Adam"), defaults) {}
Adam::Adam(std::vector<ParamGroup> groups, AdamOptions defaults) : AdamFamily("Adam", std::move(groups), defaults) {}
AdamW::AdamW(std::vector<Tensor> params, AdamWOptions defaults)
    : AdamFamily("AdamW", one_group(std::move(params), "AdamW"), defaults) {}
AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions defaults)
    : AdamFamily("AdamW", std::move(groups), defaults) {}

}  // namespace ember::optim
