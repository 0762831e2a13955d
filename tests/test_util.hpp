// Shared helpers for the doctest suites: closeness checks, error messages, fixture loading and checking,
// a dead process's id.
#pragma once
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "ember.hpp"
#include "test_dir.hpp"

namespace ember::testing {

// Test cases that skipped their CUDA part (reported at the end of the run by test_main.cpp).
inline std::atomic<int>& cuda_skips() {
  static std::atomic<int> n{0};
  return n;
}

inline std::string cuda_skip_reason() {
#ifndef EMBER_CUDA
  return "built without CUDA support (-Dcuda=disabled or nvcc not found)";
#else
  return "no CUDA device or driver on this machine";
#endif
}

// Returns from a test case that needs a CUDA device, printing why, when there is none.
// tools/gpu_check.sh sets EMBER_REQUIRE_CUDA=1: there, a missing device is a failure, not a skip.
#define CUDA_OR_SKIP()                                                               \
  do {                                                                               \
    if (!::ember::cuda_is_available()) {                                             \
      if (std::getenv("EMBER_REQUIRE_CUDA"))                                         \
        FAIL("EMBER_REQUIRE_CUDA is set: " << ::ember::testing::cuda_skip_reason()); \
      MESSAGE("CUDA tests skipped: " << ::ember::testing::cuda_skip_reason());       \
      ++::ember::testing::cuda_skips();                                              \
      return;                                                                        \
    }                                                                                \
  } while (0)

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

// A row-major copy of a tensor's values, addressed by multi-index: the independent reference.
struct Ref {
  Shape shape;
  std::vector<double> v;
  explicit Ref(const Tensor& t) : shape(t.shape()), v(t.to_vector<double>()) {}
  Ref(const Shape& s, double fill) : shape(s), v(static_cast<size_t>(shape_numel(s)), fill) {}
  size_t flat(const Shape& idx) const {
    int64_t f = 0;
    for (size_t d = 0; d < shape.size(); ++d) f = f * shape[d] + idx[d];
    return static_cast<size_t>(f);
  }
  double& operator[](const Shape& idx) { return v[flat(idx)]; }
  double operator[](const Shape& idx) const { return v[flat(idx)]; }
  Tensor to(DType dt) const { return tensor(v, shape, TensorOptions{kF64}).to(dt); }
};

template <class F>
void for_each_index(const Shape& s, F&& f) {
  if (shape_numel(s) == 0) return;
  Shape idx(s.size(), 0);
  while (true) {
    f(idx);
    int64_t d = static_cast<int64_t>(s.size()) - 1;
    for (; d >= 0; --d) {
      if (++idx[d] < s[d]) break;
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

// True when f throws Err whose message contains text; otherwise reports what happened.
template <class Err>
bool throws_with(const std::function<void()>& f, const std::string& text) {
  try {
    f();
  } catch (const Err& e) {
    if (std::string(e.what()).find(text) != std::string::npos) return true;
    MESSAGE("message was: " << e.what());
    return false;
  }
  MESSAGE("no exception");
  return false;
}

// The message of the E that f throws, or "no exception".
template <class E>
std::string error_message(auto&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "no exception";
}

// Comparison tolerance of an op's result in dtype dt (0: exact, for the integer types).
inline double tol(DType dt) {
  switch (dt) {
    case kF64:
      return 1e-12;
    case kF32:
      return 1e-5;
    case kF16:
      return 2e-3;
    case kBF16:
      return 1.6e-2;
    default:
      return 0;
  }
}

inline TensorMap fixtures(const std::string& family) {
  return load(std::string(EMBER_TEST_DIR) + "/reference/" + family + ".safetensors");
}

using ListFn = std::function<Tensor(const std::vector<Tensor>&)>;

// out = fn(inputs) against fixture key.out, and the gradients of sum(out * key.w) against key.grad<i>.
inline void check_with_grads(const TensorMap& f, const std::string& key, const ListFn& fn, std::vector<Tensor> inputs) {
  CAPTURE(key);
  for (Tensor& x : inputs) x = x.detach().clone().requires_grad_();
  Tensor out = fn(inputs);
  REQUIRE(allclose(out, f.at(key + ".out"), 1e-10, 1e-10));
  (out * f.at(key + ".w")).sum().backward();
  for (size_t i = 0; i < inputs.size(); ++i) {
    CAPTURE(i);
    CHECK(allclose(inputs[i].grad(), f.at(key + ".grad" + std::to_string(i)), 1e-10, 1e-10));
  }
}

// The id of a process that has exited (and been reaped): what a run killed with -9 leaves in file names.
inline long dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

}  // namespace ember::testing
