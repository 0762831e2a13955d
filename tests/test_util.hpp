// Shared helpers for the doctest suites: closeness checks and fixture loading.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "ember.hpp"

namespace ember::testing {

// Elementwise |a - b| <= atol + rtol * |b| with equal shapes; NaNs must match. Reports the worst element.
inline bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8) {
  if (a.shape() != b.shape()) {
    MESSAGE("shape mismatch: " << a.shape() << " vs " << b.shape());
    return false;
  }
  auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  for (size_t i = 0; i < va.size(); ++i) {
    bool ok = (std::isnan(va[i]) && std::isnan(vb[i])) || va[i] == vb[i] ||
              std::abs(va[i] - vb[i]) <= atol + rtol * std::abs(vb[i]);
    if (!ok) {
      MESSAGE("element " << i << ": " << va[i] << " vs " << vb[i]);
      return false;
    }
  }
  return true;
}

inline bool equal(const Tensor& a, const Tensor& b) { return allclose(a, b, 0, 0); }

inline TensorMap fixtures(const std::string& family) {
  return load(std::string(EMBER_TEST_DIR) + "/reference/" + family + ".safetensors");
}

}  // namespace ember::testing
