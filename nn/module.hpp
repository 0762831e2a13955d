// nn::Module: the base of every layer and model (named parameters, buffers and children with
// PyTorch's dotted names, train/eval, to(), state_dict), and ModuleHolder, the shared handle layers are
// used through (`nn::Linear fc(4, 2);` holds a shared LinearImpl; copying the handle shares the layer).
#pragma once
#include <concepts>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/flop_counter.hpp"
#include "core/tensor.hpp"

namespace ember::nn {

using StateDict = std::map<std::string, Tensor>;

// What load_state_dict found besides the keys it loaded (strict loading raises instead).
struct LoadResult {
  std::vector<std::string> missing_keys;
  std::vector<std::string> unexpected_keys;
};

// Modules are not copyable: a model is one object, shared through handles (ModuleHolder) or
// shared_ptr. Parameters and buffers are Tensor handles: the member a layer keeps (`weight`) and the
// registered entry are the same tensor, and to()/load_state_dict() change them in place.
class Module {
 public:
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  virtual ~Module() = default;

  // The class name shown by printing and summaries ("Linear"); defaults to the C++ type without "Impl".
  virtual std::string type_name() const;
  // The layer's own arguments for printing, e.g. "in_features=4, out_features=2, bias=true".
  virtual std::string extra_repr() const { return {}; }

  // ---- registration (names must be non-empty, without '.', and unique within this module) ----
  // Makes t a leaf that requires grad (when floating and requires_grad) and returns it.
  Tensor& register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  // Non-persistent buffers are moved by to() but left out of state_dict().
  Tensor& register_buffer(const std::string& name, Tensor t, bool persistent = true);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }
  // For handles (ModuleHolder): registers the shared layer and returns the handle.
  template <class H>
  requires requires(const H& h) { h.ptr(); }
  H register_module(const std::string& name, H holder) {
    add_child(name, holder.ptr());
    return holder;
  }

  // ---- traversal (depth first in registration order; shared parameters listed once) ----
  std::vector<Tensor> parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_parameters(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_buffers(bool recurse = true) const;
  std::vector<std::shared_ptr<Module>> children() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }
  // This module first, then every descendant (non-owning pointers, valid while this module lives).
  std::vector<Module*> modules();
  std::vector<std::pair<std::string, Module*>> named_modules(const std::string& prefix = "");
  // Calls fn on every descendant, then on this module (PyTorch's order).
  Module& apply(const std::function<void(Module&)>& fn);
  int64_t num_parameters(bool only_trainable = false) const;

  // ---- mode, placement, gradients ----
  virtual Module& train(bool on = true);
  Module& eval() { return train(false); }
  bool is_training() const { return training_; }
  // Converts parameters and buffers in place (the tensors keep their identity, so optimizers built
  // earlier stay valid); a dtype applies to floating tensors only, as in PyTorch.
  Module& to(Device device);
  Module& to(DType dtype);
  Module& to(Device device, DType dtype);
  void zero_grad(bool set_to_none = true);
  Module& requires_grad_(bool on = true);

  // ---- state ----
  // Parameters and persistent buffers under dotted names ("net.0.weight"), detached, sharing storage.
  StateDict state_dict() const;
  // Copies values in (dtype converted, device kept). Shape mismatches always raise; missing or
  // unexpected keys raise when strict and are returned otherwise.
  LoadResult load_state_dict(const StateDict& state, bool strict = true);

  // Direct lookup by local name (throws ValueError naming the module and the known names).
  Tensor& param(const std::string& name);
  Tensor& buffer(const std::string& name);
  std::shared_ptr<Module> child(const std::string& name) const;

  // The PyTorch-style tree: "Sequential(\n  (0): Linear(in_features=4, ...)\n)".
  std::string str() const;

 protected:
  bool training_ = true;

 private:
  struct Buffer {
    Tensor tensor;
    bool persistent = true;
  };
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  void check_new_name(const std::string& name, const char* what) const;
  void convert(const std::function<Tensor(const Tensor&)>& fn);
  void collect_state(const std::string& prefix, StateDict& out) const;

  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, Buffer>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

std::ostream& operator<<(std::ostream& os, const Module& m);

// A shared handle to a layer: nn::Linear(4, 2) constructs a LinearImpl(4, 2) and holds it; copies
// share it; h(x) calls forward; h->weight reaches members. nn::Linear(nullptr) is an empty handle.
template <class Impl>
class ModuleHolder {
 public:
  using ImplType = Impl;
  template <class... Args>
  requires std::constructible_from<Impl, Args...> &&
      (sizeof...(Args) != 1 || !(std::derived_from<std::decay_t<Args>, ModuleHolder> && ...))
          ModuleHolder(Args&&... args)
      : impl_(std::make_shared<Impl>(std::forward<Args>(args)...)) {}
  ModuleHolder(std::nullptr_t) {}
  ModuleHolder(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

  template <class... Args>
  decltype(auto) operator()(Args&&... args) const {
    Impl& m = get();
    const FlopScope scope(static_cast<const Module*>(&m));  // a FlopCounter attributes FLOPs to the layer
    return m.forward(std::forward<Args>(args)...);
  }
  Impl* operator->() const { return &get(); }
  Impl& operator*() const { return get(); }
  const std::shared_ptr<Impl>& ptr() const { return impl_; }
  bool is_empty() const { return impl_ == nullptr; }
  explicit operator bool() const { return impl_ != nullptr; }

 private:
  Impl& get() const;
  std::shared_ptr<Impl> impl_;
};

[[noreturn]] void throw_empty_holder(const std::string& type);

template <class Impl>
Impl& ModuleHolder<Impl>::get() const {
  if (!impl_) throw_empty_holder(typeid(Impl).name());
  return *impl_;
}

// Declares the handle `Name` for the layer class `NameImpl`. Layers whose constructors take braced
// arguments (options, {h, w} pairs) spell out their handle's constructor instead, because a forwarding
// template cannot deduce a braced list: `nn::Conv2d(3, 8, 3, {.padding = 1})`.
#define EMBER_MODULE(Name)                                     \
  class Name : public ::ember::nn::ModuleHolder<Name##Impl> {  \
   public:                                                     \
    using ::ember::nn::ModuleHolder<Name##Impl>::ModuleHolder; \
  }

// Layers Sequential can chain: a module whose forward takes one tensor and returns one.
template <class M>
concept UnaryModule = std::derived_from<M, Module> && requires(M& m, const Tensor& x) {
  { m.forward(x) } -> std::convertible_to<Tensor>;
};

}  // namespace ember::nn
