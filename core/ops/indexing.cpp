// Advanced indexing (x.index / x.index_put_): the basic entries (integers, slices, None, Ellipsis)
// become views; the tensor entries become one flat position per picked element of the contiguous
// input, read with index_select and written with index_add (accumulate) or scatter.
#include "core/ops/indexing.hpp"

#include <algorithm>

#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/index.hpp"
#include "core/ops/reduce.hpp"
#include "core/ops/shape.hpp"
#include "kernels/index.hpp"

namespace ember {
namespace {

using indexing::TensorIndex;
using Kind = TensorIndex::Kind;

// t after the basic entries, and the tensor entries as (dim of that view, i64 index in range).
struct Plan {
  Tensor view;
  std::vector<int64_t> dims;
  std::vector<Tensor> indices;
};

std::string entries_str(const std::vector<TensorIndex>& idx) {
  std::string s = "{";
  for (size_t i = 0; i < idx.size(); ++i) {
    if (i) s += ", ";
    switch (idx[i].kind()) {
      case Kind::Integer:
        s += std::to_string(idx[i].integer());
        break;
      case Kind::Slice:
        s += "Slice";
        break;
      case Kind::None:
        s += "None";
        break;
      case Kind::Ellipsis:
        s += "...";
        break;
      case Kind::Tensor:
        s += describe(idx[i].tensor());
        break;
    }
  }
  return s + "}";
}

Plan make_plan(const char* op, const Tensor& t, const std::vector<TensorIndex>& idx) {
  EMBER_CHECK(t.defined(), ValueError, "[", op, "] the tensor is undefined");
  int64_t consumed = 0, ellipses = 0;
  for (const TensorIndex& i : idx) {
    if (i.kind() == Kind::Integer || i.kind() == Kind::Slice) ++consumed;
    if (i.kind() == Kind::Ellipsis) ++ellipses;
    if (i.kind() == Kind::Tensor) {
      const Tensor& x = i.tensor();
      EMBER_CHECK(x.defined(), ValueError, "[", op, "] an index tensor is undefined");
      EMBER_CHECK(x.dtype() == kBool || x.dtype() == kI64 || x.dtype() == kI32, DTypeError, "[", op,
                  "] index tensors must be int64, int32 or bool, got ", describe(x));
      consumed += x.dtype() == kBool ? x.dim() : 1;
    }
  }
  EMBER_CHECK(ellipses <= 1, IndexError, "[", op, "] an index may hold one Ellipsis, got ", entries_str(idx));
  EMBER_CHECK(consumed <= t.dim(), IndexError, "[", op, "] too many indices for ", describe(t), ": ", entries_str(idx),
              " index ", consumed, " dims");
  Plan p{t, {}, {}};
  int64_t d = 0;
  for (const TensorIndex& i : idx) {
    switch (i.kind()) {
      case Kind::Ellipsis:
        d += t.dim() - consumed;
        break;
      case Kind::None:
        p.view = p.view.unsqueeze(d++);
        break;
      case Kind::Integer:
        p.view = p.view.select(d, i.integer());
        break;
      case Kind::Slice: {
        const indexing::Slice& s = i.slice();
        EMBER_CHECK(s.step > 0, ValueError, "[", op, "] slice step must be positive, got ", s.step);
        p.view = p.view.slice(d++, s.start, s.stop, s.step);
        break;
      }
      case Kind::Tensor: {
        const Tensor& x = i.tensor();
        EMBER_CHECK(x.device() == t.device(), DeviceError, "[", op, "] index ", describe(x), " and tensor ",
                    describe(t), " are on different devices");
        if (x.dtype() == kBool) {
          EMBER_CHECK(x.dim() > 0, IndexError, "[", op, "] a 0-dim bool index is not supported, got ", describe(x));
          for (int64_t j = 0; j < x.dim(); ++j)
            EMBER_CHECK(x.size(j) == p.view.size(d + j), IndexError, "[", op, "] mask ", describe(x),
                        " does not match the indexed dims of ", describe(t), " at mask dim ", j, " (size ",
                        p.view.size(d + j), ")");
          Tensor nz = nonzero(x);
          for (int64_t j = 0; j < x.dim(); ++j) {
            p.dims.push_back(d + j);
            p.indices.push_back(nz.select(1, j));
          }
          d += x.dim();
          break;
        }
        const int64_t n = p.view.size(d);
        Tensor ix = x.to(kI64);
        if (ix.numel() > 0 && ix.device().is_cuda()) {
          // No host read on CUDA: a kernel checks the range (a bad index is a deferred IndexError worded
          // as below, raised at the next host read) and negative indices wrap on the device. The kernels
          // reading and writing the flat positions check those too, so a bad one touches nothing.
          ix = ix.contiguous();
          kernels::check_index_range(ix, -n, n, std::nullopt,
                                     {.a1 = n, .a2 = d, .a3 = static_cast<int64_t>(kernels::index_op(op))});
          ix = where(ix < Scalar(0), ix + Scalar(n), ix);
        } else if (ix.numel() > 0) {
          const int64_t lo = amin(ix).item<int64_t>(), hi = amax(ix).item<int64_t>();
          EMBER_CHECK(lo >= -n && hi < n, IndexError, "[", op, "] index ", hi >= n ? hi : lo,
                      " is out of bounds for dim ", d, " with size ", n, " of ", describe(p.view));
          if (lo < 0) ix = (ix + n) % n;
        }
        p.dims.push_back(d++);
        p.indices.push_back(ix);
        break;
      }
    }
  }
  return p;
}

// The picked elements as flat positions into base.contiguous(): shape [B..., rest...] with B the
// broadcast index shape and rest the view's other dims; `perm` moves B to where PyTorch puts it.
struct Positions {
  Tensor flat;
  Shape shape;  // [B..., rest...]
  Shape perm;   // from [B..., rest...] to the result's order
};

Positions positions(const Plan& p, const Tensor& base) {
  std::vector<Tensor> ix = broadcast_tensors(p.indices);
  const Shape b = ix.empty() ? Shape{} : ix[0].shape();
  std::vector<int64_t> rest;
  for (int64_t d = 0; d < p.view.dim(); ++d)
    if (std::find(p.dims.begin(), p.dims.end(), d) == p.dims.end()) rest.push_back(d);
  const int64_t nb = static_cast<int64_t>(b.size()), nr = static_cast<int64_t>(rest.size());
  Positions r;
  r.shape = b;
  for (int64_t d : rest) r.shape.push_back(p.view.size(d));
  const TensorOptions i64{.dtype = kI64, .device = base.device()};
  Tensor pos = full(Shape(nb + nr, 1), p.view.storage_offset() - base.storage_offset(), i64);
  for (size_t j = 0; j < ix.size(); ++j) {
    Shape s = b;
    s.resize(nb + nr, 1);
    pos = pos + ix[j].reshape(s) * p.view.stride(p.dims[j]);
  }
  for (int64_t i = 0; i < nr; ++i) {
    Shape s(nb + nr, 1);
    s[nb + i] = p.view.size(rest[i]);
    pos = pos + arange(p.view.size(rest[i]), kI64, base.device()).reshape(s) * p.view.stride(rest[i]);
  }
  r.flat = pos.expand(r.shape).reshape({-1});
  // Adjacent tensor indices keep their place (after the `first` view dims before them).
  bool adjacent = true;
  for (size_t j = 1; j < p.dims.size(); ++j) adjacent &= p.dims[j] == p.dims[j - 1] + 1;
  const int64_t first = adjacent && !p.dims.empty() ? p.dims[0] : 0;
  for (int64_t i = 0; i < first; ++i) r.perm.push_back(nb + i);
  for (int64_t i = 0; i < nb; ++i) r.perm.push_back(i);
  for (int64_t i = first; i < nr; ++i) r.perm.push_back(nb + i);
  return r;
}

}  // namespace

Tensor nonzero(const Tensor& t) {
  EMBER_CHECK(t.defined(), ValueError, "[nonzero] the tensor is undefined");
  // The count decides the shape, so the mask comes to the host (a sync on CUDA, as PyTorch's).
  const std::vector<double> v = t.to(kCPU).to_vector<double>();
  std::vector<int64_t> coords;
  const int64_t nd = t.dim();
  int64_t count = 0;  // a 0-dim tensor that is not 0 gives one row of no coordinates
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) {
    if (v[i] == 0) continue;
    ++count;
    const size_t at = coords.size();
    coords.resize(at + nd);
    for (int64_t d = nd - 1, r = i; d >= 0; --d) {
      coords[at + d] = r % t.size(d);
      r /= t.size(d);
    }
  }
  return tensor(coords, Shape{count, nd}).to(t.device());
}

Tensor index(const Tensor& t, const std::vector<indexing::TensorIndex>& indices) {
  Plan p = make_plan("index", t, indices);
  if (p.indices.empty()) return p.view;
  const Tensor base = t.contiguous();
  Plan q = base.is_same(t) ? p : make_plan("index", base, indices);
  Positions r = positions(q, base);
  return index_select(base.reshape({-1}), 0, r.flat).reshape(r.shape).permute(r.perm);
}

Tensor index_put(const Tensor& t, const std::vector<indexing::TensorIndex>& indices, const Tensor& values,
                 bool accumulate) {
  EMBER_CHECK(values.defined(), ValueError, "[index_put] values are undefined");
  EMBER_CHECK(values.device() == t.device(), DeviceError, "[index_put] values ", describe(values), " and tensor ",
              describe(t), " are on different devices");
  const Tensor base = t.contiguous();
  Plan p = make_plan("index_put", base, indices);
  Positions r = positions(p, base);
  Shape result;  // the shape of t[indices]
  for (int64_t i : r.perm) result.push_back(r.shape[i]);
  bool fits = values.dim() <= static_cast<int64_t>(result.size());
  for (int64_t i = 1; fits && i <= values.dim(); ++i) {
    const int64_t s = values.size(-i);
    fits = s == 1 || s == result[result.size() - i];
  }
  EMBER_CHECK(fits, ShapeError, "[index_put] values ", describe(values), " do not broadcast to the indexed shape ",
              result, " of ", describe(t));
  Shape inverse(static_cast<int64_t>(r.perm.size()), 0);
  for (size_t i = 0; i < r.perm.size(); ++i) inverse[r.perm[i]] = static_cast<int64_t>(i);
  Tensor v = values.to(t.dtype()).expand(result).permute(inverse).reshape({-1});
  Tensor flat = base.reshape({-1});
  Tensor out = accumulate ? index_add(flat, 0, r.flat, v) : scatter(flat, 0, r.flat, v);
  return out.reshape(t.shape());
}

Tensor& index_put_(Tensor& t, const std::vector<indexing::TensorIndex>& indices, const Tensor& values,
                   bool accumulate) {
  Plan p = make_plan("index_put_", t, indices);
  if (p.indices.empty()) {  // a view of t: write through it
    Tensor view = p.view;
    Tensor v = values.to(t.dtype());
    view.copy_(accumulate ? view + v : v);
    return t;
  }
  return t.copy_(index_put(t, indices, values, accumulate));
}

Tensor& index_put_(Tensor& t, const std::vector<indexing::TensorIndex>& indices, const Scalar& value, bool accumulate) {
  return index_put_(t, indices, full({}, value, {.dtype = t.dtype(), .device = t.device()}), accumulate);
}

Tensor Tensor::index(const std::vector<indexing::TensorIndex>& indices) const { return ember::index(*this, indices); }
Tensor& Tensor::index_put_(const std::vector<indexing::TensorIndex>& indices, const Tensor& values, bool accumulate) {
  return ember::index_put_(*this, indices, values, accumulate);
}
Tensor& Tensor::index_put_(const std::vector<indexing::TensorIndex>& indices, const Scalar& value, bool accumulate) {
  return ember::index_put_(*this, indices, value, accumulate);
}

}  // namespace ember
