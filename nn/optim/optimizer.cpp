// The Optimizer base: parameter-group checks, zero_grad, step, and state_dict()/load_state_dict() in
// PyTorch's shape (parameters numbered across groups in order), with validation before any change.
#include "nn/optim/optimizer.hpp"

#include <algorithm>
#include <unordered_set>

#include "core/autograd.hpp"
#include "core/io/json_read.hpp"
#include "core/ops/creation.hpp"

namespace ember::optim {

// ---------------------------------------------------------------- StateDict
void StateDict::to_safetensors(TensorMap& tensors, Metadata& metadata, const std::string& prefix) const {
  for (const auto& [key, t] : state) tensors[prefix + key] = t;
  metadata[prefix + "param_groups"] = param_groups.dump();
}

StateDict StateDict::from_safetensors(const TensorMap& tensors, const Metadata& metadata, const std::string& prefix) {
  StateDict sd;
  const std::string key = prefix + "param_groups";
  auto it = metadata.find(key);
  EMBER_CHECK(it != metadata.end(), FormatError, "[optim] checkpoint metadata has no '", key, "' entry");
  try {
    sd.param_groups = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError("[optim] checkpoint metadata '" + key + "' is not valid JSON: " + e.what());
  }
  EMBER_CHECK(sd.param_groups.is_array(), FormatError, "[optim] checkpoint metadata '", key,
              "' must be a JSON array of parameter groups");
  const std::string state_prefix = prefix + "state.";
  for (auto t = tensors.lower_bound(state_prefix); t != tensors.end() && t->first.starts_with(state_prefix); ++t)
    sd.state[t->first.substr(prefix.size())] = t->second;
  return sd;
}

// ---------------------------------------------------------------- helpers for TypedOptimizer
namespace detail {
Tensor step_tensor(double step) { return full(Shape{}, step, TensorOptions{.dtype = kF32}); }

double step_value(const Tensor& t, const std::string& where) {
  EMBER_CHECK(t.defined() && t.numel() == 1 && t.is_floating_point(), ValueError, where,
              ": the step count must be a one-element floating tensor, got ",
              (t.defined() ? describe(t) : std::string("an undefined tensor")));
  return t.item().to_double();
}

void check_state_tensor(const Tensor& t, const Tensor& param, const std::string& where) {
  EMBER_CHECK(t.defined(), ValueError, where, " is undefined");
  EMBER_CHECK(t.shape() == param.shape(), ShapeError, where, " has shape ", t.shape(), " but its parameter has shape ",
              param.shape());
  EMBER_CHECK(t.dtype() == param.dtype(), DTypeError, where, " has dtype ", t.dtype(), " but its parameter has dtype ",
              param.dtype());
}

Tensor own_state_tensor(const Tensor& t, const Tensor& param) {
  autograd::NoGradGuard no_grad;
  Tensor c = t.to(param.device());
  return (c.impl().storage == t.impl().storage || !c.is_contiguous()) ? c.clone() : c;
}
}  // namespace detail

// ---------------------------------------------------------------- Optimizer
void Optimizer::init(std::vector<ParamGroup> groups) {
  EMBER_CHECK(!groups.empty(), ValueError, "[", name_, "] optimizer got an empty parameter list");
  for (ParamGroup& g : groups) add_param_group(std::move(g));
}

size_t Optimizer::group_index_check(size_t group) const {
  EMBER_CHECK(group < params_.size(), IndexError, "[", name_, "] param group ", group, " out of range (",
              params_.size(), " groups)");
  return group;
}

void Optimizer::add_param_group(ParamGroup group) {
  const size_t gi = params_.size();
  const std::string prefix = "[" + name_ + "] param group " + std::to_string(gi) + ": ";
  std::unordered_set<const TensorImpl*> seen;
  for (size_t i = 0; i < group.params.size(); ++i) {
    const Tensor& p = group.params[i];
    EMBER_CHECK(p.defined(), ValueError, prefix, "parameter ", i, " is undefined");
    EMBER_CHECK(p.is_floating_point(), DTypeError, prefix, "can only optimize floating-point tensors, parameter ", i,
                " is ", describe(p));
    EMBER_CHECK(p.is_leaf() || p.retains_grad(), ValueError, prefix, "can't optimize a non-leaf Tensor (parameter ", i,
                ", ", describe(p), "); optimize the leaf it was computed from, or detach().requires_grad_()");
    EMBER_CHECK(seen.insert(&p.impl()).second, ValueError, prefix, "parameter ", i, " (", describe(p),
                ") appears twice in the group");
    for (size_t g = 0; g < params_.size(); ++g)
      for (const Tensor& q : params_[g])
        EMBER_CHECK(!q.is_same(p), ValueError, prefix,
                    "some parameters appear in more than one parameter group (parameter ", i, ", ", describe(p),
                    ", is already in group ", g, ")");
  }
  push_group(group.options, group.params.size());  // parses and validates the options
  params_.push_back(std::move(group.params));
  extras_.emplace_back();
  group_added(gi);
}

const std::vector<Tensor>& Optimizer::params(size_t group) const { return params_[group_index_check(group)]; }

std::vector<Tensor> Optimizer::parameters() const {
  std::vector<Tensor> all;
  for (const auto& g : params_) all.insert(all.end(), g.begin(), g.end());
  return all;
}

void Optimizer::step() {
  autograd::NoGradGuard no_grad;
  for (size_t g = 0; g < params_.size(); ++g) step_group(g);
  ++step_count_;
}

Tensor Optimizer::step(const std::function<Tensor()>& closure) {
  Tensor loss;
  if (closure) {
    autograd::EnableGradGuard grad_on;
    loss = closure();
  }
  step();
  return loss;
}

void Optimizer::zero_grad(bool set_to_none) {
  autograd::NoGradGuard no_grad;
  for (auto& group : params_)
    for (Tensor& p : group) {
      Tensor g = p.grad();
      if (!g.defined()) continue;
      if (set_to_none) {
        p.set_grad({});
      } else {
        if (g.grad_fn()) g.detach_();
        g.zero_();
      }
    }
}

std::optional<double> Optimizer::momentum(size_t group) const {
  group_index_check(group);
  return std::nullopt;
}

void Optimizer::set_momentum(size_t group, double) {
  group_index_check(group);
  throw ValueError("[" + name_ + "] has no momentum or beta1 to set");
}

std::optional<double> Optimizer::group_value(size_t group, const std::string& key) const {
  const auto& m = extras_[group_index_check(group)];
  auto it = m.find(key);
  if (it == m.end()) return std::nullopt;
  return it->second;
}

void Optimizer::set_group_value(size_t group, const std::string& key, double value) {
  extras_[group_index_check(group)][key] = value;
}

void Optimizer::check_grad(size_t group, size_t index, const Tensor& param, const Tensor& grad) const {
  EMBER_CHECK(grad.shape() == param.shape(), ShapeError, "[", name_, "] param group ", group, ", parameter ", index,
              ": grad ", describe(grad), " doesn't match the parameter ", describe(param));
  EMBER_CHECK(grad.device() == param.device(), DeviceError, "[", name_, "] param group ", group, ", parameter ", index,
              ": grad ", describe(grad), " is not on the parameter's device (", describe(param), ")");
}

StateDict Optimizer::state_dict() const {
  StateDict sd;
  int64_t index = 0;
  for (size_t g = 0; g < params_.size(); ++g) {
    nlohmann::json group = group_options(g);
    for (const auto& [k, v] : extras_[g]) group[k] = v;
    nlohmann::json ids = nlohmann::json::array();
    for (size_t i = 0; i < params_[g].size(); ++i, ++index) {
      ids.push_back(index);
      for (auto& [name, t] : param_state(g, i)) sd.state["state." + std::to_string(index) + "." + name] = t;
    }
    group["params"] = ids;
    sd.param_groups.push_back(std::move(group));
  }
  return sd;
}

void Optimizer::load_state_dict(const StateDict& sd) {
  const std::string prefix = "[" + name_ + "] load_state_dict: ";
  const nlohmann::json& groups = sd.param_groups;
  EMBER_CHECK(groups.is_array(), ValueError, prefix, "param_groups must be a JSON array");
  EMBER_CHECK(groups.size() == params_.size(), ValueError, prefix, "loaded state dict has ", groups.size(),
              " parameter groups, the optimizer has ", params_.size());

  // Saved parameter ids -> (group, index), by position as PyTorch maps them.
  std::map<int64_t, std::pair<size_t, size_t>> where;
  for (size_t g = 0; g < params_.size(); ++g) {
    const nlohmann::json& grp = groups[g];
    EMBER_CHECK(grp.is_object() && grp.contains("params") && grp["params"].is_array(), ValueError, prefix,
                "parameter group ", g, " must be a JSON object with a \"params\" array");
    const nlohmann::json& ids = grp["params"];
    EMBER_CHECK(ids.size() == params_[g].size(), ValueError, prefix, "loaded parameter group ", g, " has ", ids.size(),
                " parameters, the optimizer's group has ", params_[g].size());
    for (size_t i = 0; i < ids.size(); ++i) {
      EMBER_CHECK(ids[i].is_number_integer(), ValueError, prefix, "parameter group ", g, ": params[", i,
                  "] is not an integer: ", ids[i].dump());
      EMBER_CHECK(where.emplace(json_int64(ids[i], "[Optimizer] a parameter id"), std::make_pair(g, i)).second,
                  ValueError, prefix, "parameter id ", ids[i].dump(), " appears twice in param_groups");
    }
    check_group_options(g, grp);
  }

  // "state.<id>.<name>" -> per-parameter entries.
  std::map<int64_t, std::map<std::string, Tensor>> entries;
  for (const auto& [key, t] : sd.state) {
    size_t dot = key.find('.', 6);
    bool ok = key.starts_with("state.") && dot != std::string::npos && dot > 6 && dot + 1 < key.size() &&
              std::all_of(key.begin() + 6, key.begin() + static_cast<std::ptrdiff_t>(dot),
                          [](char c) { return c >= '0' && c <= '9'; }) &&
              dot - 6 <= 18;
    EMBER_CHECK(ok, ValueError, prefix, "state key '", key, "' is not of the form state.<param id>.<name>");
    int64_t id = std::stoll(key.substr(6, dot - 6));
    EMBER_CHECK(where.count(id), ValueError, prefix, "state key '", key, "' names parameter ", id,
                ", which no parameter group lists");
    entries[id][key.substr(dot + 1)] = t;
  }
  for (const auto& [id, e] : entries) {
    auto [g, i] = where.at(id);
    check_param_state(g, i, e, prefix + "state." + std::to_string(id));
  }

  // Everything checked: apply.
  static const std::map<std::string, Tensor> kNone;
  for (size_t g = 0; g < params_.size(); ++g) {
    const nlohmann::json& grp = groups[g];
    set_group_options(g, grp);
    const nlohmann::json opts = group_options(g);
    extras_[g].clear();
    for (auto it = grp.begin(); it != grp.end(); ++it)
      if (it.key() != "params" && !opts.contains(it.key()) && it.value().is_number())
        extras_[g][it.key()] = it.value().get<double>();
  }
  for (const auto& [id, gi] : where) {
    auto e = entries.find(id);
    set_param_state(gi.first, gi.second, e == entries.end() ? kNone : e->second);
  }
}

}  // namespace ember::optim
