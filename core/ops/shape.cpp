// Shape ops that copy (cat, stack, flip, repeat, pad) and the splitting views (split, chunk). The copies
// are kernels::copy calls from (strided, broadcast or reversed) views into slices of a fresh output;
// the backward formulas slice, flip, sum or crop the output's gradient back.
#include "core/ops/shape.hpp"

#include <algorithm>
#include <string>

#include "core/autograd.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/reduce.hpp"
#include "core/profiler.hpp"
#include "kernels/elementwise.hpp"

namespace ember {
namespace {

std::string tag(const char* op) { return std::string("[") + op + "]"; }

Tensor cat_impl(const char* op, const std::vector<Tensor>& ts, int64_t dim) {
  profiler::OpRecord prof(op, std::span<const Tensor>(ts));
  EMBER_CHECK(!ts.empty(), ValueError, "[", op, "] expected a non-empty list of tensors");
  DType dt = ts[0].dtype();
  const Tensor* ref = nullptr;  // the first tensor that takes part in the shape checks
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& t = ts[i];
    EMBER_CHECK(t.device() == ts[0].device(), DeviceError, "[", op, "] expected all tensors on one device, got ",
                describe(ts[0]), " and ", describe(t), " (tensor ", i, ")");
    EMBER_CHECK(t.dim() > 0, ShapeError, "[", op, "] zero-dimensional tensor (at position ", i,
                ") cannot be concatenated");
    dt = promote_types(dt, t.dtype());
    // PyTorch's legacy rule: 1-d empty tensors are skipped whatever the others' shapes.
    if (!ref && !(t.dim() == 1 && t.numel() == 0)) ref = &t;
  }
  if (!ref) return make_tensor({0}, dt, ts[0].device());
  dim = wrap_dim(dim, ref->dim(), tag(op).c_str());
  Shape shape = ref->shape();
  shape[dim] = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& t = ts[i];
    if (t.dim() == 1 && t.numel() == 0) continue;
    EMBER_CHECK(t.dim() == ref->dim(), ShapeError, "[", op, "] tensors must have the same number of dims: got ",
                describe(*ref), " and ", describe(t), " (tensor ", i, ")");
    for (int64_t d = 0; d < t.dim(); ++d)
      EMBER_CHECK(d == dim || t.shape()[d] == ref->shape()[d], ShapeError, "[", op, "] sizes must match except in dim ",
                  dim, ": got ", ref->shape(), " and ", t.shape(), " (tensor ", i, ")");
    shape[dim] += t.shape()[dim];
  }
  Tensor out = make_tensor(shape, dt, ref->device());
  int64_t offset = 0;
  for (const Tensor& t : ts) {
    if (t.dim() == 1 && t.numel() == 0) continue;
    int64_t n = t.shape()[dim];
    if (t.numel() > 0) kernels::copy(out.narrow(dim, offset, n), t);
    offset += n;
  }
  return out;
}

// pad without its argument checks or recording.
Tensor pad_impl(const Tensor& t, const std::vector<int64_t>& pad, double value) {
  Shape shape = t.shape();
  Tensor src = t;
  bool grows = false;
  for (size_t i = 0; i < pad.size() / 2; ++i) {
    const int64_t d = t.dim() - 1 - static_cast<int64_t>(i);
    const int64_t before = pad[2 * i], after = pad[2 * i + 1], n = t.shape()[d];
    const int64_t kept = n + std::min<int64_t>(before, 0) + std::min<int64_t>(after, 0);
    EMBER_CHECK(kept >= 0 && n + before + after >= 0, ShapeError, "[pad] padding (", before, ", ", after,
                ") makes dim ", d, " of ", describe(t), " negative");
    shape[d] = n + before + after;
    grows = grows || before > 0 || after > 0;
    // Negative amounts crop the input; positive ones leave a border in the output.
    src = src.narrow(d, std::max<int64_t>(-before, 0), kept);
  }
  Tensor out = make_tensor(shape, t.dtype(), t.device());
  if (out.numel() == 0) return out;
  if (grows) kernels::fill(out, Scalar(value));
  if (src.numel() == 0) return out;
  Tensor dst = out;
  for (size_t i = 0; i < pad.size() / 2; ++i) {
    const int64_t d = t.dim() - 1 - static_cast<int64_t>(i);
    dst = dst.narrow(d, std::max<int64_t>(pad[2 * i], 0), src.shape()[d]);
  }
  kernels::copy(dst, src);
  return out;
}

// The inputs as the pointers autograd::record takes.
std::vector<const Tensor*> pointers(const std::vector<Tensor>& ts) {
  std::vector<const Tensor*> p;
  p.reserve(ts.size());
  for (const Tensor& t : ts) p.push_back(&t);
  return p;
}

}  // namespace

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  Tensor out = cat_impl("cat", tensors, dim);
  if (!autograd::needs_grad(tensors)) return out;
  // Each input's gradient is its slice of g along dim; skipped 1-d empty inputs get an empty gradient.
  struct Part {
    Shape shape;
    int64_t start = 0, length = -1;  // length -1: skipped
  };
  // Mirror cat_impl: 1-d empty inputs take no part; the dim is wrapped against the first other one.
  auto skipped = [](const Tensor& t) { return t.dim() == 1 && t.numel() == 0; };
  auto ref = std::find_if(tensors.begin(), tensors.end(), [&](const Tensor& t) { return !skipped(t); });
  int64_t d = ref == tensors.end() ? 0 : wrap_dim(dim, ref->dim(), "[cat]");
  std::vector<Part> parts;
  int64_t offset = 0;
  for (const Tensor& t : tensors) {
    bool skip = ref == tensors.end() || skipped(t);
    parts.push_back({t.shape(), offset, skip ? -1 : t.shape()[d]});
    if (!skip) offset += t.shape()[d];
  }
  autograd::record("cat", {&out}, pointers(tensors), {}, [parts, d](autograd::Ctx& c) {
    autograd::Grads grads;
    const Tensor& g = c.grad();
    for (size_t i = 0; i < parts.size(); ++i) {
      if (!c.needs_grad(i))
        grads.emplace_back();
      else if (parts[i].length < 0)
        grads.push_back(zeros(parts[i].shape, {.dtype = g.dtype(), .device = g.device()}));
      else
        grads.push_back(g.narrow(d, parts[i].start, parts[i].length));
    }
    return grads;
  });
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  EMBER_CHECK(!tensors.empty(), ValueError, "[stack] expected a non-empty list of tensors");
  const Shape& shape = tensors[0].shape();
  dim = wrap_dim(dim, tensors[0].dim() + 1, "[stack]");
  Tensor out;
  {
    autograd::NoGradGuard no_grad;  // the unsqueezed views are scaffolding; stack records itself
    std::vector<Tensor> parts;
    parts.reserve(tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      EMBER_CHECK(tensors[i].shape() == shape, ShapeError, "[stack] expects tensors of equal shape, got ", shape,
                  " at entry 0 and ", tensors[i].shape(), " at entry ", i);
      parts.push_back(tensors[i].unsqueeze(dim));
    }
    out = cat_impl("stack", parts, dim);
  }
  if (autograd::needs_grad(tensors))
    autograd::record("stack", {&out}, pointers(tensors), {}, [dim, n = tensors.size()](autograd::Ctx& c) {
      autograd::Grads grads(n);
      for (size_t i = 0; i < n; ++i)
        if (c.needs_grad(i)) grads[i] = c.grad().select(dim, static_cast<int64_t>(i));
      return grads;
    });
  return out;
}

std::vector<Tensor> split(const Tensor& t, int64_t split_size, int64_t dim) {
  EMBER_CHECK(t.dim() > 0, ShapeError, "[split] expects a tensor with at least one dim, got ", describe(t));
  dim = wrap_dim(dim, t.dim(), "[split]");
  const int64_t n = t.shape()[dim];
  EMBER_CHECK(split_size > 0 || (split_size == 0 && n == 0), ValueError, "[split] split_size ", split_size,
              " is invalid for dim ", dim, " of size ", n, " (it must be positive, or 0 for an empty dim)");
  std::vector<Tensor> out;
  if (split_size == 0) {
    out.push_back(t.narrow(dim, 0, 0));
    return out;
  }
  for (int64_t start = 0; start < n || (n == 0 && out.empty()); start += split_size)
    out.push_back(t.narrow(dim, start, std::min(split_size, n - start)));
  return out;
}

std::vector<Tensor> split(const Tensor& t, const std::vector<int64_t>& sizes, int64_t dim) {
  EMBER_CHECK(t.dim() > 0, ShapeError, "[split] expects a tensor with at least one dim, got ", describe(t));
  dim = wrap_dim(dim, t.dim(), "[split]");
  const int64_t n = t.shape()[dim];
  int64_t total = 0;
  for (int64_t s : sizes) {
    EMBER_CHECK(s >= 0, ValueError, "[split] split sizes must be non-negative, got ", Shape(sizes));
    total += s;
  }
  EMBER_CHECK(total == n, ShapeError, "[split] split sizes ", Shape(sizes), " sum to ", total, " but dim ", dim, " of ",
              describe(t), " has size ", n);
  std::vector<Tensor> out;
  int64_t start = 0;
  for (int64_t s : sizes) {
    out.push_back(t.narrow(dim, start, s));
    start += s;
  }
  return out;
}

std::vector<Tensor> chunk(const Tensor& t, int64_t chunks, int64_t dim) {
  EMBER_CHECK(chunks > 0, ValueError, "[chunk] number of chunks must be positive, got ", chunks);
  EMBER_CHECK(t.dim() > 0, ShapeError, "[chunk] expects a tensor with at least one dim, got ", describe(t));
  dim = wrap_dim(dim, t.dim(), "[chunk]");
  const int64_t n = t.shape()[dim];
  if (n == 0) return split(t, std::vector<int64_t>(static_cast<size_t>(chunks), 0), dim);
  return split(t, (n + chunks - 1) / chunks, dim);
}

Tensor flip(const Tensor& t, const Shape& dims) {
  Shape strides = t.strides();
  int64_t offset = t.storage_offset();
  std::vector<bool> seen(static_cast<size_t>(std::max<int64_t>(t.dim(), 1)), false);
  for (int64_t d0 : dims) {
    int64_t d = wrap_dim(d0, t.dim(), "[flip]");
    EMBER_CHECK(!seen[d], ShapeError, "[flip] dim ", d, " appears more than once in ", dims);
    seen[d] = true;
    if (t.dim() == 0 || t.shape()[d] <= 1) continue;
    // A reversed view: start at the last element of dim and step backwards.
    offset += (t.shape()[d] - 1) * strides[d];
    strides[d] = -strides[d];
  }
  Tensor out = make_tensor(t.shape(), t.dtype(), t.device());
  if (t.numel() > 0) kernels::copy(out, make_view(t, t.shape(), strides, offset));
  if (autograd::needs_grad(t))
    autograd::record("flip", {&out}, {&t}, {},
                     [dims](autograd::Ctx& c) { return autograd::Grads{flip(c.grad(), dims)}; });
  return out;
}

Tensor repeat(const Tensor& t, const Shape& repeats) {
  EMBER_CHECK(static_cast<int64_t>(repeats.size()) >= t.dim(), ShapeError, "[repeat] ", repeats.size(),
              " repeat counts given for ", describe(t), "; need at least one per dim");
  const size_t lead = repeats.size() - static_cast<size_t>(t.dim());
  Shape out_shape, dst_shape, src_shape, src_strides;
  for (size_t i = 0; i < repeats.size(); ++i) {
    EMBER_CHECK(repeats[i] >= 0, ValueError, "[repeat] repeat counts must be non-negative, got ", repeats);
    int64_t size = i < lead ? 1 : t.shape()[i - lead];
    int64_t stride = i < lead ? 0 : t.strides()[i - lead];
    out_shape.push_back(repeats[i] * size);
    // Output dim i viewed as [repeats, size]: the source is broadcast (stride 0) along the repeats.
    if (repeats[i] != 1) {
      dst_shape.push_back(repeats[i]);
      src_shape.push_back(repeats[i]);
      src_strides.push_back(0);
    }
    dst_shape.push_back(size);
    src_shape.push_back(size);
    src_strides.push_back(stride);
  }
  Tensor out = make_tensor(out_shape, t.dtype(), t.device());
  if (out.numel() > 0)
    kernels::copy(make_view(out, dst_shape, contiguous_strides(dst_shape), 0),
                  make_view(t, src_shape, src_strides, t.storage_offset()));
  if (autograd::needs_grad(t)) {
    // The gradient viewed as [repeats, size] per dim (the lead dims as [repeats]) summed over the repeats.
    Shape tiles, sum_dims;
    for (size_t i = 0; i < repeats.size(); ++i) {
      sum_dims.push_back(static_cast<int64_t>(tiles.size()));
      tiles.push_back(repeats[i]);
      if (i >= lead) tiles.push_back(t.shape()[i - lead]);
    }
    autograd::record("repeat", {&out}, {&t}, {}, [tiles, sum_dims, in = t.shape()](autograd::Ctx& c) {
      if (sum_dims.empty()) return autograd::Grads{c.grad()};
      return autograd::Grads{sum(c.grad().reshape(tiles), sum_dims).reshape(in)};
    });
  }
  return out;
}

Tensor pad(const Tensor& t, const std::vector<int64_t>& pad, double value) {
  EMBER_CHECK(pad.size() % 2 == 0, ValueError, "[pad] pad must hold (before, after) pairs, got ", pad.size(),
              " entries");
  EMBER_CHECK(static_cast<int64_t>(pad.size() / 2) <= t.dim(), ValueError, "[pad] ", pad.size(), " pad entries for ",
              describe(t), "; at most two per dim");
  Tensor out = [&] {
    autograd::NoGradGuard no_grad;  // the cropping narrows are scaffolding; pad records itself
    return pad_impl(t, pad, value);
  }();
  if (autograd::needs_grad(t)) {
    // The gradient is the output's gradient padded back: crops become zero borders and borders crops.
    std::vector<int64_t> back(pad.size());
    for (size_t i = 0; i < pad.size(); ++i) back[i] = -pad[i];
    autograd::record("pad", {&out}, {&t}, {},
                     [back](autograd::Ctx& c) { return autograd::Grads{ember::pad(c.grad(), back, 0.0)}; });
  }
  return out;
}

}  // namespace ember
