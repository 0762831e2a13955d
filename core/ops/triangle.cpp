// tril / triu (the lower / upper triangle of the last two dims, the rest zeroed), compositions of public
// ops (where) so autograd and every device come for free, and unbind (views, one backward node).
#include <algorithm>
#include <numeric>

#include "core/autograd.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/shape.hpp"

namespace ember {
namespace {

// keep[i, j] = j - i <= diagonal (lower) or j - i >= diagonal (upper), on the input's device.
Tensor triangle(const Tensor& t, int64_t diagonal, bool lower, const char* op) {
  EMBER_CHECK(t.dim() >= 2, ShapeError, "[", op, "] needs a tensor of at least 2 dims, got ", describe(t));
  int64_t rows = t.size(-2), cols = t.size(-1);
  Tensor offset = arange(cols, kI64, t.device()).unsqueeze(0) - arange(rows, kI64, t.device()).unsqueeze(1);
  Tensor keep = lower ? offset <= diagonal : offset >= diagonal;
  return where(keep, t, zeros_like(t));
}

// An uninitialised tensor of t's shape whose memory runs in the order of t's strides (outermost first):
// a gradient written into it goes back through the views t was made by (a permute, a view) without a copy.
Tensor empty_in_order_of(const Shape& shape, const Shape& strides, const TensorOptions& o) {
  std::vector<int64_t> order(shape.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return strides[a] > strides[b]; });
  Shape dense;
  Shape back(order.size(), 0);
  for (size_t i = 0; i < order.size(); ++i) {
    dense.push_back(shape[order[i]]);
    back[order[i]] = static_cast<int64_t>(i);
  }
  return empty(dense, o).permute(back);
}

}  // namespace

Tensor tril(const Tensor& t, int64_t diagonal) { return triangle(t, diagonal, true, "tril"); }
Tensor triu(const Tensor& t, int64_t diagonal) { return triangle(t, diagonal, false, "triu"); }

// The slices are views (select), recorded as one node whose backward writes their gradients into one
// tensor laid out as the input: one write of the input's size, where a backward per select would
// zero-fill and copy the whole input once per slice and then add the results (GPT-2's q, k, v split).
std::vector<Tensor> unbind(const Tensor& t, int64_t dim) {
  int64_t d = wrap_dim(dim, t.dim(), "[unbind]");
  std::vector<Tensor> out;
  out.reserve(static_cast<size_t>(t.size(d)));
  {
    autograd::NoGradGuard views_only;
    for (int64_t i = 0; i < t.size(d); ++i) out.push_back(t.select(d, i));
  }
  if (!out.empty() && autograd::needs_grad(t)) {
    std::vector<Tensor*> outputs;
    for (Tensor& o : out) outputs.push_back(&o);
    autograd::record("unbind", outputs, {&t}, {}, [d, n = out.size(), strides = t.strides()](autograd::Ctx& c) {
      std::vector<Tensor> grads;  // zeros for a slice that got none
      for (size_t i = 0; i < n; ++i) grads.push_back(c.grad(i));
      if (autograd::is_grad_enabled()) return autograd::Grads{stack(grads, d)};  // create_graph
      const Tensor& g0 = grads[0];
      Tensor r = empty_in_order_of(c.input(0).shape, strides, {.dtype = g0.dtype(), .device = g0.device()});
      for (size_t i = 0; i < n; ++i) r.select(d, static_cast<int64_t>(i)).copy_(grads[i]);
      return autograd::Grads{r};
    });
  }
  return out;
}

}  // namespace ember
