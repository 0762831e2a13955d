// The device parity sweep: each Row is an op over generated arguments. run() evaluates every row in
// each of its dtypes and in four layouts of its floating arguments (contiguous, transposed, sliced,
// broadcast), forward and backward, and compares:
//   - on every machine: each layout on the CPU against the contiguous layout on the CPU (strided
//     kernels and broadcast gradients agree with the contiguous ones);
//   - with a CUDA device: each layout on CUDA against the same layout on the CPU.
// Without a device the CUDA half prints that it was skipped (EMBER_REQUIRE_CUDA=1 makes that a failure).
// Rows live in tests/test_sweep_<family>.cpp, one file per kernel family.
#pragma once
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace ember::testing::sweep {

enum class Fill {
  Normal,    // N(0, 2^2)
  Positive,  // |N(0, 2^2)| + 0.5
  Unit,      // uniform (-0.9, 0.9): inside every inverse-trig and log1p domain
  Index,     // integers in [0, hi), dtype i64 whatever the row's dtype
  Mask,      // bool, about half true
};

struct Arg {
  Shape shape;
  Fill fill = Fill::Normal;
  int64_t hi = 0;    // Index: exclusive upper bound
  bool grad = true;  // a floating argument requires grad when the row has a backward
  bool vary = true;  // takes the four layouts (false: always contiguous)
};

struct Row {
  std::string name;
  std::vector<Arg> args;
  // The op on the arguments (on one device); every output is compared. Floating outputs that require
  // grad take part in the backward check.
  std::function<std::vector<Tensor>(const std::vector<Tensor>&)> fn;
  std::vector<DType> dtypes = {kF32, kF64, kF16, kBF16};
  bool backward = true;
  double tol = 1.0;  // multiplies the dtype's tolerance (long reductions in 2-byte floats need more)
};

enum class Layout { Contiguous, Transposed, Sliced, Broadcast };
inline const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Contiguous:
      return "contiguous";
    case Layout::Transposed:
      return "transposed";
    case Layout::Sliced:
      return "sliced";
    case Layout::Broadcast:
      return "broadcast";
  }
  return "?";
}

inline bool has_cuda() { return cuda_is_available(); }

// Tolerance of a dtype relative to the reference's largest magnitude (normwise: a sum near zero of
// large terms is judged against the terms' scale, not against its own tiny value).
inline bool close_to(const Tensor& got, const Tensor& want, double scale) {
  if (got.dtype() != want.dtype() || got.shape() != want.shape()) {
    MESSAGE("got " << describe(got) << ", want " << describe(want));
    return false;
  }
  const DType dt = want.dtype();
  if (!is_floating(dt)) return equal(got.cpu(), want.cpu());
  double tol = dt == kF64 ? 1e-10 : dt == kF32 ? 2e-5 : dt == kF16 ? 4e-3 : 2e-2;
  tol *= scale;
  auto g = got.cpu().to_vector<double>(), w = want.cpu().to_vector<double>();
  double mag = 1.0;
  for (double v : w)
    if (std::isfinite(v)) mag = std::max(mag, std::abs(v));
  for (size_t i = 0; i < w.size(); ++i) {
    bool same = (std::isnan(g[i]) && std::isnan(w[i])) || g[i] == w[i];
    if (!same && !(std::abs(g[i] - w[i]) <= tol * (mag + std::abs(w[i])))) {
      MESSAGE("element " << i << ": " << g[i] << " vs " << w[i] << " (tolerance " << tol * (mag + std::abs(w[i]))
                         << ")");
      return false;
    }
  }
  return true;
}

namespace detail {

// The contiguous f64 values of one argument, drawn from the row's seed.
inline Tensor values(const Arg& a) {
  switch (a.fill) {
    case Fill::Normal:
      return randn(a.shape, {.dtype = kF64}) * 2.0;
    case Fill::Positive:
      return abs(randn(a.shape, {.dtype = kF64}) * 2.0) + 0.5;
    case Fill::Unit:
      return rand(a.shape, {.dtype = kF64}) * 1.8 - 0.9;
    case Fill::Index:
      return randint(0, a.hi, a.shape, {.dtype = kI64});
    case Fill::Mask:
      return randint(0, 2, a.shape).to(kBool);
  }
  return {};
}

using ViewFn = std::function<Tensor(const Tensor&)>;

// The argument's tensor on device `dev` in layout `l`: the same values, different strides. The leaf
// (whose grad is compared, seen through the same view) is returned in `leaf`, the view in `to_view`.
inline Tensor arrange(const Tensor& v, Layout l, Device dev, bool grad, Tensor& leaf, ViewFn& to_view) {
  const Shape& s = v.shape();
  Tensor base;
  to_view = [](const Tensor& b) { return b; };
  if (l == Layout::Transposed && s.size() >= 2) {
    base = v.transpose(-1, -2).contiguous();
    to_view = [](const Tensor& b) { return b.transpose(-1, -2); };
  } else if (l == Layout::Sliced && !s.empty()) {
    Shape wide = s;
    wide.back() *= 2;
    base = zeros(wide, {.dtype = v.dtype()});
    {
      autograd::NoGradGuard g;
      base.slice(-1, 0, std::nullopt, 2).copy_(v);
    }
    to_view = [](const Tensor& b) { return b.slice(-1, 0, std::nullopt, 2); };
  } else if (l == Layout::Broadcast && !s.empty() && s[0] > 1) {
    // Row 0 broadcast over dim 0: the values change (every row equal) but stay the same on both sides.
    base = v.narrow(0, 0, 1).contiguous();
    Shape full = s;
    to_view = [full](const Tensor& b) { return b.expand(full); };
  } else {
    base = v.contiguous();
  }
  leaf = base.to(dev, true);
  if (grad) leaf.requires_grad_();
  return to_view(leaf);
}

struct Result {
  std::vector<Tensor> outs;   // forward outputs, detached
  std::vector<Tensor> grads;  // grads of the floating leaves (undefined when none)
  std::string error;          // the message when the op threw
};

inline Result evaluate(const Row& row, const std::vector<Tensor>& vals, DType dt, Layout l, Device dev) {
  Result r;
  std::vector<Tensor> args, leaves;
  std::vector<ViewFn> views;
  for (size_t i = 0; i < row.args.size(); ++i) {
    const Arg& a = row.args[i];
    const bool floating = a.fill != Fill::Index && a.fill != Fill::Mask;
    Tensor v = floating ? vals[i].to(dt) : vals[i];
    const bool grad = floating && row.backward && a.grad && is_floating(dt);
    Tensor leaf;
    ViewFn view;
    args.push_back(arrange(v, floating && a.vary ? l : Layout::Contiguous, dev, grad, leaf, view));
    leaves.push_back(grad ? leaf : Tensor{});
    views.push_back(view);
  }
  try {
    r.outs = row.fn(args);
    Tensor total;
    for (size_t k = 0; k < r.outs.size(); ++k) {
      const Tensor& o = r.outs[k];
      if (!o.defined() || !o.requires_grad() || !is_floating(o.dtype())) continue;
      // A fixed weighting of the outputs (the same on both devices) so that every element's gradient counts.
      manual_seed(1000 + k);
      Tensor w = randn(o.shape(), {.dtype = kF64}).to(o.dtype()).to(dev);
      Tensor term = (o * w).sum();
      total = total.defined() ? total + term : term;
    }
    if (total.defined()) total.backward();
    for (Tensor& o : r.outs)
      if (o.defined()) o = o.detach();
    for (size_t i = 0; i < leaves.size(); ++i) {
      const Tensor& leaf = leaves[i];
      r.grads.push_back(leaf.defined() && leaf.grad().defined() ? views[i](leaf.grad()) : Tensor{});
    }
  } catch (const Error& e) {
    r.error = e.what();
  }
  return r;
}

inline void compare(const Row& row, const Result& got, const Result& want, const std::string& what) {
  CAPTURE(what);
  if (!want.error.empty() || !got.error.empty()) {
    // Both sides refuse the case alike (a dtype the op does not take), or the test fails naming both.
    if (want.error.empty() || got.error.empty())
      FAIL_CHECK("one side threw: [" << got.error << "] vs [" << want.error << "]");
    return;
  }
  REQUIRE(got.outs.size() == want.outs.size());
  for (size_t k = 0; k < want.outs.size(); ++k) {
    CAPTURE(k);
    if (want.outs[k].defined()) CHECK(close_to(got.outs[k], want.outs[k], row.tol));
  }
  for (size_t i = 0; i < want.grads.size(); ++i) {
    CAPTURE(i);
    CHECK(got.grads[i].defined() == want.grads[i].defined());
    if (want.grads[i].defined() && got.grads[i].defined()) CHECK(close_to(got.grads[i], want.grads[i], row.tol));
  }
}

}  // namespace detail

// Runs the rows as described at the top of this file.
inline void run(const std::vector<Row>& rows) {
  const bool cuda = has_cuda();
  if (!cuda) {
    if (std::getenv("EMBER_REQUIRE_CUDA")) FAIL("EMBER_REQUIRE_CUDA is set but no CUDA device is available");
    MESSAGE("sweep: CUDA half skipped (no CUDA device); checking CPU layouts only");
    ++cuda_skips();
  }
  const Device gpu{Device::Kind::CUDA, 0};
  for (const Row& row : rows) {
    bool any_ran = false;  // a row that the CPU refuses in every dtype checks nothing
    std::string last_error;
    for (DType dt : row.dtypes) {
      manual_seed(static_cast<uint64_t>(std::hash<std::string>{}(row.name) % 100000));
      std::vector<Tensor> vals;
      for (const Arg& a : row.args) vals.push_back(detail::values(a));
      const detail::Result base = detail::evaluate(row, vals, dt, Layout::Contiguous, kCPU);
      any_ran = any_ran || base.error.empty();
      if (!base.error.empty()) last_error = base.error;
      for (Layout l : {Layout::Contiguous, Layout::Transposed, Layout::Sliced, Layout::Broadcast}) {
        const std::string what = row.name + " " + dtype_name(dt) + " " + layout_name(l);
        const detail::Result cpu = l == Layout::Contiguous ? base : detail::evaluate(row, vals, dt, l, kCPU);
        // Broadcast changes the values; only the other layouts are compared with the contiguous run.
        if (l != Layout::Contiguous && l != Layout::Broadcast) detail::compare(row, cpu, base, what + " (cpu layout)");
        if (cuda) detail::compare(row, detail::evaluate(row, vals, dt, l, gpu), cpu, what + " (cuda vs cpu)");
      }
    }
    if (!any_ran) FAIL_CHECK("sweep row " << row.name << " fails on the CPU in every dtype: " << last_error);
  }
}

}  // namespace ember::testing::sweep
