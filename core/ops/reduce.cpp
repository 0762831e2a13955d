// Reduction builders: resolve dims (empty = all, negative wrap, no duplicates), infer result dtypes as
// PyTorch does, allocate outputs in the keepdim layout and call the kernels of kernels/reduce.hpp.
#include "core/ops/reduce.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/autocast.hpp"
#include "core/autograd.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/shape.hpp"
#include "core/profiler.hpp"
#include "kernels/reduce.hpp"

namespace ember {
namespace {

using kernels::ReduceKind;

struct Reduction {
  Shape keep;         // the input shape with every reduced dim set to 1
  Shape out;          // keep, or keep without the reduced dims
  int64_t count = 1;  // reduced elements per output
};

std::string tag(const char* op) { return std::string("[") + op + "]"; }

Reduction resolve(const Tensor& t, const Shape& dims, bool keepdim, const char* op) {
  const int64_t nd = t.dim();
  const std::string tg = tag(op);
  std::vector<bool> reduced(static_cast<size_t>(nd), dims.empty());
  std::vector<bool> seen(static_cast<size_t>(std::max<int64_t>(nd, 1)), false);
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, nd, tg.c_str());
    EMBER_CHECK(!seen[w], ValueError, tg, " dim ", d, " appears more than once in the dims ", dims, " for input ",
                describe(t));
    seen[w] = true;
    if (nd > 0) reduced[w] = true;
  }
  Reduction r;
  for (int64_t d = 0; d < nd; ++d) {
    int64_t sz = t.shape()[d];
    if (reduced[d]) {
      r.count *= sz;
      r.keep.push_back(1);
      if (keepdim) r.out.push_back(1);
    } else {
      r.keep.push_back(sz);
      r.out.push_back(sz);
    }
  }
  return r;
}

// Max-like reductions have no identity, so an empty reduced range is an error, as in PyTorch.
void check_nonempty(const Reduction& r, const Tensor& t, const Shape& dims, const char* op) {
  EMBER_CHECK(r.count > 0, ShapeError, tag(op), " cannot reduce over a zero-size dim: input ", describe(t),
              dims.empty() ? std::string(" (all dims)") : " dims " + dims.str(), "; the op has no identity");
}

void check_floating(const Tensor& t, const char* op) {
  EMBER_CHECK(is_floating(t.dtype()), DTypeError, tag(op), " needs a floating input, got ", describe(t),
              " (convert it first, e.g. .to(kF32))");
}

Tensor finish(const Tensor& out, const Reduction& r, bool keepdim) { return keepdim ? out : out.view(r.out); }

Tensor reduce_op(ReduceKind kind, const char* op, const Tensor& t, const Shape& dims, bool keepdim, DType out_dtype,
                 const kernels::ReduceParams& params = {}) {
  profiler::OpRecord prof(op, {&t});
  Reduction r = resolve(t, dims, keepdim, op);
  Tensor out = make_tensor(r.keep, out_dtype, t.device());
  kernels::reduce(kind, out, t, params);
  return finish(out, r, keepdim);
}

// The gradient of a reduction's output brought back over the reduced dims of an input of shape `in`.
Tensor expand_back(const Tensor& g, const Reduction& r, const Shape& in) { return g.reshape(r.keep).expand(in); }

// ---------------------------------------------------------------- backward helpers
// Backward formulas use public ops only, so under create_graph they are recorded in turn (double
// backward). Where PyTorch masks a 0/0 after the fact, they divide by a safe denominator instead, so
// the unused branch of a `where` holds no NaN that a second backward could pick up.

// An output (or its gradient) in the keepdim layout, to broadcast against the input.
Tensor keep_layout(const Tensor& t, const Reduction& r) { return t.reshape(r.keep); }

// The elements equal to the result (NaN matching a NaN result) share its gradient evenly: PyTorch's
// rule for amax/amin and the full max()/min().
Tensor evenly_distribute(const Tensor& g, const Tensor& x, const Tensor& out, const Reduction& r, const Shape& dims) {
  Tensor v = keep_layout(out, r);
  Tensor mask = (x == v) | (isnan(x) & isnan(v));
  return where(mask, keep_layout(g, r) / sum(mask, dims, true), 0.0);
}

// max/min along d: the gradient goes to the selected index only, found by comparing the positions
// along d with the indices (no scatter needed).
Tensor selected_back(const Tensor& g, const Tensor& indices, const Reduction& r, const Shape& in, int64_t d) {
  if (in.empty()) return g;
  Shape pos_shape(in.size(), 1);
  pos_shape[d] = in[d];
  Tensor pos = arange(in[d], kI64, g.device()).reshape(pos_shape);
  return where(pos == keep_layout(indices, r), keep_layout(g, r), 0.0);
}

// topk/sort: the values' gradient scattered back to the positions they were taken from.
Tensor scatter_back(const Tensor& g, const Tensor& indices, const Shape& in, int64_t d) {
  if (in.empty()) return g.numel() == 1 ? g.reshape({}) : zeros({}, {.dtype = g.dtype(), .device = g.device()});
  return zeros(in, {.dtype = g.dtype(), .device = g.device()}).scatter(d, indices, g);
}

// sum_{i >= j} a_i along d, the adjoint of cumsum; recorded as its own op (backward: cumsum) so that
// cumsum's backward is differentiable without relying on flip's.
Tensor reverse_cumsum(const Tensor& a, int64_t d) {
  if (a.dim() == 0) return a;
  Tensor out;
  {
    autograd::NoGradGuard no_grad;
    out = flip(cumsum(flip(a, {d}), d), {d});
  }
  if (autograd::needs_grad(a))
    autograd::record("reverse_cumsum", {&out}, {&a}, {},
                     [d](autograd::Ctx& c) { return autograd::Grads{cumsum(c.grad(), d)}; });
  return out;
}

// Gradient of y = cumprod(x) along d: sum_{i >= j} g_i prod_{k <= i, k != j} x_k, which is
// reverse_cumsum(g y) / x without zeros. With zeros, split each row at its first zero z (x1 = x with
// x_z := 1, y1 = cumprod(x1)): the gradient at z is reverse_cumsum(g y1)_z, before z the zero-free
// formula holds and after z it is 0. That 0 is only a value: under create_graph, y_i = x_z y1_i for
// i >= z, so the others' gradient is that of x1 with g scaled by x_z from z on, which keeps every
// higher derivative exact (one level per zero in a row).
Tensor cumprod_backward(const Tensor& g, const Tensor& x, const Tensor& y, int64_t d) {
  Tensor z = x == 0;
  if (!any(z).item<bool>()) return reverse_cumsum(g * y, d) / x;
  Tensor zeros_so_far = cumsum(z, d);
  Tensor first = z & (zeros_so_far == 1);
  Tensor x1 = where(first, 1.0, x);
  Tensor y1 = cumprod(x1, d);
  Tensor at_first = reverse_cumsum(g * y1, d);
  if (!autograd::is_grad_enabled()) {
    Tensor before = zeros_so_far == 0;
    return where(before, reverse_cumsum(g * y, d) / where(before, x, 1.0), where(first, at_first, 0.0));
  }
  Tensor xz = sum(where(first, x, 0.0), {d}, true);  // the first zero (value 0, derivative 1)
  Tensor h = g * where(zeros_so_far > 0, xz, 1.0);
  return where(first, at_first, cumprod_backward(h, x1, y1, d));
}

// prod_{k != j} x_k along the last dim, exact where x has zeros and differentiable to any order:
// prod(x) / x without zeros; otherwise the first zero z of each row is set to 1 (x1), the value at z is
// prod(x1) and every other element carries the factor x_z (0 in value, but its derivative survives).
Tensor exclusive_prod(const Tensor& x) {
  Tensor z = x == 0;
  if (!any(z).item<bool>()) return prod(x, {-1}, true) / x;
  Tensor first = z & (cumsum(z, -1) == 1);
  Tensor has_zero = any(z, {-1}, true);
  Tensor x1 = where(first, 1.0, x);
  if (!autograd::is_grad_enabled()) {  // values only: a row with one zero passes the others' product to it
    Tensor p1 = prod(x1, {-1}, true);
    return where(has_zero, where(first, p1, 0.0), p1 / x1);
  }
  Tensor xz = where(has_zero, sum(where(first, x, 0.0), {-1}, true), 1.0);
  return exclusive_prod(x1) * where(first, 1.0, xz);
}

// Gradient of prod over the reduced dims of r: g prod(x) / x without zeros (PyTorch's fast path);
// with zeros, the reduced dims are moved last and flattened to take the exclusive product per row.
Tensor prod_backward(const Tensor& g0, const Tensor& x, const Tensor& out, const Reduction& r) {
  Tensor g = keep_layout(g0, r);
  if (r.count <= 1) return g.expand(x.shape());
  if (!any(x == 0).item<bool>()) return g * keep_layout(out, r) / x;
  Shape perm, kept, moved, inverse(static_cast<size_t>(x.dim()), 0);
  for (int64_t d = 0; d < x.dim(); ++d)
    if (r.keep[d] != 1) {
      perm.push_back(d);
      kept.push_back(x.size(d));
    }
  for (int64_t d = 0; d < x.dim(); ++d)
    if (r.keep[d] == 1) perm.push_back(d);
  for (int64_t i = 0; i < x.dim(); ++i) {
    inverse[perm[i]] = i;
    moved.push_back(x.size(perm[i]));
  }
  Shape rows = kept;
  rows.push_back(r.count);
  Tensor e = exclusive_prod(x.permute(perm).reshape(rows));
  return g * e.reshape(moved).permute(inverse);
}

// d var / dx = 2 (x - mean) / max(0, N - correction), as the forward's divisor.
Tensor var_backward(const Tensor& g, const Tensor& x, const Reduction& r, const Shape& dims, int64_t correction) {
  double dof = std::max(0.0, static_cast<double>(r.count) - static_cast<double>(correction));
  return keep_layout(g, r) * (2.0 / dof) * (x - mean(x, dims, true));
}

// PyTorch's norm_backward; at a zero norm the gradient is 0 (p = 2: x / norm with x = 0 there). p = 0
// counts nonzeros: no gradient at all (undefined, so a leaf's .grad stays unset, as in PyTorch).
Tensor norm_backward(const Tensor& g0, const Tensor& x, const Tensor& out, double p, const Reduction& r,
                     const Shape& dims) {
  if (p == 0.0) return Tensor();
  Tensor g = keep_layout(g0, r), n = keep_layout(out, r);
  if (p == 1.0) return sign(x) * g;
  if (p == 2.0) return g * x / where(n == 0, 1.0, n);
  if (std::isinf(p)) {  // the elements whose |x| is the max (min) share the gradient
    Tensor ax = abs(x);
    Tensor mask = (ax == n) | isnan(ax);
    return sign(x) * where(mask, g / sum(mask, dims, true), 0.0);
  }
  // sign(x) |x|^(p-1) norm^(1-p); sign(0) = 0 zeroes the terms PyTorch masks, without powers of 0.
  Tensor ax = where(x == 0, 1.0, abs(x));
  return sign(x) * pow(ax, p - 1) * g * pow(where(n == 0, 1.0, n), 1 - p);
}

DType int_to_i64(DType dt) { return is_floating(dt) ? dt : kI64; }

std::tuple<Tensor, Tensor> extreme_dim(bool is_max, const Tensor& t, int64_t dim, bool keepdim) {
  const char* op = is_max ? "max" : "min";
  Reduction r = resolve(t, {dim}, keepdim, op);
  check_nonempty(r, t, {dim}, op);
  Tensor values = make_tensor(r.keep, t.dtype(), t.device());
  Tensor indices = make_tensor(r.keep, kI64, t.device());
  kernels::arg_reduce(is_max, values, indices, t);
  Tensor v = finish(values, r, keepdim), i = finish(indices, r, keepdim);
  if (autograd::needs_grad(t))
    autograd::record(op, {&v}, {&t}, {i},
                     [r, in = t.shape(), d = wrap_dim(dim, t.dim(), tag(op).c_str())](autograd::Ctx& c) {
                       return autograd::Grads{selected_back(c.grad(), c.saved(0), r, in, d)};
                     });
  return {v, i};
}

Tensor arg_extreme(bool is_max, const Tensor& t, std::optional<int64_t> dim, bool keepdim) {
  profiler::OpRecord prof(is_max ? "argmax" : "argmin", {&t});
  const char* op = is_max ? "argmax" : "argmin";
  if (dim) {
    Reduction r = resolve(t, {*dim}, keepdim, op);
    check_nonempty(r, t, {*dim}, op);
    Tensor indices = make_tensor(r.keep, kI64, t.device());
    kernels::arg_reduce(is_max, Tensor(), indices, t);
    return finish(indices, r, keepdim);
  }
  // No dim: the flat index into the row-major tensor.
  Reduction r = resolve(t, {}, keepdim, op);
  check_nonempty(r, t, {}, op);
  Tensor indices = make_tensor({1}, kI64, t.device());
  kernels::arg_reduce(is_max, Tensor(), indices, t.reshape({t.numel()}));
  return indices.view(r.out);
}

// amax/amin and the full max()/min(): ties share the gradient evenly.
Tensor extreme(bool is_max, const char* op, const Tensor& t, const Shape& dims, bool keepdim) {
  Reduction r = resolve(t, dims, keepdim, op);
  check_nonempty(r, t, dims, op);
  Tensor out = reduce_op(is_max ? ReduceKind::Max : ReduceKind::Min, op, t, dims, keepdim, t.dtype());
  if (autograd::needs_grad(t))
    autograd::record(op, {&out}, {&t}, {t, out}, [r, dims](autograd::Ctx& c) {
      return autograd::Grads{evenly_distribute(c.grad(), c.saved(0), c.saved(1), r, dims)};
    });
  return out;
}

Tensor softmax_op(const Tensor& t, int64_t dim, bool log) {
  profiler::OpRecord prof(log ? "log_softmax" : "softmax", {&t});
  if (autocast::should_cast(CastPolicy::kFloat32, {&t})) return softmax_op(autocast::to_f32(t), dim, log);
  const char* op = log ? "log_softmax" : "softmax";
  check_floating(t, op);
  int64_t d = wrap_dim(dim, t.dim(), tag(op).c_str());
  Tensor out = make_tensor(t.shape(), t.dtype(), t.device());
  kernels::softmax(out, t, d, log);
  // From the saved output y: softmax y (g - sum(g y)), log_softmax g - exp(y) sum(g).
  if (autograd::needs_grad(t))
    autograd::record(op, {&out}, {&t}, {out}, [d, log](autograd::Ctx& c) {
      const Tensor& g = c.grad();
      Tensor y = c.saved(0);
      if (!autograd::is_grad_enabled() && d == y.dim() - 1) {  // fused, first order (CPU and CUDA)
        Tensor dx = make_tensor(y.shape(), y.dtype(), y.device());
        kernels::softmax_backward(dx, g.to(y.dtype()).contiguous(), y.contiguous(), log);
        return autograd::Grads{dx};
      }
      return autograd::Grads{log ? g - exp(y) * sum(g, {d}, true) : y * (g - sum(g * y, {d}, true))};
    });
  return out;
}

Tensor cumulative_op(bool is_prod, const Tensor& t, int64_t dim) {
  profiler::OpRecord prof(is_prod ? "cumprod" : "cumsum", {&t});
  const char* op = is_prod ? "cumprod" : "cumsum";
  int64_t d = wrap_dim(dim, t.dim(), tag(op).c_str());
  Tensor out = make_tensor(t.shape(), int_to_i64(t.dtype()), t.device());
  kernels::cumulative(is_prod, out, t, d);
  return out;
}

}  // namespace

Tensor sum(const Tensor& t, const Dims& dims_arg, bool keepdim, std::optional<DType> dtype) {
  const Shape& dims = dims_arg;
  // With a dtype the input is converted first (PyTorch's semantics); integers already sum in i64.
  Tensor x = dtype && !(*dtype == kI64 && !is_floating(t.dtype())) ? t.to(*dtype) : t;
  DType natural = int_to_i64(x.dtype());
  Tensor out = reduce_op(ReduceKind::Sum, "sum", x, dims, keepdim, natural);
  if (autograd::needs_grad(x))
    autograd::record("sum", {&out}, {&x}, {}, [r = resolve(x, dims, keepdim, "sum"), in = x.shape()](autograd::Ctx& c) {
      return autograd::Grads{expand_back(c.grad(), r, in)};
    });
  return dtype && *dtype != natural ? out.to(*dtype) : out;
}

Tensor mean(const Tensor& t, const Dims& dims_arg, bool keepdim) {
  const Shape& dims = dims_arg;
  check_floating(t, "mean");
  Tensor out = reduce_op(ReduceKind::Mean, "mean", t, dims, keepdim, t.dtype());
  if (autograd::needs_grad(t))
    autograd::record("mean", {&out}, {&t}, {},
                     [r = resolve(t, dims, keepdim, "mean"), in = t.shape()](autograd::Ctx& c) {
                       return autograd::Grads{expand_back(c.grad() / static_cast<double>(r.count), r, in)};
                     });
  return out;
}

Tensor prod(const Tensor& t, const Dims& dims_arg, bool keepdim) {
  const Shape& dims = dims_arg;
  Tensor out = reduce_op(ReduceKind::Prod, "prod", t, dims, keepdim, int_to_i64(t.dtype()));
  if (autograd::needs_grad(t))
    autograd::record("prod", {&out}, {&t}, {t, out}, [r = resolve(t, dims, keepdim, "prod")](autograd::Ctx& c) {
      return autograd::Grads{prod_backward(c.grad(), c.saved(0), c.saved(1), r)};
    });
  return out;
}

std::tuple<Tensor, Tensor> var_mean(const Tensor& t, const Dims& dims_arg, int64_t correction, bool keepdim) {
  const Shape& dims = dims_arg;
  check_floating(t, "var_mean");
  Reduction r = resolve(t, dims, keepdim, "var_mean");
  Tensor v = make_tensor(r.keep, t.dtype(), t.device());
  Tensor m = make_tensor(r.keep, t.dtype(), t.device());
  kernels::var_mean(v, m, t, correction, false);
  Tensor vo = finish(v, r, keepdim), mo = finish(m, r, keepdim);
  if (autograd::needs_grad(t))
    autograd::record("var_mean", {&vo, &mo}, {&t}, {t}, [r, dims, correction, in = t.shape()](autograd::Ctx& c) {
      Tensor x = c.saved(0);
      return autograd::Grads{var_backward(c.grad(0), x, r, dims, correction) +
                             expand_back(c.grad(1) / static_cast<double>(r.count), r, in)};
    });
  return {vo, mo};
}

Tensor var(const Tensor& t, const Dims& dims_arg, int64_t correction, bool keepdim) {
  const Shape& dims = dims_arg;
  check_floating(t, "var");
  Reduction r = resolve(t, dims, keepdim, "var");
  Tensor v = make_tensor(r.keep, t.dtype(), t.device());
  kernels::var_mean(v, Tensor(), t, correction, false);
  Tensor out = finish(v, r, keepdim);
  if (autograd::needs_grad(t))
    autograd::record("var", {&out}, {&t}, {t}, [r, dims, correction](autograd::Ctx& c) {
      return autograd::Grads{var_backward(c.grad(), c.saved(0), r, dims, correction)};
    });
  return out;
}

Tensor std(const Tensor& t, const Dims& dims_arg, int64_t correction, bool keepdim) {
  const Shape& dims = dims_arg;
  check_floating(t, "std");
  Reduction r = resolve(t, dims, keepdim, "std");
  Tensor v = make_tensor(r.keep, t.dtype(), t.device());
  kernels::var_mean(v, Tensor(), t, correction, true);
  Tensor out = finish(v, r, keepdim);
  // d std = d var / (2 std), 0 where std is 0 (as PyTorch).
  if (autograd::needs_grad(t))
    autograd::record("std", {&out}, {&t}, {t, out}, [r, dims, correction](autograd::Ctx& c) {
      Tensor s = c.saved(1);
      Tensor gv = where(s == 0, 0.0, c.grad() / (where(s == 0, 1.0, s) * 2));
      return autograd::Grads{var_backward(gv, c.saved(0), r, dims, correction)};
    });
  return out;
}

std::tuple<Tensor, Tensor> std_mean(const Tensor& t, const Dims& dims, int64_t correction, bool keepdim) {
  check_floating(t, "std_mean");
  return {ember::std(t, dims, correction, keepdim), mean(t, dims, keepdim)};
}

Tensor amax(const Tensor& t, const Dims& dims, bool keepdim) { return extreme(true, "amax", t, dims, keepdim); }
Tensor amin(const Tensor& t, const Dims& dims, bool keepdim) { return extreme(false, "amin", t, dims, keepdim); }

ValuesIndices max(const Tensor& t, int64_t dim, bool keepdim) {
  auto [v, i] = extreme_dim(true, t, dim, keepdim);
  return {v, i};
}
ValuesIndices min(const Tensor& t, int64_t dim, bool keepdim) {
  auto [v, i] = extreme_dim(false, t, dim, keepdim);
  return {v, i};
}

Tensor max(const Tensor& t) { return extreme(true, "max", t, {}, false); }
Tensor min(const Tensor& t) { return extreme(false, "min", t, {}, false); }

Tensor argmax(const Tensor& t, std::optional<int64_t> dim, bool keepdim) { return arg_extreme(true, t, dim, keepdim); }
Tensor argmin(const Tensor& t, std::optional<int64_t> dim, bool keepdim) { return arg_extreme(false, t, dim, keepdim); }

Tensor norm(const Tensor& t, double p, const Dims& dims_arg, bool keepdim) {
  const Shape& dims = dims_arg;
  check_floating(t, "norm");
  EMBER_CHECK(!std::isnan(p), ValueError, "[norm] the order p must not be NaN");
  ReduceKind kind = p == 0.0         ? ReduceKind::NormL0
                    : p == 1.0       ? ReduceKind::NormL1
                    : p == 2.0       ? ReduceKind::NormL2
                    : p == INFINITY  ? ReduceKind::NormInf
                    : p == -INFINITY ? ReduceKind::NormNegInf
                                     : ReduceKind::NormP;
  Reduction r = resolve(t, dims, keepdim, "norm");
  if (std::isinf(p)) check_nonempty(r, t, dims, "norm");
  Tensor out = reduce_op(kind, "norm", t, dims, keepdim, t.dtype(), {.p = p});
  if (autograd::needs_grad(t))
    autograd::record("norm", {&out}, {&t}, {t, out}, [r, p, dims](autograd::Ctx& c) {
      return autograd::Grads{norm_backward(c.grad(), c.saved(0), c.saved(1), p, r, dims)};
    });
  return out;
}

Tensor logsumexp(const Tensor& t, const Dims& dims_arg, bool keepdim) {
  const Shape& dims = dims_arg;
  Tensor x = is_floating(t.dtype()) ? t : t.to(kF32);  // integers give the default float dtype, as PyTorch
  Reduction r = resolve(x, dims, keepdim, "logsumexp");
  Tensor out = make_tensor(r.keep, x.dtype(), x.device());
  if (r.count == 0)
    out.fill_(-INFINITY);  // log of an empty sum
  else
    kernels::logsumexp(out, x);
  Tensor res = finish(out, r, keepdim);
  if (autograd::needs_grad(x))  // d/dx = exp(x - logsumexp)
    autograd::record("logsumexp", {&res}, {&x}, {x, res}, [r](autograd::Ctx& c) {
      return autograd::Grads{keep_layout(c.grad(), r) * exp(c.saved(0) - keep_layout(c.saved(1), r))};
    });
  return res;
}

Tensor all(const Tensor& t, const Dims& dims_arg, bool keepdim) {
  const Shape& dims = dims_arg;
  return reduce_op(ReduceKind::All, "all", t, dims, keepdim, kBool);
}

Tensor any(const Tensor& t, const Dims& dims_arg, bool keepdim) {
  const Shape& dims = dims_arg;
  return reduce_op(ReduceKind::Any, "any", t, dims, keepdim, kBool);
}

Tensor cumsum(const Tensor& t, int64_t dim) {
  Tensor out = cumulative_op(false, t, dim);
  if (autograd::needs_grad(t))
    autograd::record("cumsum", {&out}, {&t}, {}, [d = wrap_dim(dim, t.dim(), "[cumsum]")](autograd::Ctx& c) {
      return autograd::Grads{reverse_cumsum(c.grad(), d)};
    });
  return out;
}

Tensor cumprod(const Tensor& t, int64_t dim) {
  Tensor out = cumulative_op(true, t, dim);
  if (autograd::needs_grad(t))
    autograd::record("cumprod", {&out}, {&t}, {t, out}, [d = wrap_dim(dim, t.dim(), "[cumprod]")](autograd::Ctx& c) {
      Tensor x = c.saved(0);
      if (x.dim() == 0 || x.size(d) <= 1) return autograd::Grads{c.grad()};
      return autograd::Grads{cumprod_backward(c.grad(), x, c.saved(1), d)};
    });
  return out;
}

ValuesIndices topk(const Tensor& t, int64_t k, int64_t dim, bool largest, bool sorted) {
  int64_t d = wrap_dim(dim, t.dim(), "[topk]");
  int64_t n = t.dim() == 0 ? 1 : t.shape()[d];
  EMBER_CHECK(k >= 0 && k <= n, IndexError, "[topk] k = ", k, " is out of range for dim ", dim, " of size ", n,
              " of input ", describe(t));
  Shape shape = t.shape();
  if (t.dim() > 0)
    shape[d] = k;
  else if (k == 0)
    shape = {0};
  Tensor values = make_tensor(shape, t.dtype(), t.device());
  Tensor indices = make_tensor(shape, kI64, t.device());
  kernels::topk(values, indices, t, k, d, largest, sorted);
  if (autograd::needs_grad(t))
    autograd::record("topk", {&values}, {&t}, {indices}, [in = t.shape(), d](autograd::Ctx& c) {
      return autograd::Grads{scatter_back(c.grad(), c.saved(0), in, d)};
    });
  return {values, indices};
}

// CPU sorting is always stable, so `stable` only documents the caller's need.
ValuesIndices sort(const Tensor& t, int64_t dim, bool descending, bool) {
  int64_t d = wrap_dim(dim, t.dim(), "[sort]");
  Tensor values = make_tensor(t.shape(), t.dtype(), t.device());
  Tensor indices = make_tensor(t.shape(), kI64, t.device());
  kernels::sort(values, indices, t, d, descending);
  if (autograd::needs_grad(t))
    autograd::record("sort", {&values}, {&t}, {indices}, [in = t.shape(), d](autograd::Ctx& c) {
      return autograd::Grads{scatter_back(c.grad(), c.saved(0), in, d)};
    });
  return {values, indices};
}

Tensor argsort(const Tensor& t, int64_t dim, bool descending, bool stable) {
  autograd::NoGradGuard no_grad;  // only the indices are kept
  return sort(t, dim, descending, stable).indices;
}

Tensor softmax(const Tensor& t, int64_t dim) { return softmax_op(t, dim, false); }
Tensor log_softmax(const Tensor& t, int64_t dim) { return softmax_op(t, dim, true); }

}  // namespace ember
