// nn::Module: registration, traversal, mode, conversion, state_dict and printing.
#include "nn/module.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <ostream>
#include <set>
#include <sstream>

#include "core/autograd.hpp"

namespace ember::nn {

namespace {

std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

std::string demangle(const char* mangled) {
  int status = 0;
  char* out = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string s = status == 0 && out ? out : mangled;
  std::free(out);
  return s;
}

// Points dst at src's data in place, so every holder of dst (optimizers, layer members) sees it.
void set_data(Tensor& dst, const Tensor& src) {
  TensorImpl& d = dst.impl();
  const TensorImpl& s = src.impl();
  d.storage = s.storage;
  d.shape = s.shape;
  d.strides = s.strides;
  d.offset = s.offset;
  d.numel = s.numel;
  d.dtype = s.dtype;
  d.view_base.reset();
}

template <class Entry>
auto find_entry(std::vector<std::pair<std::string, Entry>>& v, const std::string& name) {
  return std::find_if(v.begin(), v.end(), [&](const auto& e) { return e.first == name; });
}

}  // namespace

[[noreturn]] void throw_empty_holder(const std::string& type) {
  throw ValueError("[nn] using an empty module handle of type " + demangle(type.c_str()) +
                   " (constructed from nullptr and never assigned)");
}

std::string Module::type_name() const {
  std::string s = demangle(typeid(*this).name());
  if (auto lt = s.find('<'); lt != std::string::npos) s.resize(lt);
  if (auto colon = s.rfind("::"); colon != std::string::npos) s = s.substr(colon + 2);
  if (s.size() > 4 && s.ends_with("Impl")) s.resize(s.size() - 4);
  return s;
}

// ---------------------------------------------------------------- registration

void Module::check_new_name(const std::string& name, const char* what) const {
  EMBER_CHECK(!name.empty() && name.find('.') == std::string::npos, ValueError, "[", type_name(), ".", what,
              "] invalid name '", name, "': names are non-empty and contain no '.'");
  bool taken = std::any_of(params_.begin(), params_.end(), [&](auto& e) { return e.first == name; }) ||
               std::any_of(buffers_.begin(), buffers_.end(), [&](auto& e) { return e.first == name; }) ||
               std::any_of(children_.begin(), children_.end(), [&](auto& e) { return e.first == name; });
  EMBER_CHECK(!taken, ValueError, "[", type_name(), ".", what, "] '", name, "' is already registered");
}

Tensor& Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_new_name(name, "register_parameter");
  EMBER_CHECK(t.defined(), ValueError, "[", type_name(), ".register_parameter] '", name, "' is undefined");
  if (!t.is_leaf()) t = t.detach();
  if (t.is_floating_point()) t.requires_grad_(requires_grad);
  params_.emplace_back(name, std::move(t));
  return params_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor t, bool persistent) {
  check_new_name(name, "register_buffer");
  EMBER_CHECK(t.defined(), ValueError, "[", type_name(), ".register_buffer] '", name, "' is undefined");
  buffers_.emplace_back(name, Buffer{t.detach(), persistent});
  return buffers_.back().second.tensor;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name(name, "register_module");
  EMBER_CHECK(module != nullptr, ValueError, "[", type_name(), ".register_module] '", name, "' is empty");
  EMBER_CHECK(module.get() != this, ValueError, "[", type_name(), ".register_module] a module cannot contain itself");
  children_.emplace_back(name, std::move(module));
}

// ---------------------------------------------------------------- traversal

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  std::set<const TensorImpl*> seen;
  std::function<void(const Module&, const std::string&)> walk = [&](const Module& m, const std::string& prefix) {
    for (const auto& [n, t] : m.params_)
      if (seen.insert(&t.impl()).second) out.emplace_back(prefix + n, t);
    if (recurse)
      for (const auto& [n, c] : m.children_) walk(*c, prefix + n + ".");
  };
  walk(*this, "");
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  std::function<void(const Module&, const std::string&)> walk = [&](const Module& m, const std::string& prefix) {
    for (const auto& [n, b] : m.buffers_) out.emplace_back(prefix + n, b.tensor);
    if (recurse)
      for (const auto& [n, c] : m.children_) walk(*c, prefix + n + ".");
  };
  walk(*this, "");
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_buffers(recurse)) out.push_back(t);
  return out;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [n, c] : children_) out.push_back(c);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules(const std::string& prefix) {
  std::vector<std::pair<std::string, Module*>> out{{prefix, this}};
  for (auto& [n, c] : children_)
    for (auto& e : c->named_modules(prefix.empty() ? n : prefix + "." + n)) out.push_back(e);
  return out;
}

std::vector<Module*> Module::modules() {
  std::vector<Module*> out;
  for (auto& [n, m] : named_modules()) out.push_back(m);
  return out;
}

Module& Module::apply(const std::function<void(Module&)>& fn) {
  for (auto& [n, c] : children_) c->apply(fn);
  fn(*this);
  return *this;
}

int64_t Module::num_parameters(bool only_trainable) const {
  int64_t n = 0;
  for (const auto& p : parameters())
    if (!only_trainable || p.requires_grad()) n += p.numel();
  return n;
}

Tensor& Module::param(const std::string& name) {
  auto it = find_entry(params_, name);
  if (it == params_.end()) {
    std::vector<std::string> names;
    for (auto& [n, t] : params_) names.push_back(n);
    throw ValueError("[" + type_name() + ".param] no parameter '" + name + "' (has: " + join(names) + ")");
  }
  return it->second;
}

Tensor& Module::buffer(const std::string& name) {
  auto it = find_entry(buffers_, name);
  if (it == buffers_.end()) {
    std::vector<std::string> names;
    for (auto& [n, b] : buffers_) names.push_back(n);
    throw ValueError("[" + type_name() + ".buffer] no buffer '" + name + "' (has: " + join(names) + ")");
  }
  return it->second.tensor;
}

std::shared_ptr<Module> Module::child(const std::string& name) const {
  for (const auto& [n, c] : children_)
    if (n == name) return c;
  std::vector<std::string> names;
  for (auto& [n, c] : children_) names.push_back(n);
  throw ValueError("[" + type_name() + ".child] no submodule '" + name + "' (has: " + join(names) + ")");
}

// ---------------------------------------------------------------- mode, placement, gradients

Module& Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
  return *this;
}

void Module::convert(const std::function<Tensor(const Tensor&)>& fn) {
  autograd::NoGradGuard no_grad;
  for (auto& [n, t] : params_) {
    Tensor moved = fn(t);
    if (moved.is_same(t)) continue;
    Tensor grad = t.grad();
    t.set_grad({});
    set_data(t, moved);
    if (grad.defined()) t.set_grad(fn(grad));
  }
  for (auto& [n, b] : buffers_) {
    Tensor moved = fn(b.tensor);
    if (!moved.is_same(b.tensor)) set_data(b.tensor, moved);
  }
  for (auto& [n, c] : children_) c->convert(fn);
}

Module& Module::to(Device device) {
  convert([&](const Tensor& t) { return t.to(device); });
  return *this;
}

Module& Module::to(DType dtype) {
  EMBER_CHECK(is_floating(dtype), DTypeError, "[", type_name(), ".to] modules convert to floating dtypes only, got ",
              dtype);
  convert([&](const Tensor& t) { return t.is_floating_point() ? t.to(dtype) : t; });
  return *this;
}

Module& Module::to(Device device, DType dtype) {
  to(dtype);
  return to(device);
}

void Module::zero_grad(bool set_to_none) {
  for (auto& p : parameters()) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (set_to_none) {
      p.set_grad({});
    } else {
      autograd::NoGradGuard no_grad;
      g = g.detach();
      g.zero_();
    }
  }
}

Module& Module::requires_grad_(bool on) {
  for (auto& p : parameters())
    if (p.is_floating_point()) p.requires_grad_(on);
  return *this;
}

// ---------------------------------------------------------------- state

void Module::collect_state(const std::string& prefix, StateDict& out) const {
  for (const auto& [n, t] : params_) out.emplace(prefix + n, t.detach());
  for (const auto& [n, b] : buffers_)
    if (b.persistent) out.emplace(prefix + n, b.tensor.detach());
  for (const auto& [n, c] : children_) c->collect_state(prefix + n + ".", out);
}

StateDict Module::state_dict() const {
  StateDict out;
  collect_state("", out);
  return out;
}

LoadResult Module::load_state_dict(const StateDict& state, bool strict) {
  StateDict own = state_dict();
  LoadResult r;
  std::vector<std::string> shape_errors;
  for (const auto& [name, t] : own) {
    auto it = state.find(name);
    if (it == state.end()) {
      r.missing_keys.push_back(name);
    } else if (!it->second.defined() || it->second.shape() != t.shape()) {
      std::ostringstream os;
      os << name << ": checkpoint " << (it->second.defined() ? describe(it->second) : "undefined") << ", model "
         << describe(t);
      shape_errors.push_back(os.str());
    }
  }
  for (const auto& [name, t] : state)
    if (!own.count(name)) r.unexpected_keys.push_back(name);
  EMBER_CHECK(shape_errors.empty(), ShapeError, "[", type_name(), ".load_state_dict] size mismatch for ",
              join(shape_errors));
  if (strict && (!r.missing_keys.empty() || !r.unexpected_keys.empty()))
    throw ValueError("[" + type_name() + ".load_state_dict] missing keys: [" + join(r.missing_keys) +
                     "]; unexpected keys: [" + join(r.unexpected_keys) + "]");
  autograd::NoGradGuard no_grad;
  for (auto& [name, t] : own) {
    auto it = state.find(name);
    if (it != state.end()) t.copy_(it->second);  // t is a detached alias of the registered tensor
  }
  return r;
}

// ---------------------------------------------------------------- printing

std::string Module::str() const {
  std::ostringstream os;
  os << type_name() << "(" << extra_repr();
  if (!children_.empty()) {
    os << "\n";
    for (const auto& [n, c] : children_) {
      std::string sub = c->str(), indented;
      for (char ch : sub) indented += ch == '\n' ? std::string("\n  ") : std::string(1, ch);
      os << "  (" << n << "): " << indented << "\n";
    }
  }
  os << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Module& m) { return os << m.str(); }

}  // namespace ember::nn
