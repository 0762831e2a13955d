// gradcheck and gradgradcheck: the Jacobian from backward against central differences, in f64.
// Every differentiable op's test runs its function through these (see tests/test_grad_*.cpp).
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "ember.hpp"
#include "test_dir.hpp"

namespace ember::testing {

using GradFn = std::function<Tensor(const std::vector<Tensor>&)>;

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
};

namespace detail {

// Storage offset of the element with flat (row-major) index i of t.
inline int64_t element_offset(const Tensor& t, int64_t i) {
  int64_t off = t.storage_offset();
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    off += (i % t.size(d)) * t.stride(d);
    i /= t.size(d);
  }
  return off;
}

inline std::vector<double> flat_values(const Tensor& t) {
  return t.defined() ? t.to_vector<double>() : std::vector<double>();
}

}  // namespace detail

// The device every gradcheck runs on: the CPU, or CUDA device 0 under EMBER_TEST_DEVICE=cuda
// (tools/gpu_check.sh sets it, so the same tables check the GPU's backward formulas and kernels).
inline Device test_device() {
  const char* d = std::getenv("EMBER_TEST_DEVICE");
  if (d == nullptr || std::string(d) == "cpu") return kCPU;
  REQUIRE_MESSAGE(std::string(d) == "cuda", "EMBER_TEST_DEVICE must be cpu or cuda, got " << d);
  REQUIRE_MESSAGE(cuda_is_available(), "EMBER_TEST_DEVICE=cuda but no CUDA device is available");
  return Device{Device::Kind::CUDA, 0};
}

// t on test_device(): for the constants a checked function captures (masks, indices, targets, weights).
inline Tensor dev(const Tensor& t) { return t.defined() ? t.to(test_device()) : t; }

// Copies of the inputs on test_device(), as leaves that keep requires_grad.
inline std::vector<Tensor> on_test_device(const std::vector<Tensor>& inputs) {
  const Device dev = test_device();
  if (dev.is_cpu()) return inputs;
  std::vector<Tensor> moved;
  for (const Tensor& x : inputs) {
    if (!x.defined()) {
      moved.push_back(x);
      continue;
    }
    // The same view over a device copy of its whole storage, so that strided, offset and as_strided
    // inputs keep their layout (and what lies around them) on the device.
    const Tensor d = x.detach();
    const auto n = static_cast<int64_t>(d.impl().storage->nbytes() / d.element_size());
    Tensor y = make_view(d, {n}, {1}, 0).to(dev, true);
    y = make_view(y, d.shape(), d.strides(), d.storage_offset());
    if (x.requires_grad()) y.requires_grad_();
    moved.push_back(y);
  }
  return moved;
}

// True when d f / d inputs from backward matches central differences for every input that requires
// grad; on a mismatch, MESSAGEs the input, output and input element and both values. Runs on
// test_device().
inline bool gradcheck(const GradFn& f, const std::vector<Tensor>& given, GradcheckOptions o = {}) {
  const std::vector<Tensor> inputs = on_test_device(given);
  Tensor out = f(inputs);
  if (!out.requires_grad()) {
    MESSAGE("gradcheck: the output does not require grad");
    return false;
  }
  std::vector<Tensor> diff;
  std::vector<size_t> diff_index;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].defined() && inputs[i].requires_grad()) {
      diff.push_back(inputs[i]);
      diff_index.push_back(i);
    }
  int64_t n_out = out.numel();
  // Analytical: one backward per output element.
  std::vector<std::vector<std::vector<double>>> analytic(diff.size(), std::vector<std::vector<double>>(n_out));
  for (int64_t k = 0; k < n_out; ++k) {
    Tensor seed = zeros(out.shape(), {.dtype = out.dtype(), .device = out.device()});
    {
      autograd::NoGradGuard g;
      seed.reshape({-1}).narrow(0, k, 1).fill_(1.0);
    }
    auto grads = autograd::grad({out}, diff, {seed}, true, false, true);
    for (size_t j = 0; j < diff.size(); ++j) {
      analytic[j][k] = grads[j].defined() ? detail::flat_values(grads[j]) : std::vector<double>(diff[j].numel(), 0.0);
      if (static_cast<int64_t>(analytic[j][k].size()) != diff[j].numel()) {
        MESSAGE("gradcheck: gradient of input " << diff_index[j] << " has " << analytic[j][k].size()
                                                << " elements, expected " << diff[j].numel());
        return false;
      }
    }
  }
  // Numerical: perturb one storage element at a time.
  autograd::NoGradGuard no_grad;
  for (size_t j = 0; j < diff.size(); ++j) {
    const Tensor& x = diff[j];
    for (int64_t e = 0; e < x.numel(); ++e) {
      Tensor cell = x.as_strided({}, {}, detail::element_offset(x, e));
      double v = cell.item<double>();
      cell.fill_(v + o.eps);
      std::vector<double> hi = detail::flat_values(f(inputs));
      cell.fill_(v - o.eps);
      std::vector<double> lo = detail::flat_values(f(inputs));
      cell.fill_(v);
      for (int64_t k = 0; k < n_out; ++k) {
        double num = (hi[k] - lo[k]) / (2 * o.eps), an = analytic[j][k][e];
        if (!(std::abs(num - an) <= o.atol + o.rtol * std::abs(num))) {
          MESSAGE("gradcheck: input " << diff_index[j] << " element " << e << ", output element " << k << ": backward "
                                      << an << " vs numerical " << num);
          return false;
        }
      }
    }
  }
  return true;
}

// gradcheck of the gradient itself: for each input x_j, (inputs, v) -> d<f, v>/dx_j built with create_graph.
inline bool gradgradcheck(const GradFn& f, const std::vector<Tensor>& host_inputs, GradcheckOptions o = {}) {
  const std::vector<Tensor> inputs = on_test_device(host_inputs);  // f's constants live there too (dev)
  Tensor out = f(inputs);
  Tensor v = randn(out.shape(), {.dtype = out.dtype(), .device = out.device(), .requires_grad = true});
  std::vector<Tensor> args = inputs;
  args.push_back(v);
  o.atol = std::max(o.atol, 1e-4);
  for (size_t j = 0; j < inputs.size(); ++j) {
    if (!inputs[j].defined() || !inputs[j].requires_grad()) continue;
    GradFn g = [&](const std::vector<Tensor>& a) {
      std::vector<Tensor> in(a.begin(), a.end() - 1);
      autograd::EnableGradGuard grad_mode;  // gradcheck evaluates its numerical side under NoGradGuard
      Tensor gj = autograd::grad({f(in)}, {in[j]}, {a.back()}, true, true, true)[0];
      if (!gj.defined()) gj = zeros(in[j].shape(), {.dtype = in[j].dtype(), .device = in[j].device()});
      // A gradient that does not depend on the inputs (a linear op's w.r.t. itself) is still a function of v.
      return gj.requires_grad() ? gj : gj + a.back().sum() * 0.0;
    };
    if (!gradcheck(g, args, o)) {
      MESSAGE("gradgradcheck: second derivatives through input " << j);
      return false;
    }
  }
  return true;
}

// A non-contiguous f64 copy of t (same values, every other element of a wider buffer), requiring grad.
inline Tensor noncontiguous(const Tensor& t) {
  Shape wide = t.shape();
  if (wide.empty()) return t.detach().clone().requires_grad_();
  wide.back() *= 2;
  Tensor buf = zeros(wide, {.dtype = t.dtype()});
  Tensor v = buf.slice(-1, 0, std::nullopt, 2);
  v.copy_(t.detach());
  return v.requires_grad_();
}

}  // namespace ember::testing
