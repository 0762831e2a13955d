// Indexing op builders: argument, shape and index-range checks (PyTorch's rules), output allocation,
// then the kernels of kernels/index.hpp. Indices must lie in [0, size): negative ones are errors.
#include "core/ops/index.hpp"

#include <string>

#include "core/ops/creation.hpp"
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

// Every index must lie in [0, size); names the op, the first bad extreme and the size.
void check_range(const char* op, const Tensor& index, int64_t size, int64_t dim) {
  if (index.numel() == 0) return;
  auto [lo, hi] = kernels::index_range(index);
  if (lo >= 0 && hi < size) return;
  int64_t bad = hi >= size ? hi : lo;
  throw IndexError(detail::cat_str("[", op, "] index ", bad, " is out of bounds for dim ", dim, " with size ", size));
}

// 0-dim tensors act as 1-element 1-D ones in gather/scatter, as in PyTorch.
Tensor at_least_1d(const Tensor& t) { return t.dim() == 0 ? t.reshape({1}) : t; }

Tensor gather_impl(const char* op, const Tensor& t, int64_t dim, const Tensor& index) {
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
  kernels::gather(out, tv, dim, iv);
  return out.view(index.shape());
}

Tensor scatter_impl(const char* op, const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src,
                    kernels::ScatterMode mode) {
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
  kernels::scatter(out, dim, iv, sv, mode);
  return out.view(t.shape());
}

Tensor index_select_impl(const char* op, const Tensor& t, int64_t dim, const Tensor& index) {
  check_index_dtype(op, index);
  check_same_device(op, t, index);
  EMBER_CHECK(index.dim() <= 1, ShapeError, "[", op, "] index must be 0-d or 1-d, got ", describe(index));
  dim = wrap_dim(dim, t.dim(), tag(op).c_str());
  if (t.dim() == 0) {
    EMBER_CHECK(index.numel() == 1, ShapeError, "[", op, "] indexing a 0-dim tensor needs exactly one index, got ",
                describe(index));
    check_range(op, index, 1, 0);
    return t.clone();
  }
  check_range(op, index, t.shape()[dim], dim);
  Shape shape = t.shape();
  shape[dim] = index.numel();
  Tensor out = make_tensor(shape, t.dtype(), t.device());
  kernels::index_select(out, t.contiguous(), dim, index);
  return out;
}

// A scalar of t's dtype broadcast to `shape`: the src of a scatter that writes one value.
Tensor broadcast_value(const Scalar& value, const Tensor& t, const Shape& shape) {
  return full({}, value, TensorOptions{t.dtype(), t.device()}).expand(shape);
}

}  // namespace

Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index) {
  return index_select_impl("index_select", t, dim, index);
}

Tensor gather(const Tensor& t, int64_t dim, const Tensor& index) { return gather_impl("gather", t, dim, index); }

Tensor scatter(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src) {
  return scatter_impl("scatter", t, dim, index, src, kernels::ScatterMode::Assign);
}

Tensor scatter(const Tensor& t, int64_t dim, const Tensor& index, const Scalar& value) {
  return scatter_impl("scatter", t, dim, index, broadcast_value(value, t, index.shape()), kernels::ScatterMode::Assign);
}

Tensor scatter_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src) {
  return scatter_impl("scatter_add", t, dim, index, src, kernels::ScatterMode::Add);
}

Tensor index_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src, const Scalar& alpha) {
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
  kernels::scatter(out, dim, iv, sv, kernels::ScatterMode::Add, alpha);
  return out.view(t.shape());
}

Tensor masked_fill(const Tensor& t, const Tensor& mask, const Scalar& value) {
  EMBER_CHECK(mask.dtype() == kBool, DTypeError, "[masked_fill] mask must be bool, got ", describe(mask));
  check_same_device("masked_fill", t, mask);
  Shape b = broadcast_shapes(t.shape(), mask.shape(), "[masked_fill]");
  EMBER_CHECK(b == t.shape(), ShapeError, "[masked_fill] mask ", describe(mask), " does not broadcast to the tensor ",
              describe(t));
  Tensor out = make_tensor(t.shape(), t.dtype(), t.device());
  kernels::masked_fill(out, t, mask.expand(t.shape()), value);
  return out;
}

Tensor masked_select(const Tensor& t, const Tensor& mask) {
  EMBER_CHECK(mask.dtype() == kBool, DTypeError, "[masked_select] mask must be bool, got ", describe(mask));
  check_same_device("masked_select", t, mask);
  Shape shape = broadcast_shapes(t.shape(), mask.shape(), "[masked_select]");
  Tensor tb = t.expand(shape), mb = mask.expand(shape);
  Tensor out = make_tensor({kernels::count_true(mb)}, t.dtype(), t.device());
  kernels::masked_select(out, tb, mb);
  return out;
}

Tensor take_along_dim(const Tensor& t, const Tensor& indices, int64_t dim) {
  const char* op = "take_along_dim";
  check_index_dtype(op, indices);
  EMBER_CHECK(t.dim() == indices.dim(), ShapeError, "[", op, "] input ", describe(t), " and indices ",
              describe(indices), " must have the same number of dims");
  if (t.dim() == 0) return gather_impl(op, t, dim, indices);
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
  return gather_impl(op, t.expand(ts), dim, indices.expand(is));
}

Tensor one_hot(const Tensor& indices, int64_t num_classes) {
  check_index_dtype("one_hot", indices);
  EMBER_CHECK(num_classes >= -1, ValueError, "[one_hot] num_classes must be -1 or non-negative, got ", num_classes);
  if (indices.numel() > 0) {
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
  kernels::scatter(out, out.dim() - 1, iv, broadcast_value(1, out, iv.shape()), kernels::ScatterMode::Assign);
  return out;
}

Tensor embedding(const Tensor& weight, const Tensor& indices, std::optional<int64_t> padding_idx) {
  EMBER_CHECK(weight.dim() == 2, ShapeError, "[embedding] weight must be 2-d [num_embeddings, dim], got ",
              describe(weight));
  const int64_t n = weight.shape()[0];
  EMBER_CHECK(!padding_idx || (*padding_idx >= -n && *padding_idx < n), ValueError, "[embedding] padding_idx ",
              *padding_idx, " is out of range for ", n, " embeddings");
  check_index_dtype("embedding", indices);
  Tensor rows = index_select_impl("embedding", weight, 0, indices.reshape({-1}));
  Shape shape = indices.shape();
  shape.push_back(weight.shape()[1]);
  return rows.view(shape);
}

}  // namespace ember
