// Adagrad (torch.optim.Adagrad): per-element learning rates from the running sum of squared gradients,
// with lr_decay. Its state exists from construction, as PyTorch's (sum = initial_accumulator_value).
#pragma once
#include "nn/optim/optimizer.hpp"

namespace ember::optim {

struct AdagradOptions {
  double lr = 1e-2;
  double lr_decay = 0;
  double weight_decay = 0;
  double initial_accumulator_value = 0;
  double eps = 1e-10;
  bool maximize = false;
  bool fused = true;  // the one-pass kernels (multi-tensor on CUDA) where they apply; false: in-place ops

  template <class F>
  void visit(F&& f) {
    f("lr", lr);
    f("lr_decay", lr_decay);
    f("weight_decay", weight_decay);
    f("initial_accumulator_value", initial_accumulator_value);
    f("eps", eps);
    f("maximize", maximize);
    f("fused", fused);
  }
};

struct AdagradState {
  static constexpr bool kHasStep = true;
  double step = 0;
  Tensor sum;
  template <class F>
  void visit(F&& f) {
    f("sum", sum, true);
  }
};

class Adagrad : public TypedOptimizer<AdagradOptions, AdagradState> {
 public:
  explicit Adagrad(std::vector<Tensor> params, AdagradOptions defaults = {});
  explicit Adagrad(std::vector<ParamGroup> groups, AdagradOptions defaults = {});

 protected:
  void validate(const AdagradOptions& o, const std::string& prefix) const override;
  void step_group(size_t group) override;
  void group_added(size_t group) override;
};

}  // namespace ember::optim
