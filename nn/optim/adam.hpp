// Adam and AdamW (torch.optim.Adam / AdamW): bias-corrected moment estimates, amsgrad, maximize, and
// L2 (Adam) or decoupled (AdamW, or Adam with decoupled_weight_decay) weight decay.
#pragma once
#include <utility>

#include "nn/optim/optimizer.hpp"

namespace ember::optim {

struct AdamOptions {
  double lr = 1e-3;
  std::pair<double, double> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0;
  bool amsgrad = false;
  bool maximize = false;
  bool decoupled_weight_decay = false;  // true: AdamW's update
  bool fused = true;  // the one-pass kernels (multi-tensor on CUDA) where they apply; false: in-place ops

  template <class F>
  void visit(F&& f) {
    f("lr", lr);
    f("betas", betas);
    f("eps", eps);
    f("weight_decay", weight_decay);
    f("amsgrad", amsgrad);
    f("maximize", maximize);
    f("decoupled_weight_decay", decoupled_weight_decay);
    f("fused", fused);
  }
};

struct AdamWOptions {
  double lr = 1e-3;
  std::pair<double, double> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool amsgrad = false;
  bool maximize = false;
  bool fused = true;

  template <class F>
  void visit(F&& f) {
    f("lr", lr);
    f("betas", betas);
    f("eps", eps);
    f("weight_decay", weight_decay);
    f("amsgrad", amsgrad);
    f("maximize", maximize);
    f("fused", fused);
  }
};

struct AdamState {
  static constexpr bool kHasStep = true;
  double step = 0;
  Tensor exp_avg, exp_avg_sq;
  Tensor max_exp_avg_sq;  // amsgrad only
  template <class F>
  void visit(F&& f) {
    f("exp_avg", exp_avg, true);
    f("exp_avg_sq", exp_avg_sq, true);
    f("max_exp_avg_sq", max_exp_avg_sq, false);
  }
};

// Adam and AdamW: one class body over their options (AdamW always decouples the weight decay).
template <class Options>
class AdamFamily : public TypedOptimizer<Options, AdamState> {
 public:
  bool has_momentum() const override { return true; }
  bool momentum_is_beta1() const override { return true; }
  std::optional<double> momentum(size_t group) const override { return this->options(group).betas.first; }
  void set_momentum(size_t group, double m) override { this->options(group).betas.first = m; }

 protected:
  AdamFamily(const char* name, std::vector<ParamGroup> groups, Options defaults);
  void validate(const Options& o, const std::string& prefix) const override;
  void step_group(size_t group) override;
};

class Adam : public AdamFamily<AdamOptions> {
 public:
  explicit Adam(std::vector<Tensor> params, AdamOptions defaults = {});
  explicit Adam(std::vector<ParamGroup> groups, AdamOptions defaults = {});
};

class AdamW : public AdamFamily<AdamWOptions> {
 public:
  explicit AdamW(std::vector<Tensor> params, AdamWOptions defaults = {});
  explicit AdamW(std::vector<ParamGroup> groups, AdamWOptions defaults = {});
};

}  // namespace ember::optim
