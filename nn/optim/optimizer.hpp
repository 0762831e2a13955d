// The optimizer base class: parameter groups with per-group options, zero_grad, step under NoGradGuard,
// PyTorch-shaped state_dict()/load_state_dict(), and a uniform lr/momentum access for schedulers and
// monitors. TypedOptimizer<Options, State> implements the bookkeeping once for every concrete optimizer.
#pragma once
#include <array>
#include <cstddef>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/io/safetensors.hpp"
#include "core/tensor.hpp"

namespace ember::optim {

// Parameters with their own options: `options` holds PyTorch's keys ("lr", "momentum", "betas": [b1, b2],
// ...) for what differs from the optimizer's defaults, e.g. {.params = head, .options = {{"lr", 1e-2}}}.
struct ParamGroup {
  std::vector<Tensor> params;
  nlohmann::json options = nlohmann::json::object();
};

// An optimizer's state, shaped like PyTorch's state_dict(): per-parameter state tensors named
// "state.<index>.<name>" (parameters numbered across groups in order; "step" is a float32 scalar), and
// param_groups, a JSON array of each group's options plus "params": [its parameters' indices].
// The tensors are the optimizer's live state, as in PyTorch: clone them to keep a snapshot.
struct StateDict {
  std::map<std::string, Tensor> state;
  nlohmann::json param_groups = nlohmann::json::array();

  // Into and out of a safetensors checkpoint: each tensor under prefix + its key, param_groups as
  // JSON text in the metadata under prefix + "param_groups".
  void to_safetensors(TensorMap& tensors, Metadata& metadata, const std::string& prefix = "optimizer.") const;
  static StateDict from_safetensors(const TensorMap& tensors, const Metadata& metadata,
                                    const std::string& prefix = "optimizer.");
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Updates every parameter that has a gradient (others are skipped), under NoGradGuard.
  void step();
  // How many times step() has run (the Trainer counts manual-optimisation steps with it).
  int64_t step_count() const { return step_count_; }
  // PyTorch's step(closure): evaluates the closure with grad mode on, steps, and returns its loss.
  Tensor step(const std::function<Tensor()>& closure);
  // set_to_none drops each gradient (PyTorch's default); otherwise zeroes it in place.
  void zero_grad(bool set_to_none = true);

  // Adds a group; its options default to the optimizer's. Errors as PyTorch's: a parameter already in
  // a group, a non-leaf, bad option values (frozen parameters are
  // accepted and skipped, as PyTorch).
  void add_param_group(ParamGroup group);
  size_t num_param_groups() const { return params_.size(); }
  const std::vector<Tensor>& params(size_t group) const;
  std::vector<Tensor> parameters() const;  // every group's, in order

  // A group's learning rate and momentum (SGD's and RMSprop's momentum, beta1 of Adam and AdamW), the
  // same for every optimizer, so schedulers and monitors needn't know the concrete type.
  virtual double lr(size_t group) const = 0;
  virtual void set_lr(size_t group, double lr) = 0;
  virtual bool has_momentum() const { return false; }
  virtual bool momentum_is_beta1() const { return false; }
  virtual std::optional<double> momentum(size_t group) const;
  virtual void set_momentum(size_t group, double momentum);
  // Numbers schedulers keep per group beside the options (initial_lr, max_lr, ...), as PyTorch keeps
  // them in param_groups; they travel in state_dict().
  std::optional<double> group_value(size_t group, const std::string& key) const;
  void set_group_value(size_t group, const std::string& key, double value);
  // A group's options as JSON with PyTorch's keys, and the defaults new groups start from.
  virtual nlohmann::json group_options(size_t group) const = 0;
  virtual nlohmann::json defaults() const = 0;

  StateDict state_dict() const;
  // Validates everything first (group count, parameters per group, state names, shapes, dtypes) and
  // changes nothing on error; then takes the groups' options and copies of the state tensors.
  void load_state_dict(const StateDict& state_dict);

  const std::string& name() const { return name_; }

 protected:
  explicit Optimizer(std::string name) : name_(std::move(name)) {}
  // Called by the concrete constructor (virtual calls are live by then).
  void init(std::vector<ParamGroup> groups);
  size_t group_index_check(size_t group) const;

  // Throws when a gradient doesn't fit its parameter (shape, device).
  void check_grad(size_t group, size_t index, const Tensor& param, const Tensor& grad) const;

  // ---- what a concrete optimizer provides (TypedOptimizer does most of it)
  virtual void step_group(size_t group) = 0;
  virtual void group_added(size_t /*group*/) {}  // after add_param_group (Adagrad fills its state here)
  // Parses overrides on top of the defaults, validates, and appends a group's options and empty state.
  virtual void push_group(const nlohmann::json& overrides, size_t num_params) = 0;
  // Options from a loaded state dict (validated before anything changes).
  virtual void check_group_options(size_t group, const nlohmann::json& options) const = 0;
  virtual void set_group_options(size_t group, const nlohmann::json& options) = 0;
  // Per-parameter state: exported tensors (with "step" as a float32 scalar), and the import of one
  // parameter's entries, checked first by check_param_state (where: "[Adam] load_state_dict: state.3").
  virtual std::vector<std::pair<std::string, Tensor>> param_state(size_t group, size_t index) const = 0;
  virtual void check_param_state(size_t group, size_t index, const std::map<std::string, Tensor>& entries,
                                 const std::string& where) const = 0;
  virtual void set_param_state(size_t group, size_t index, const std::map<std::string, Tensor>& entries) = 0;

  std::string name_;
  std::vector<std::vector<Tensor>> params_;
  std::vector<std::map<std::string, double>> extras_;
  int64_t step_count_ = 0;
};

namespace detail {
// An option's value from JSON; a wrong type is a ValueError naming the option (prefix: "[SGD] param group 0: ").
template <class T>
void option_from_json(const nlohmann::json& j, T& out, const std::string& key, const std::string& prefix) {
  bool ok = true;
  if constexpr (std::is_same_v<T, bool>)
    ok = j.is_boolean();
  else if constexpr (std::is_arithmetic_v<T>)
    ok = j.is_number();
  if (ok) {
    try {
      out = j.get<T>();
      return;
    } catch (const nlohmann::json::exception&) {
    }
  }
  throw ValueError(prefix + "option '" + key + "' has the wrong type: " + j.dump());
}
Tensor step_tensor(double step);                               // PyTorch's float32 scalar
double step_value(const Tensor& t, const std::string& where);  // checked: one floating element
void check_state_tensor(const Tensor& t, const Tensor& param, const std::string& where);
Tensor own_state_tensor(const Tensor& t, const Tensor& param);  // a contiguous copy on param's device

// Parameters that take one fused step together (core/ops/optim.hpp's *_multi_): one device, dtype and
// step count (`key`: the step, or whether a momentum buffer is new); lists[k] holds operand k.
template <size_t N>
struct FusedBatch {
  Device device;
  DType dtype;
  double key;
  std::array<std::vector<Tensor>, N> lists;
};
template <size_t N>
std::array<std::vector<Tensor>, N>& fused_batch(std::vector<FusedBatch<N>>& batches, const Tensor& param, double key) {
  for (FusedBatch<N>& b : batches)
    if (b.device == param.device() && b.dtype == param.dtype() && b.key == key) return b.lists;
  batches.push_back({param.device(), param.dtype(), key, {}});
  return batches.back().lists;
}
}  // namespace detail

// Options: an aggregate with `lr` and visit(f) calling f(name, field) per option (PyTorch's names).
// State: per-parameter state with visit(f) calling f(name, tensor, required) and kHasStep (then `step`).
template <class Options, class State>
class TypedOptimizer : public Optimizer {
 public:
  // A group's options, typed (mutable: changes apply from the next step).
  Options& options(size_t group) { return options_.at(group_index_check(group)); }
  const Options& options(size_t group) const { return options_.at(group_index_check(group)); }
  const Options& default_options() const { return defaults_; }
  // A parameter's state (default-constructed until its first step).
  const State& state(size_t group, size_t index) const { return state_.at(group_index_check(group)).at(index); }

  double lr(size_t group) const override { return options(group).lr; }
  void set_lr(size_t group, double lr) override { options(group).lr = lr; }
  nlohmann::json group_options(size_t group) const override { return to_json(options(group)); }
  nlohmann::json defaults() const override { return to_json(defaults_); }

 protected:
  TypedOptimizer(std::string name, Options defaults) : Optimizer(std::move(name)), defaults_(defaults) {}
  // Throws ValueError for values PyTorch refuses; messages start with prefix ("[SGD] param group 0: ").
  virtual void validate(const Options& o, const std::string& prefix) const = 0;

  static nlohmann::json to_json(Options o) {
    nlohmann::json j = nlohmann::json::object();
    o.visit([&](const char* key, const auto& v) { j[key] = v; });
    return j;
  }
  // Options from defaults + overrides; unknown keys are errors unless lenient (a loaded state dict may
  // carry keys of other frameworks' versions); null values mean "not given".
  Options parse(const Options& base, const nlohmann::json& j, const std::string& prefix, bool lenient) const {
    EMBER_CHECK(j.is_object(), ValueError, prefix, "options must be a JSON object, got ", j.dump());
    Options o = base;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "params") continue;
      bool known = false;
      o.visit([&](const char* key, auto& v) {
        if (it.key() != key) return;
        known = true;
        if (!it.value().is_null()) detail::option_from_json(it.value(), v, key, prefix);
      });
      EMBER_CHECK(known || lenient, ValueError, prefix, "unknown option '", it.key(), "' (", name_,
                  "'s options: ", to_json(defaults_).dump(), ")");
    }
    validate(o, prefix);
    return o;
  }
  std::string group_prefix(size_t group) const { return "[" + name_ + "] param group " + std::to_string(group) + ": "; }

  void push_group(const nlohmann::json& overrides, size_t num_params) override {
    options_.push_back(parse(defaults_, overrides, group_prefix(options_.size()), false));
    state_.emplace_back(num_params);
  }
  void check_group_options(size_t group, const nlohmann::json& j) const override {
    (void)parse(options_.at(group), j, group_prefix(group), true);
  }
  void set_group_options(size_t group, const nlohmann::json& j) override {
    options_.at(group) = parse(options_.at(group), j, group_prefix(group), true);
  }

  std::vector<std::pair<std::string, Tensor>> param_state(size_t group, size_t index) const override {
    std::vector<std::pair<std::string, Tensor>> out;
    State s = state_.at(group).at(index);
    bool any = false;
    s.visit([&](const char*, Tensor& t, bool) { any = any || t.defined(); });
    if (!any) return out;
    if constexpr (State::kHasStep) out.emplace_back("step", detail::step_tensor(s.step));
    s.visit([&](const char* key, Tensor& t, bool) {
      if (t.defined()) out.emplace_back(key, t);
    });
    return out;
  }
  void check_param_state(size_t group, size_t index, const std::map<std::string, Tensor>& entries,
                         const std::string& where) const override {
    const Tensor& param = params_.at(group).at(index);
    State s;
    std::string names = State::kHasStep ? "step" : "";
    s.visit([&](const char* key, Tensor&, bool) { names += (names.empty() ? "" : ", ") + std::string(key); });
    for (const auto& entry : entries) {
      const auto& [key, t] = entry;  // named copies below: clang 14 cannot capture structured bindings
      bool known = State::kHasStep && key == "step";
      s.visit([&, &key = entry.first](const char* k, Tensor&, bool) { known = known || key == k; });
      EMBER_CHECK(known, ValueError, where, ": unknown state '", key, "' (", name_, " keeps ", names, ")");
      if (key == "step")
        (void)detail::step_value(t, where + ".step");
      else
        detail::check_state_tensor(t, param, where + "." + key);
    }
    if (entries.empty()) return;
    if constexpr (State::kHasStep) EMBER_CHECK(entries.count("step"), ValueError, where, ": state lacks 'step'");
    s.visit([&](const char* key, Tensor&, bool required) {
      EMBER_CHECK(!required || entries.count(key), ValueError, where, ": state lacks '", key, "'");
    });
  }
  void set_param_state(size_t group, size_t index, const std::map<std::string, Tensor>& entries) override {
    const Tensor& param = params_.at(group).at(index);
    State s;
    if constexpr (State::kHasStep) {
      if (auto it = entries.find("step"); it != entries.end()) s.step = detail::step_value(it->second, "step");
    }
    s.visit([&](const char* key, Tensor& t, bool) {
      if (auto it = entries.find(key); it != entries.end()) t = detail::own_state_tensor(it->second, param);
    });
    state_.at(group).at(index) = std::move(s);
  }

  Options defaults_;
  std::vector<Options> options_;
  std::vector<std::vector<State>> state_;
};

}  // namespace ember::optim
