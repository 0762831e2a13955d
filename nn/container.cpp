// Containers: Sequential's chain and indexed access for the lists.
#include "nn/container.hpp"

namespace ember::nn {

Tensor SequentialImpl::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& call : calls_) y = call(y);
  return y;
}

std::shared_ptr<Module> SequentialImpl::operator[](size_t i) const {
  EMBER_CHECK(i < calls_.size(), IndexError, "[nn.Sequential] index ", i, " out of range for ", calls_.size(),
              " modules");
  return named_children()[i].second;
}

void SequentialImpl::throw_wrong_type(size_t i) const {
  throw ValueError("[nn.Sequential] module " + std::to_string(i) + " is a " + (*this)[i]->type_name());
}

std::shared_ptr<Module> ModuleListImpl::operator[](size_t i) const {
  EMBER_CHECK(i < items_.size(), IndexError, "[nn.ModuleList] index ", i, " out of range for ", items_.size(),
              " modules");
  return items_[i];
}

bool ModuleDictImpl::contains(const std::string& name) const {
  for (const auto& [n, c] : named_children())
    if (n == name) return true;
  return false;
}

}  // namespace ember::nn
