// Host-side planning of the CUDA indexing kernels; see kernels/index_plan.hpp.
#include "kernels/index_plan.hpp"

#include <algorithm>
#include <bit>
#include <numeric>

namespace ember::kernels::index_plan {

Layout make_layout(const Shape& shape, const std::vector<Shape>& strides) {
  EMBER_CHECK(strides.size() <= static_cast<size_t>(kOps), ValueError, "[index] at most ", kOps, " operands");
  Layout l;
  l.numel = shape_numel(shape);
  int nd = 0;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    const int64_t sz = shape[d];
    if (sz == 1) continue;
    int64_t st[kOps] = {};
    for (size_t k = 0; k < strides.size(); ++k) st[k] = strides[k][d];
    bool merge = nd > 0;
    for (int k = 0; k < kOps && merge; ++k) merge = st[k] == l.stride[nd - 1][k] * l.size[nd - 1];
    if (merge) {
      l.size[nd - 1] *= sz;
      continue;
    }
    EMBER_CHECK(nd < kMaxDims, ShapeError, "[index] more than ", kMaxDims, " non-mergeable dims in ", shape);
    l.size[nd] = sz;
    for (int k = 0; k < kOps; ++k) l.stride[nd][k] = st[k];
    ++nd;
  }
  if (nd == 0) {  // a single element (or none)
    l.size[0] = 1;
    nd = 1;
  }
  l.ndim = nd;
  return l;
}

SelectGeom plan_index_select(const Tensor& self, int64_t dim, const Tensor& index) {
  SelectGeom g;
  for (int64_t d = 0; d < dim; ++d) g.outer *= self.shape()[d];
  for (int64_t d = dim + 1; d < self.dim(); ++d) g.inner *= self.shape()[d];
  g.n = self.shape()[dim];
  g.m = index.numel();
  g.istride = index.dim() == 0 ? 0 : index.strides()[0];
  return g;
}

namespace {
Shape with_zero(Shape s, int64_t dim) {
  s[dim] = 0;
  return s;
}
Shape with_one(Shape s, int64_t dim) {
  s[dim] = 1;
  return s;
}
}  // namespace

GatherPlan plan_gather(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index) {
  GatherPlan p;
  p.elems = make_layout(index.shape(), {out.strides(), with_zero(self.strides(), dim), index.strides()});
  p.self_dim_stride = self.strides()[dim];
  p.size = self.shape()[dim];
  return p;
}

ScatterPlan plan_scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, ScatterMode mode,
                         bool deterministic, bool atomics) {
  ScatterPlan p;
  const Shape& shape = index.shape();
  p.k = shape[dim];
  p.lines = make_layout(with_one(shape, dim), {out.strides(), src.strides(), index.strides()});
  p.elems = make_layout(shape, {with_zero(out.strides(), dim), src.strides(), index.strides()});
  p.dim_stride[0] = out.strides()[dim];
  p.dim_stride[1] = src.strides()[dim];
  p.dim_stride[2] = index.strides()[dim];
  p.shared_index = true;
  for (int d = 0; d < p.lines.ndim; ++d) p.shared_index = p.shared_index && p.lines.stride[d][2] == 0;
  p.size = out.shape()[dim];
  p.key_bits = std::max(1, static_cast<int>(std::bit_width(static_cast<uint64_t>(p.size))));

  const int64_t lines = p.k == 0 ? 0 : p.lines.numel;
  const bool serial_ok = p.k <= kSerialK || lines >= kBusyLines;
  if (serial_ok || !atomics)
    p.kernel = ScatterKernel::Lines;
  else if (deterministic)
    p.kernel = p.shared_index ? ScatterKernel::SortedRows : ScatterKernel::Lines;
  else
    p.kernel = ScatterKernel::Elements;
  (void)mode;  // Assign and Add take the same kernels; Elements makes Assign's duplicates race (as PyTorch)
  return p;
}

SortBuffers plan_sort_buffers(int64_t k) {
  SortBuffers b;
  b.keys_in = 0;
  b.keys_out = k;
  b.pos_in = 2 * k;
  b.pos_out = 3 * k;
  b.total = 4 * k;
  return b;
}

void scatter_sorted_reference(const ScatterPlan& plan, const Tensor& out, const Tensor& index, const Tensor& src,
                              ScatterMode mode, const Scalar& alpha) {
  EMBER_CHECK(plan.shared_index && out.device().is_cpu(), ValueError,
              "[scatter_sorted_reference] needs a shared index on the CPU");
  const int64_t k = plan.k;
  if (k == 0 || plan.lines.numel == 0) return;
  std::vector<int64_t> keys(static_cast<size_t>(k)), pos(static_cast<size_t>(k));
  visit_dtype<IndexTypes>(index.dtype(), "[scatter_sorted_reference]", [&]<class I>() {
    const I* idx = static_cast<const I*>(index.raw_data());
    for (int64_t j = 0; j < k; ++j) keys[j] = sort_key(static_cast<int64_t>(idx[j * plan.dim_stride[2]]), plan.size);
  });
  std::iota(pos.begin(), pos.end(), int64_t{0});
  std::stable_sort(pos.begin(), pos.end(), [&](int64_t a, int64_t b) { return keys[a] < keys[b]; });
  std::vector<int64_t> sorted(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) sorted[i] = keys[pos[i]];
  visit_dtype<SignedTypes>(out.dtype(), "[scatter_sorted_reference]", [&]<class T>() {
    T* o = static_cast<T*>(out.raw_data());
    const T* s = static_cast<const T*>(src.raw_data());
    const acc_t<T> a = alpha.to<acc_t<T>>();
    // The device's thread order (sorted position outer, line inner) has no bearing on the result:
    // each destination belongs to one (run, line).
    for (int64_t i = 0; i < k; ++i)
      for (int64_t line = 0; line < plan.lines.numel; ++line) {
        int64_t base[kOps];
        offsets(plan.lines, line, base);
        scatter_sorted_run(o, s, sorted.data(), pos.data(), i, base, plan, a, mode == ScatterMode::Add);
      }
  });
}

int64_t reduce_blocks(int64_t numel, int64_t threads) {
  const int64_t b = (numel + threads - 1) / threads;
  return std::clamp<int64_t>(b, 1, kReduceMaxBlocks);
}

}  // namespace ember::kernels::index_plan
