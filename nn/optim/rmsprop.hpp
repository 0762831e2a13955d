// RMSprop (torch.optim.RMSprop): squared-gradient running average, optionally centered, with momentum.
#pragma once
#include "nn/optim/optimizer.hpp"

namespace ember::optim {

struct RMSpropOptions {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0;
  double momentum = 0;
  bool centered = false;
  bool maximize = false;
  bool fused = true;  // the one-pass kernels (multi-tensor on CUDA) where they apply; false: in-place ops

  template <class F>
  void visit(F&& f) {
    f("lr", lr);
    f("alpha", alpha);
    f("eps", eps);
    f("weight_decay", weight_decay);
    f("momentum", momentum);
    f("centered", centered);
    f("maximize", maximize);
    f("fused", fused);
  }
};

struct RMSpropState {
  static constexpr bool kHasStep = true;
  double step = 0;
  Tensor square_avg;
  Tensor momentum_buffer;  // momentum > 0 only
  Tensor grad_avg;         // centered only
  template <class F>
  void visit(F&& f) {
    f("square_avg", square_avg, true);
    f("momentum_buffer", momentum_buffer, false);
    f("grad_avg", grad_avg, false);
  }
};

class RMSprop : public TypedOptimizer<RMSpropOptions, RMSpropState> {
 public:
  explicit RMSprop(std::vector<Tensor> params, RMSpropOptions defaults = {});
  explicit RMSprop(std::vector<ParamGroup> groups, RMSpropOptions defaults = {});

  bool has_momentum() const override { return true; }
  std::optional<double> momentum(size_t group) const override { return options(group).momentum; }
  void set_momentum(size_t group, double m) override { options(group).momentum = m; }

 protected:
  void validate(const RMSpropOptions& o, const std::string& prefix) const override;
  void step_group(size_t group) override;
};

}  // namespace ember::optim
