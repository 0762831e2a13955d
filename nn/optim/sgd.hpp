// SGD with momentum, dampening, Nesterov momentum, weight decay and maximize (torch.optim.SGD).
#pragma once
#include "nn/optim/optimizer.hpp"

namespace ember::optim {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
  bool maximize = false;
  bool fused = true;  // the one-pass kernels (multi-tensor on CUDA) where they apply; false: in-place ops

  template <class F>
  void visit(F&& f) {
    f("lr", lr);
    f("momentum", momentum);
    f("dampening", dampening);
    f("weight_decay", weight_decay);
    f("nesterov", nesterov);
    f("maximize", maximize);
    f("fused", fused);
  }
};

struct SGDState {
  static constexpr bool kHasStep = false;
  Tensor momentum_buffer;  // after the first step with momentum
  template <class F>
  void visit(F&& f) {
    f("momentum_buffer", momentum_buffer, true);
  }
};

class SGD : public TypedOptimizer<SGDOptions, SGDState> {
 public:
  explicit SGD(std::vector<Tensor> params, SGDOptions defaults = {});
  explicit SGD(std::vector<ParamGroup> groups, SGDOptions defaults = {});

  bool has_momentum() const override { return true; }
  std::optional<double> momentum(size_t group) const override { return options(group).momentum; }
  void set_momentum(size_t group, double m) override { options(group).momentum = m; }

 protected:
  void validate(const SGDOptions& o, const std::string& prefix) const override;
  void step_group(size_t group) override;
};

}  // namespace ember::optim
