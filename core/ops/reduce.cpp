// Reduction builders: resolve dims (empty = all, negative wrap, no duplicates), infer result dtypes as
// PyTorch does, allocate outputs in the keepdim layout and call the kernels of kernels/reduce.hpp.
#include "core/ops/reduce.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/autograd.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
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
  Reduction r = resolve(t, dims, keepdim, op);
  Tensor out = make_tensor(r.keep, out_dtype, t.device());
  kernels::reduce(kind, out, t, params);
  return finish(out, r, keepdim);
}

// The gradient of a reduction's output brought back over the reduced dims of an input of shape `in`.
Tensor expand_back(const Tensor& g, const Reduction& r, const Shape& in) { return g.reshape(r.keep).expand(in); }

DType int_to_i64(DType dt) { return is_floating(dt) ? dt : kI64; }

std::tuple<Tensor, Tensor> extreme_dim(bool is_max, const Tensor& t, int64_t dim, bool keepdim) {
  const char* op = is_max ? "max" : "min";
  Reduction r = resolve(t, {dim}, keepdim, op);
  check_nonempty(r, t, {dim}, op);
  Tensor values = make_tensor(r.keep, t.dtype(), t.device());
  Tensor indices = make_tensor(r.keep, kI64, t.device());
  kernels::arg_reduce(is_max, values, indices, t);
  return {finish(values, r, keepdim), finish(indices, r, keepdim)};
}

Tensor arg_extreme(bool is_max, const Tensor& t, std::optional<int64_t> dim, bool keepdim) {
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

Tensor softmax_op(const Tensor& t, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  check_floating(t, op);
  int64_t d = wrap_dim(dim, t.dim(), tag(op).c_str());
  Tensor out = make_tensor(t.shape(), t.dtype(), t.device());
  kernels::softmax(out, t, d, log);
  return out;
}

Tensor cumulative_op(bool is_prod, const Tensor& t, int64_t dim) {
  const char* op = is_prod ? "cumprod" : "cumsum";
  int64_t d = wrap_dim(dim, t.dim(), tag(op).c_str());
  Tensor out = make_tensor(t.shape(), int_to_i64(t.dtype()), t.device());
  kernels::cumulative(is_prod, out, t, d);
  return out;
}

}  // namespace

Tensor sum(const Tensor& t, const Shape& dims, bool keepdim, std::optional<DType> dtype) {
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

Tensor mean(const Tensor& t, const Shape& dims, bool keepdim) {
  check_floating(t, "mean");
  Tensor out = reduce_op(ReduceKind::Mean, "mean", t, dims, keepdim, t.dtype());
  if (autograd::needs_grad(t))
    autograd::record("mean", {&out}, {&t}, {}, [r = resolve(t, dims, keepdim, "mean"), in = t.shape()](autograd::Ctx& c) {
      return autograd::Grads{expand_back(c.grad() / static_cast<double>(r.count), r, in)};
    });
  return out;
}

Tensor prod(const Tensor& t, const Shape& dims, bool keepdim) {
  return reduce_op(ReduceKind::Prod, "prod", t, dims, keepdim, int_to_i64(t.dtype()));
}

std::tuple<Tensor, Tensor> var_mean(const Tensor& t, const Shape& dims, int64_t correction, bool keepdim) {
  check_floating(t, "var_mean");
  Reduction r = resolve(t, dims, keepdim, "var_mean");
  Tensor v = make_tensor(r.keep, t.dtype(), t.device());
  Tensor m = make_tensor(r.keep, t.dtype(), t.device());
  kernels::var_mean(v, m, t, correction, false);
  return {finish(v, r, keepdim), finish(m, r, keepdim)};
}

Tensor var(const Tensor& t, const Shape& dims, int64_t correction, bool keepdim) {
  check_floating(t, "var");
  Reduction r = resolve(t, dims, keepdim, "var");
  Tensor v = make_tensor(r.keep, t.dtype(), t.device());
  kernels::var_mean(v, Tensor(), t, correction, false);
  return finish(v, r, keepdim);
}

Tensor std(const Tensor& t, const Shape& dims, int64_t correction, bool keepdim) {
  check_floating(t, "std");
  Reduction r = resolve(t, dims, keepdim, "std");
  Tensor v = make_tensor(r.keep, t.dtype(), t.device());
  kernels::var_mean(v, Tensor(), t, correction, true);
  return finish(v, r, keepdim);
}

Tensor amax(const Tensor& t, const Shape& dims, bool keepdim) {
  check_nonempty(resolve(t, dims, keepdim, "amax"), t, dims, "amax");
  return reduce_op(ReduceKind::Max, "amax", t, dims, keepdim, t.dtype());
}

Tensor amin(const Tensor& t, const Shape& dims, bool keepdim) {
  check_nonempty(resolve(t, dims, keepdim, "amin"), t, dims, "amin");
  return reduce_op(ReduceKind::Min, "amin", t, dims, keepdim, t.dtype());
}

std::tuple<Tensor, Tensor> max(const Tensor& t, int64_t dim, bool keepdim) {
  return extreme_dim(true, t, dim, keepdim);
}
std::tuple<Tensor, Tensor> min(const Tensor& t, int64_t dim, bool keepdim) {
  return extreme_dim(false, t, dim, keepdim);
}

Tensor max(const Tensor& t) {
  check_nonempty(resolve(t, {}, false, "max"), t, {}, "max");
  return reduce_op(ReduceKind::Max, "max", t, {}, false, t.dtype());
}

Tensor min(const Tensor& t) {
  check_nonempty(resolve(t, {}, false, "min"), t, {}, "min");
  return reduce_op(ReduceKind::Min, "min", t, {}, false, t.dtype());
}

Tensor argmax(const Tensor& t, std::optional<int64_t> dim, bool keepdim) { return arg_extreme(true, t, dim, keepdim); }
Tensor argmin(const Tensor& t, std::optional<int64_t> dim, bool keepdim) { return arg_extreme(false, t, dim, keepdim); }

Tensor norm(const Tensor& t, double p, const Shape& dims, bool keepdim) {
  check_floating(t, "norm");
  EMBER_CHECK(!std::isnan(p), ValueError, "[norm] the order p must not be NaN");
  ReduceKind kind = p == 0.0         ? ReduceKind::NormL0
                    : p == 1.0       ? ReduceKind::NormL1
                    : p == 2.0       ? ReduceKind::NormL2
                    : p == INFINITY  ? ReduceKind::NormInf
                    : p == -INFINITY ? ReduceKind::NormNegInf
                                     : ReduceKind::NormP;
  if (std::isinf(p)) check_nonempty(resolve(t, dims, keepdim, "norm"), t, dims, "norm");
  return reduce_op(kind, "norm", t, dims, keepdim, t.dtype(), {.p = p});
}

Tensor logsumexp(const Tensor& t, const Shape& dims, bool keepdim) {
  Tensor x = is_floating(t.dtype()) ? t : t.to(kF32);  // integers give the default float dtype, as PyTorch
  Reduction r = resolve(x, dims, keepdim, "logsumexp");
  Tensor out = make_tensor(r.keep, x.dtype(), x.device());
  if (r.count == 0)
    out.fill_(-INFINITY);  // log of an empty sum
  else
    kernels::logsumexp(out, x);
  return finish(out, r, keepdim);
}

Tensor all(const Tensor& t, const Shape& dims, bool keepdim) {
  return reduce_op(ReduceKind::All, "all", t, dims, keepdim, kBool);
}

Tensor any(const Tensor& t, const Shape& dims, bool keepdim) {
  return reduce_op(ReduceKind::Any, "any", t, dims, keepdim, kBool);
}

Tensor cumsum(const Tensor& t, int64_t dim) { return cumulative_op(false, t, dim); }
Tensor cumprod(const Tensor& t, int64_t dim) { return cumulative_op(true, t, dim); }

std::tuple<Tensor, Tensor> topk(const Tensor& t, int64_t k, int64_t dim, bool largest, bool sorted) {
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
  return {values, indices};
}

// CPU sorting is always stable, so `stable` only documents the caller's need.
std::tuple<Tensor, Tensor> sort(const Tensor& t, int64_t dim, bool descending, bool) {
  int64_t d = wrap_dim(dim, t.dim(), "[sort]");
  Tensor values = make_tensor(t.shape(), t.dtype(), t.device());
  Tensor indices = make_tensor(t.shape(), kI64, t.device());
  kernels::sort(values, indices, t, d, descending);
  return {values, indices};
}

Tensor argsort(const Tensor& t, int64_t dim, bool descending, bool stable) {
  return std::get<1>(sort(t, dim, descending, stable));
}

Tensor softmax(const Tensor& t, int64_t dim) { return softmax_op(t, dim, false); }
Tensor log_softmax(const Tensor& t, int64_t dim) { return softmax_op(t, dim, true); }

}  // namespace ember
