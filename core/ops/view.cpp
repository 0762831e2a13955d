// View ops: new shape/stride/offset metadata over the same storage, no copies (reshape copies only
// when no view can express the result).
#include <algorithm>
#include <numeric>

#include "core/autograd.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/shape.hpp"
#include "core/profiler.hpp"

namespace ember {
namespace {

// Records a view op when its input requires grad: the backward maps the view's gradient `g` to the
// input's with `back(g)`.
template <class Back>
Tensor recorded(const char* op, const Tensor& in, Tensor out, Back back) {
  if (autograd::needs_grad(in))
    autograd::record(op, {&out}, {&in}, {}, [back](autograd::Ctx& c) { return autograd::Grads{back(c.grad())}; });
  return out;
}

// Backward of a view that picks some of its input's elements: zeros with g written through the same view.
template <class Pick>
auto pick_back(const Shape& in, Pick pick) {
  return [in, pick](const Tensor& g) {
    Tensor r = zeros(in, {.dtype = g.dtype(), .device = g.device()});
    pick(r).copy_(g);
    return r;
  };
}
auto reshape_back(const Shape& in) {
  return [in](const Tensor& g) { return g.reshape(in); };
}

// Resolves a single -1 in a requested shape and checks the element count.
Shape infer_shape(const Shape& req, int64_t numel, const char* op, const Tensor& t) {
  Shape s = req;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      EMBER_CHECK(infer < 0, ShapeError, op, " only one dimension can be inferred, got ", req);
      infer = static_cast<int64_t>(i);
    } else {
      EMBER_CHECK(s[i] >= 0, ShapeError, op, " invalid shape ", req);
      known *= s[i];
    }
  }
  if (infer >= 0) {
    EMBER_CHECK(known != 0 && numel % known == 0, ShapeError, op, " shape ", req, " is invalid for input ",
                describe(t));
    s[infer] = numel / known;
  }
  EMBER_CHECK(shape_numel(s) == numel, ShapeError, op, " shape ", req, " is invalid for input ", describe(t));
  return s;
}

// Strides for viewing (shape, strides) as new_shape without copying, if possible (PyTorch's computeStride).
std::optional<Shape> view_strides(const Shape& shape, const Shape& strides, const Shape& new_shape) {
  Shape out(new_shape.size(), 0);
  int64_t numel = shape_numel(shape);
  if (numel == 0 || shape.empty()) {
    return contiguous_strides(new_shape);
  }
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_base_stride = strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

}  // namespace

Tensor Tensor::view(const Shape& req) const {
  profiler::OpRecord prof("view", {this});
  Shape s = infer_shape(req, numel(), "[view]", *this);
  auto st = view_strides(shape(), strides(), s);
  EMBER_CHECK(st.has_value(), ShapeError, "[view] shape ", req, " is incompatible with the strides of ",
              describe(*this), "; use reshape (which copies) or contiguous() first");
  return recorded("view", *this, make_view(*this, s, *st, storage_offset()), reshape_back(shape()));
}

Tensor Tensor::reshape(const Shape& req) const {
  profiler::OpRecord prof("reshape", {this});
  Shape s = infer_shape(req, numel(), "[reshape]", *this);
  if (auto st = view_strides(shape(), strides(), s))
    return recorded("reshape", *this, make_view(*this, s, *st, storage_offset()), reshape_back(shape()));
  return clone().view(s);
}

Tensor Tensor::permute(const Shape& dims) const {
  profiler::OpRecord prof("permute", {this});
  EMBER_CHECK(static_cast<int64_t>(dims.size()) == dim(), ShapeError, "[permute] got ", dims.size(), " dims for ",
              describe(*this));
  Shape s(dims.size(), 0), st(dims.size(), 0), inverse(dims.size(), 0);
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], dim(), "[permute]");
    EMBER_CHECK(!seen[d], ShapeError, "[permute] repeated dim in ", dims);
    seen[d] = true;
    s[i] = shape()[d];
    st[i] = strides()[d];
    inverse[d] = static_cast<int64_t>(i);
  }
  return recorded("permute", *this, make_view(*this, s, st, storage_offset()),
                  [inverse](const Tensor& g) { return g.permute(inverse); });
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  profiler::OpRecord prof("transpose", {this});
  if (dim() == 0) return *this;
  d0 = wrap_dim(d0, dim(), "[transpose]");
  d1 = wrap_dim(d1, dim(), "[transpose]");
  Shape s = shape(), st = strides();
  std::swap(s[d0], s[d1]);
  std::swap(st[d0], st[d1]);
  return recorded("transpose", *this, make_view(*this, s, st, storage_offset()),
                  [d0, d1](const Tensor& g) { return g.transpose(d0, d1); });
}

Tensor Tensor::t() const {
  EMBER_CHECK(dim() <= 2, ShapeError, "[t] expects a tensor with <= 2 dims, got ", describe(*this));
  return dim() < 2 ? *this : transpose(0, 1);
}

Tensor Tensor::squeeze() const {
  profiler::OpRecord prof("squeeze", {this});
  Shape s, st;
  for (int64_t i = 0; i < dim(); ++i)
    if (shape()[i] != 1) {
      s.push_back(shape()[i]);
      st.push_back(strides()[i]);
    }
  return recorded("squeeze", *this, make_view(*this, s, st, storage_offset()), reshape_back(shape()));
}

Tensor Tensor::squeeze(int64_t d) const {
  profiler::OpRecord prof("squeeze", {this});
  if (dim() == 0) return *this;
  d = wrap_dim(d, dim(), "[squeeze]");
  if (shape()[d] != 1) return *this;
  Shape s = shape(), st = strides();
  s.erase(d);
  st.erase(d);
  return recorded("squeeze", *this, make_view(*this, s, st, storage_offset()), reshape_back(shape()));
}

Tensor Tensor::unsqueeze(int64_t d) const {
  profiler::OpRecord prof("unsqueeze", {this});
  d = wrap_dim(d, dim() + 1, "[unsqueeze]");
  Shape s = shape(), st = strides();
  int64_t stride = d < dim() ? shape()[d] * strides()[d] : 1;
  s.insert(d, 1);
  st.insert(d, stride);
  return recorded("unsqueeze", *this, make_view(*this, s, st, storage_offset()), reshape_back(shape()));
}

Tensor Tensor::expand(const Shape& req) const {
  profiler::OpRecord prof("expand", {this});
  if (req == shape()) return *this;
  EMBER_CHECK(req.size() >= shape().size(), ShapeError, "[expand] cannot expand ", describe(*this), " to ", req);
  size_t lead = req.size() - shape().size();
  Shape s(req.size(), 0), st(req.size(), 0);
  for (size_t i = 0; i < req.size(); ++i) {
    if (i < lead) {
      EMBER_CHECK(req[i] >= 0, ShapeError, "[expand] invalid size ", req[i], " in ", req);
      s[i] = req[i];
      st[i] = 0;
      continue;
    }
    int64_t have = shape()[i - lead];
    int64_t want = req[i] == -1 ? have : req[i];
    EMBER_CHECK(have == want || have == 1, ShapeError, "[expand] cannot expand ", describe(*this), " to ", req,
                " (dim ", i, ": ", have, " vs ", want, ")");
    s[i] = want;
    st[i] = have == want ? strides()[i - lead] : 0;
  }
  return recorded("expand", *this, make_view(*this, s, st, storage_offset()),
                  [in = shape()](const Tensor& g) { return autograd::sum_to(g, in); });
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  profiler::OpRecord prof("narrow", {this});
  EMBER_CHECK(dim() > 0, ShapeError, "[narrow] cannot narrow a 0-dim tensor");
  d = wrap_dim(d, dim(), "[narrow]");
  int64_t n = shape()[d];
  if (start < 0) start += n;
  EMBER_CHECK(start >= 0 && length >= 0 && start + length <= n, IndexError, "[narrow] start ", start, " + length ",
              length, " exceeds dim ", d, " of size ", n, " in ", describe(*this));
  Shape s = shape();
  s[d] = length;
  return recorded("narrow", *this, make_view(*this, s, strides(), storage_offset() + start * strides()[d]),
                  pick_back(shape(), [d, start, length](const Tensor& r) { return r.narrow(d, start, length); }));
}

Tensor Tensor::slice(int64_t d, std::optional<int64_t> start, std::optional<int64_t> end, int64_t step) const {
  profiler::OpRecord prof("slice", {this});
  EMBER_CHECK(dim() > 0, ShapeError, "[slice] cannot slice a 0-dim tensor");
  EMBER_CHECK(step > 0, ValueError, "[slice] step must be positive, got ", step);
  d = wrap_dim(d, dim(), "[slice]");
  int64_t n = shape()[d];
  auto clampi = [n](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + n : v, 0, n); };
  int64_t b = clampi(start.value_or(0)), e = clampi(end.value_or(n));
  int64_t len = e > b ? (e - b + step - 1) / step : 0;
  Shape s = shape(), st = strides();
  s[d] = len;
  st[d] *= step;
  return recorded("slice", *this, make_view(*this, s, st, storage_offset() + b * strides()[d]),
                  pick_back(shape(), [d, b, e, step](const Tensor& r) { return r.slice(d, b, e, step); }));
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  profiler::OpRecord prof("select", {this});
  EMBER_CHECK(dim() > 0, IndexError, "[select] cannot index a 0-dim tensor");
  d = wrap_dim(d, dim(), "[select]");
  int64_t n = shape()[d];
  EMBER_CHECK(index >= -n && index < n, IndexError, "[select] index ", index, " is out of bounds for dim ", d,
              " with size ", n);
  if (index < 0) index += n;
  Shape s = shape(), st = strides();
  s.erase(d);
  st.erase(d);
  return recorded("select", *this, make_view(*this, s, st, storage_offset() + index * strides()[d]),
                  pick_back(shape(), [d, index](const Tensor& r) { return r.select(d, index); }));
}

Tensor Tensor::flatten(int64_t start, int64_t end) const {
  profiler::OpRecord prof("flatten", {this});
  if (dim() == 0) return reshape({1});
  start = wrap_dim(start, dim(), "[flatten]");
  end = wrap_dim(end, dim(), "[flatten]");
  EMBER_CHECK(start <= end, ShapeError, "[flatten] start_dim ", start, " comes after end_dim ", end);
  Shape s;
  for (int64_t i = 0; i < start; ++i) s.push_back(shape()[i]);
  int64_t m = 1;
  for (int64_t i = start; i <= end; ++i) m *= shape()[i];
  s.push_back(m);
  for (int64_t i = end + 1; i < dim(); ++i) s.push_back(shape()[i]);
  return reshape(s);
}

Tensor Tensor::unflatten(int64_t d, const Shape& sizes) const {
  profiler::OpRecord prof("unflatten", {this});
  d = wrap_dim(d, dim(), "[unflatten]");
  Shape inner = infer_shape(sizes, shape()[d], "[unflatten]", *this);
  Shape s;
  for (int64_t i = 0; i < d; ++i) s.push_back(shape()[i]);
  for (int64_t v : inner) s.push_back(v);
  for (int64_t i = d + 1; i < dim(); ++i) s.push_back(shape()[i]);
  return view(s);
}

Tensor Tensor::as_strided(const Shape& size, const Shape& stride, std::optional<int64_t> offset) const {
  profiler::OpRecord prof("as_strided", {this});
  EMBER_CHECK(size.size() == stride.size(), ShapeError, "[as_strided] size ", size, " and stride ", stride,
              " differ in length");
  int64_t off = offset.value_or(storage_offset());
  EMBER_CHECK(off >= 0, IndexError, "[as_strided] negative storage offset ", off);
  int64_t last = off;
  for (size_t i = 0; i < size.size(); ++i) {
    EMBER_CHECK(size[i] >= 0 && stride[i] >= 0, ShapeError, "[as_strided] negative size or stride in ", size, " / ",
                stride);
    if (size[i] == 0) last = -1;
    if (last >= 0) last += (size[i] - 1) * stride[i];
  }
  int64_t cap = static_cast<int64_t>(impl().storage->nbytes() / element_size());
  EMBER_CHECK(last < cap, IndexError, "[as_strided] size ", size, " stride ", stride, " offset ", off,
              " reaches element ", last, " of a storage of ", cap);
  Tensor out = make_view(*this, size, stride, off);
  return recorded("as_strided", *this, out,
                  [in = autograd::Strided(*this), o = autograd::Strided(out)](const Tensor& g) {
                    return autograd::as_strided_backward(g, in, o);
                  });
}

Tensor broadcast_to(const Tensor& t, const Shape& shape) { return t.expand(shape); }

std::vector<Tensor> broadcast_tensors(const std::vector<Tensor>& ts) {
  Shape s;
  for (const Tensor& t : ts) s = broadcast_shapes(s, t.shape(), "[broadcast_tensors]");
  std::vector<Tensor> out;
  for (const Tensor& t : ts) out.push_back(t.expand(s));
  return out;
}

}  // namespace ember
