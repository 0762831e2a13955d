// Containers: Sequential (chains one-tensor modules), ModuleList and ModuleDict (hold submodules under
// "0", "1", ... or given names, so state_dict keys match PyTorch's).
#pragma once
#include <functional>

#include "nn/module.hpp"

namespace ember::nn {

class SequentialImpl : public Module {
 public:
  SequentialImpl() = default;
  template <class... M>
  requires(sizeof...(M) > 0) explicit SequentialImpl(M&&... modules) { (push_back(std::forward<M>(modules)), ...); }

  // A handle (nn::Linear(...)) or a shared_ptr to a layer whose forward maps one tensor to one tensor.
  template <class H>
  requires UnaryModule<typename std::decay_t<H>::ImplType>
  void push_back(H&& holder) { push_back(holder.ptr()); }
  template <UnaryModule M>
  void push_back(std::shared_ptr<M> module) {
    M* raw = module.get();
    calls_.push_back([raw](const Tensor& x) {
      const FlopScope scope(static_cast<const Module*>(raw));  // per-layer FLOPs, as a handle's call
      return raw->forward(x);
    });
    register_module(std::to_string(calls_.size() - 1), std::move(module));
  }

  Tensor forward(const Tensor& x);
  size_t size() const { return calls_.size(); }
  std::shared_ptr<Module> operator[](size_t i) const;
  // The i-th module as its concrete type (throws when it is another type).
  template <class M>
  std::shared_ptr<M> at(size_t i) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[i]);
    if (!m) throw_wrong_type(i);
    return m;
  }

 private:
  [[noreturn]] void throw_wrong_type(size_t i) const;
  std::vector<std::function<Tensor(const Tensor&)>> calls_;
};
EMBER_MODULE(Sequential);

class ModuleListImpl : public Module {
 public:
  ModuleListImpl() = default;
  template <class... M>
  requires(sizeof...(M) > 0) explicit ModuleListImpl(M&&... modules) { (push_back(std::forward<M>(modules)), ...); }
  template <class H>
  requires requires(const H& h) { h.ptr(); }
  void push_back(const H& holder) { push_back(holder.ptr()); }
  template <class M>
  void push_back(std::shared_ptr<M> module) {
    items_.push_back(module);
    register_module(std::to_string(items_.size() - 1), std::move(module));
  }
  size_t size() const { return items_.size(); }
  std::shared_ptr<Module> operator[](size_t i) const;
  template <class M>
  std::shared_ptr<M> at(size_t i) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[i]);
    if (!m) throw ValueError("[nn.ModuleList] item " + std::to_string(i) + " is a " + (*this)[i]->type_name());
    return m;
  }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::vector<std::shared_ptr<Module>> items_;
};
EMBER_MODULE(ModuleList);

class ModuleDictImpl : public Module {
 public:
  template <class H>
  requires requires(const H& h) { h.ptr(); }
  void insert(const std::string& name, const H& holder) { register_module(name, holder.ptr()); }
  template <class M>
  void insert(const std::string& name, std::shared_ptr<M> module) {
    register_module(name, std::move(module));
  }
  bool contains(const std::string& name) const;
  size_t size() const { return named_children().size(); }
  std::shared_ptr<Module> operator[](const std::string& name) const { return child(name); }
  template <class M>
  std::shared_ptr<M> at(const std::string& name) const {
    auto m = std::dynamic_pointer_cast<M>(child(name));
    if (!m) throw ValueError("[nn.ModuleDict] '" + name + "' is a " + child(name)->type_name());
    return m;
  }
};
EMBER_MODULE(ModuleDict);

}  // namespace ember::nn
