// Indexing op builders: argument, shape and index-range checks (PyTorch's rules), output allocation,
// then the kernels of kernels/index.hpp. Indices must lie in [0, size): negative ones are errors.
// Backward formulas pair the ops up: gather <-> scatter_add, index_select <-> index_add.
#include "core/ops/index.hpp"

#include <string>
#include <string_view>

#include "core/autograd.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/shape.hpp"
#include "core/profiler.hpp"
#include "kernels/index.hpp"

namespace ember {
namespace {

std::string tag(const char* op) { return std::string("[") + op + "]"; }

void check_index_dtype(const char* op, const Tensor& index) {
  EMBER_CHECK(index.dtype() == kI64 || index.dtype() == kI32, DTypeError, "[", op,
              "] indices must be int64 or int32, got ", describe(index));
}

void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  EMBER_CHECK(a.device() == b.device(), DeviceError, "[", op, "] expected all tensors on one device, got ", describe(a),
              " and ", describe(b));
}

void check_same_dtype(const char* op, const Tensor& self, const Tensor& src) {
  EMBER_CHECK(self.dtype() == src.dtype(), DTypeError, "[", op, "] self ", describe(self), " and src ", describe(src),
              " must have the same dtype");
}

// Every index must lie in [0, size); names the op, the first bad extreme and the size. Only on the CPU:
// the CUDA kernels check each index themselves and report a bad one as a deferred error worded the same
// (kernels/index.hpp), raised at the next host read, so that no indexing op is a host sync.
void check_range(const char* op, const Tensor& index, int64_t size, int64_t dim) {
  if (index.numel() == 0 || index.device().is_cuda()) return;
  auto [lo, hi] = kernels::index_range(index);
  if (lo >= 0 && hi < size) return;
  int64_t bad = hi >= size ? hi : lo;
  throw IndexError(detail::cat_str("[", op, "] index ", bad, " is out of bounds for dim ", dim, " with size ", size));
}

// 0-dim tensors act as 1-element 1-D ones in gather/scatter, as in PyTorch.
Tensor at_least_1d(const Tensor& t) { return t.dim() == 0 ? t.reshape({1}) : t; }

Tensor gather_impl(const char* op, const Tensor& t, int64_t dim, const Tensor& index) {
  profiler::OpRecord prof(op, {&t, &index});
  check_index_dtype(op, index);
  check_same_device(op, t, index);
  Tensor tv = at_least_1d(t), iv = at_least_1d(index);
  EMBER_CHECK(tv.dim() == iv.dim(), ShapeError, "[", op, "] index ", describe(index),
              " must have as many dims as the input ", describe(t));
  dim = wrap_dim(dim, tv.dim(), tag(op).c_str());
  for (int64_t d = 0; d < tv.dim(); ++d)
    EMBER_CHECK(d == dim || iv.shape()[d] <= tv.shape()[d], ShapeError, "[", op, "] index ", iv.shape(),
                " is larger than the input ", tv.shape(), " in dim ", d, " (only dim ", dim, " may differ)");
  check_range(op, iv, tv.shape()[dim], dim);
  Tensor out = make_tensor(iv.shape(), t.dtype(), t.device());
  kernels::gather(out, tv, dim, iv, kernels::index_op(op));
  return out.view(index.shape());
}

Tensor scatter_impl(const char* op, const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src,
                    kernels::ScatterMode mode) {
  profiler::OpRecord prof(op, {&t, &index, &src});
  check_index_dtype(op, index);
  check_same_device(op, t, index);
  check_same_device(op, t, src);
  check_same_dtype(op, t, src);
  Tensor tv = at_least_1d(t), iv = at_least_1d(index), sv = at_least_1d(src);
  EMBER_CHECK(tv.dim() == iv.dim() && sv.dim() == iv.dim(), ShapeError, "[", op, "] self ", describe(t), ", index ",
              describe(index), " and src ", describe(src), " must have the same number of dims");
  dim = wrap_dim(dim, tv.dim(), tag(op).c_str());
  for (int64_t d = 0; d < tv.dim(); ++d) {
    EMBER_CHECK(iv.shape()[d] <= sv.shape()[d], ShapeError, "[", op, "] index ", iv.shape(), " is larger than src ",
                sv.shape(), " in dim ", d);
    EMBER_CHECK(d == dim || iv.shape()[d] <= tv.shape()[d], ShapeError, "[", op, "] index ", iv.shape(),
                " is larger than self ", tv.shape(), " in dim ", d, " (only dim ", dim, " may differ)");
  }
  check_range(op, iv, tv.shape()[dim], dim);
  Tensor out = tv.clone();
  kernels::scatter(out, dim, iv, sv, mode, 1, kernels::index_op(op));
  return out.view(t.shape());
}

Tensor index_select_impl(const char* op, const Tensor& t, int64_t dim, const Tensor& index) {
  profiler::OpRecord prof(op, {&t, &index});
  check_index_dtype(op, index);
  check_same_device(op, t, index);
  EMBER_CHECK(index.dim() <= 1, ShapeError, "[", op, "] index must be 0-d or 1-d, got ", describe(index));
  dim = wrap_dim(dim, t.dim(), tag(op).c_str());
  if (t.dim() == 0) {
    EMBER_CHECK(index.numel() == 1, ShapeError, "[", op, "] indexing a 0-dim tensor needs exactly one index, got ",
                describe(index));
    return index_select_impl(op, t.reshape({1}), 0, index.reshape({1})).reshape({});
  }
  check_range(op, index, t.shape()[dim], dim);
  Shape shape = t.shape();
  shape[dim] = index.numel();
  Tensor out = make_tensor(shape, t.dtype(), t.device());
  kernels::index_select(out, t.contiguous(), dim, index, kernels::index_op(op));
  return out;
}

// A scalar of t's dtype broadcast to `shape`: the src of a scatter that writes one value.
Tensor broadcast_value(const Scalar& value, const Tensor& t, const Shape& shape) {
  return full({}, value, TensorOptions{t.dtype(), t.device()}).expand(shape);
}

TensorOptions like(const Tensor& g) { return {.dtype = g.dtype(), .device = g.device()}; }

// The gradient of a scatter's src from the index-shaped gather of g: src may be larger than the index
// in any dim (its extra elements are unused and get zeros) and 0-dim where the index is 1-element 1-d.
Tensor fit_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  Tensor r = g.dim() == 0 ? g.reshape({1}) : g;
  Shape target = shape.empty() ? Shape{1} : shape;
  std::vector<int64_t> p;
  for (int64_t d = r.dim() - 1; d >= 0; --d) {
    p.push_back(0);
    p.push_back(target[d] - r.shape()[d]);
  }
  return pad(r, p).reshape(shape);
}

// Runs an op's forward with grad mode off: the reshapes, clones and expands inside are scaffolding.
// A result that is a reshaped view of the op's own fresh buffer is handed out as a plain tensor, so
// an in-place write into it is not taken for a write through a view (which would re-route its history).
template <class F>
Tensor untracked(F f) {
  autograd::NoGradGuard no_grad;
  Tensor r = f();
  return r.impl().view_base ? r.detach() : r;
}

Tensor index_add_impl(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src, const Scalar& alpha) {
  const char* op = "index_add";
  check_index_dtype(op, index);
  check_same_device(op, t, index);
  check_same_device(op, t, src);
  check_same_dtype(op, t, src);
  EMBER_CHECK(index.dim() <= 1, ShapeError, "[", op, "] index must be 0-d or 1-d, got ", describe(index));
  Tensor tv = at_least_1d(t), sv = at_least_1d(src);
  dim = wrap_dim(dim, tv.dim(), tag(op).c_str());
  EMBER_CHECK(sv.dim() == tv.dim(), ShapeError, "[", op, "] source ", describe(src), " must have as many dims as self ",
              describe(t));
  for (int64_t d = 0; d < tv.dim(); ++d)
    EMBER_CHECK(d == dim || sv.shape()[d] == tv.shape()[d], ShapeError, "[", op, "] source ", sv.shape(),
                " must match self ", tv.shape(), " in every dim but ", dim);
  EMBER_CHECK(sv.shape()[dim] == index.numel(), ShapeError, "[", op, "] ", index.numel(),
              " indices for a source of size ", sv.shape()[dim], " in dim ", dim);
  check_range(op, index, tv.shape()[dim], dim);
  // The 1-D index broadcast over src's shape turns index_add into a scatter_add with alpha.
  Shape istrides(sv.shape().size(), 0);
  istrides[dim] = index.dim() == 0 ? 0 : index.strides()[0];
  Tensor iv = make_view(index, sv.shape(), istrides, index.storage_offset());
  Tensor out = tv.clone();
  kernels::scatter(out, dim, iv, sv, kernels::ScatterMode::Add, alpha, kernels::IndexOp::kIndexAdd);
  return out.view(t.shape());
}

// take_along_dim as a gather from t broadcast to `shape` (t's shape but in dim) with the broadcast
// index; the gradient is scattered into that shape and summed down to t's.
Tensor take_along_dim_impl(const Tensor& t, int64_t dim, const Shape& shape, const Tensor& index) {
  Tensor out = untracked([&] { return gather_impl("take_along_dim", t.expand(shape), dim, index); });
  if (autograd::needs_grad(t))
    autograd::record("take_along_dim", {&out}, {&t}, {index}, [dim, shape, in = t.shape()](autograd::Ctx& c) {
      const Tensor& g = c.grad();
      return autograd::Grads{autograd::sum_to(zeros(shape, like(g)).scatter_add(dim, c.saved(0), g), in)};
    });
  return out;
}

}  // namespace

Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index) {
  Tensor out = untracked([&] { return index_select_impl("index_select", t, dim, index); });
  if (autograd::needs_grad(t))
    autograd::record("index_select", {&out}, {&t}, {index}, [dim, in = t.shape()](autograd::Ctx& c) {
      const Tensor& g = c.grad();
      return autograd::Grads{zeros(in, like(g)).index_add(dim, c.saved(0), g)};
    });
  return out;
}

Tensor gather(const Tensor& t, int64_t dim, const Tensor& index) {
  Tensor out = untracked([&] { return gather_impl("gather", t, dim, index); });
  if (autograd::needs_grad(t))
    autograd::record("gather", {&out}, {&t}, {index}, [dim, in = t.shape()](autograd::Ctx& c) {
      const Tensor& g = c.grad();
      return autograd::Grads{zeros(in, like(g)).scatter_add(dim, c.saved(0), g)};
    });
  return out;
}

Tensor scatter(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src) {
  Tensor out = untracked([&] { return scatter_impl("scatter", t, dim, index, src, kernels::ScatterMode::Assign); });
  // self: g where nothing was written; src: g at the positions each element went to.
  if (autograd::needs_grad({&t, &src}))
    autograd::record("scatter", {&out}, {&t, &src}, {index}, [dim, src_shape = src.shape()](autograd::Ctx& c) {
      const Tensor& g = c.grad();
      Tensor index = c.saved(0);
      return autograd::Grads{c.needs_grad(0) ? g.scatter(dim, index, 0.0) : Tensor(),
                             c.needs_grad(1) ? fit_to(g.gather(dim, index), src_shape) : Tensor()};
    });
  return out;
}

Tensor scatter(const Tensor& t, int64_t dim, const Tensor& index, const Scalar& value) {
  Tensor out = untracked([&] {
    return scatter_impl("scatter", t, dim, index, broadcast_value(value, t, index.shape()),
                        kernels::ScatterMode::Assign);
  });
  if (autograd::needs_grad(t))
    autograd::record("scatter", {&out}, {&t}, {index},
                     [dim](autograd::Ctx& c) { return autograd::Grads{c.grad().scatter(dim, c.saved(0), 0.0)}; });
  return out;
}

Tensor scatter_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src) {
  Tensor out = untracked([&] { return scatter_impl("scatter_add", t, dim, index, src, kernels::ScatterMode::Add); });
  if (autograd::needs_grad({&t, &src}))
    autograd::record("scatter_add", {&out}, {&t, &src}, {index}, [dim, src_shape = src.shape()](autograd::Ctx& c) {
      const Tensor& g = c.grad();
      return autograd::Grads{c.needs_grad(0) ? g : Tensor(),
                             c.needs_grad(1) ? fit_to(g.gather(dim, c.saved(0)), src_shape) : Tensor()};
    });
  return out;
}

Tensor index_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src, const Scalar& alpha) {
  Tensor out = untracked([&] { return index_add_impl(t, dim, index, src, alpha); });
  if (autograd::needs_grad({&t, &src}))
    autograd::record("index_add", {&out}, {&t, &src}, {index}, [dim, alpha, src_shape = src.shape()](autograd::Ctx& c) {
      const Tensor& g = c.grad();
      Tensor gs;
      if (c.needs_grad(1)) {
        gs = g.index_select(dim, c.saved(0)).reshape(src_shape);
        if (alpha.to_double() != 1.0) gs = gs * alpha;
      }
      return autograd::Grads{c.needs_grad(0) ? g : Tensor(), gs};
    });
  return out;
}

Tensor masked_fill(const Tensor& t, const Tensor& mask, const Scalar& value) {
  profiler::OpRecord prof("masked_fill", {&t, &mask});
  EMBER_CHECK(mask.dtype() == kBool, DTypeError, "[masked_fill] mask must be bool, got ", describe(mask));
  check_same_device("masked_fill", t, mask);
  Shape b = broadcast_shapes(t.shape(), mask.shape(), "[masked_fill]");
  EMBER_CHECK(b == t.shape(), ShapeError, "[masked_fill] mask ", describe(mask), " does not broadcast to the tensor ",
              describe(t));
  Tensor out = make_tensor(t.shape(), t.dtype(), t.device());
  kernels::masked_fill(out, t, mask.expand(t.shape()), value);
  if (autograd::needs_grad(t))
    autograd::record("masked_fill", {&out}, {&t}, {mask},
                     [](autograd::Ctx& c) { return autograd::Grads{c.grad().masked_fill(c.saved(0), 0.0)}; });
  return out;
}

Tensor masked_select(const Tensor& t, const Tensor& mask) {
  EMBER_CHECK(mask.dtype() == kBool, DTypeError, "[masked_select] mask must be bool, got ", describe(mask));
  check_same_device("masked_select", t, mask);
  Shape shape = broadcast_shapes(t.shape(), mask.shape(), "[masked_select]");
  Tensor out = untracked([&] {
    Tensor tb = t.expand(shape), mb = mask.expand(shape);
    Tensor r = make_tensor({kernels::count_true(mb)}, t.dtype(), t.device());
    kernels::masked_select(r, tb, mb);
    return r;
  });
  // The gradient goes back to the selected positions of the broadcast shape (found by selecting from
  // their flat indices); the engine sums it down to t's shape.
  if (autograd::needs_grad(t))
    autograd::record("masked_select", {&out}, {&t}, {mask}, [shape](autograd::Ctx& c) {
      const Tensor& g = c.grad();
      int64_t n = shape_numel(shape);
      Tensor m = c.saved(0).expand(shape).reshape({n});
      Tensor positions = arange(n, kI64, g.device()).masked_select(m);
      return autograd::Grads{zeros({n}, like(g)).index_add(0, positions, g).reshape(shape)};
    });
  return out;
}

Tensor take_along_dim(const Tensor& t, const Tensor& indices, int64_t dim) {
  const char* op = "take_along_dim";
  check_index_dtype(op, indices);
  EMBER_CHECK(t.dim() == indices.dim(), ShapeError, "[", op, "] input ", describe(t), " and indices ",
              describe(indices), " must have the same number of dims");
  if (t.dim() == 0) return take_along_dim_impl(t, dim, t.shape(), indices);
  dim = wrap_dim(dim, t.dim(), "[take_along_dim]");
  // Broadcast every dim but `dim`, where each side keeps its own size.
  Shape ts = t.shape(), is = indices.shape();
  ts[dim] = 1;
  is[dim] = 1;
  Shape b = broadcast_shapes(ts, is, "[take_along_dim]");
  ts = b;
  is = b;
  ts[dim] = t.shape()[dim];
  is[dim] = indices.shape()[dim];
  return take_along_dim_impl(t, dim, ts, indices.expand(is));
}

Tensor one_hot(const Tensor& indices, int64_t num_classes) {
  check_index_dtype("one_hot", indices);
  EMBER_CHECK(num_classes >= -1, ValueError, "[one_hot] num_classes must be -1 or non-negative, got ", num_classes);
  // On CUDA with num_classes given, the scatter below checks each class value (a deferred IndexError,
  // raised at the next host read): no host read. Inferring num_classes reads the maximum, as PyTorch.
  const bool deferred = indices.device().is_cuda() && num_classes >= 0;
  if (indices.numel() > 0 && !deferred) {
    auto [lo, hi] = kernels::index_range(indices);
    EMBER_CHECK(lo >= 0, IndexError, "[one_hot] class values must be non-negative, got ", lo);
    if (num_classes == -1) num_classes = hi + 1;
    EMBER_CHECK(hi < num_classes, IndexError, "[one_hot] class value ", hi, " is out of bounds for ", num_classes,
                " classes");
  }
  EMBER_CHECK(num_classes >= 0, ValueError, "[one_hot] cannot infer the number of classes from the empty tensor ",
              describe(indices));
  Shape shape = indices.shape();
  shape.push_back(num_classes);
  Tensor out = zeros(shape, TensorOptions{kI64, indices.device()});
  if (indices.numel() == 0) return out;
  Tensor iv = indices.unsqueeze(-1);
  kernels::scatter(out, out.dim() - 1, iv, broadcast_value(1, out, iv.shape()), kernels::ScatterMode::Assign, 1,
                   kernels::IndexOp::kOneHot);
  return out;
}

Tensor embedding(const Tensor& indices, const Tensor& weight, std::optional<int64_t> padding_idx) {
  profiler::OpRecord prof("embedding", {&indices, &weight});
  // The order changed to PyTorch's (indices first): a call written the old way fails loudly here.
  EMBER_CHECK(!(is_floating(indices.dtype()) && !is_floating(weight.dtype())), DTypeError,
              "[embedding] takes (input, weight) as F.embedding: integer indices first, then the float weight; got ",
              describe(indices), " and ", describe(weight));
  EMBER_CHECK(weight.dim() == 2, ShapeError, "[embedding] weight must be 2-d [num_embeddings, dim], got ",
              describe(weight));
  const int64_t n = weight.shape()[0];
  EMBER_CHECK(!padding_idx || (*padding_idx >= -n && *padding_idx < n), ValueError, "[embedding] padding_idx ",
              *padding_idx, " is out of range for ", n, " embeddings");
  check_index_dtype("embedding", indices);
  const int64_t width = weight.shape()[1];
  Tensor out = untracked([&] {
    Tensor rows = index_select_impl("embedding", weight, 0, indices.reshape({-1}));
    Shape shape = indices.shape();
    shape.push_back(width);
    return rows.view(shape);
  });
  // Each row's gradient is the sum of the output rows that picked it; the padding row gets none.
  std::optional<int64_t> pad;
  if (padding_idx) pad = *padding_idx < 0 ? *padding_idx + n : *padding_idx;
  if (autograd::needs_grad(weight))
    autograd::record("embedding", {&out}, {&weight}, {indices}, [pad, n, width](autograd::Ctx& c) {
      Tensor index = c.saved(0).reshape({-1});
      Tensor g = c.grad().reshape({-1, width});
      if (pad) g = g.masked_fill((index == *pad).unsqueeze(1), 0.0);
      // f16/bf16 rows add up in float32: a frequent token's sum rounded after each add would stop
      // growing once it is 256 times an increment (bf16).
      if (g.dtype() == kF16 || g.dtype() == kBF16)
        return autograd::Grads{zeros({n, width}, {.device = g.device()}).index_add(0, index, g.to(kF32)).to(g.dtype())};
      return autograd::Grads{zeros({n, width}, like(g)).index_add(0, index, g)};
    });
  return out;
}

}  // namespace ember
