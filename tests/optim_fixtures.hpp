// Shared piece of the optimizer tests (test_optim.cpp, test_optim_device.cpp): an optimizer built from
// the name the reference fixtures use.
#pragma once
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "ember.hpp"

namespace optim_test {

using namespace ember;

// "SGD", "Adam", "AdamW", "RMSprop" or "Adagrad" over the groups (each with its own options).
inline std::shared_ptr<optim::Optimizer> optimizer_by_name(const std::string& type,
                                                           std::vector<optim::ParamGroup> groups) {
  if (type == "SGD") return std::make_shared<optim::SGD>(std::move(groups));
  if (type == "Adam") return std::make_shared<optim::Adam>(std::move(groups));
  if (type == "AdamW") return std::make_shared<optim::AdamW>(std::move(groups));
  if (type == "RMSprop") return std::make_shared<optim::RMSprop>(std::move(groups));
  if (type == "Adagrad") return std::make_shared<optim::Adagrad>(std::move(groups));
  FAIL("unknown optimizer ", type);
  return nullptr;
}

}  // namespace optim_test
