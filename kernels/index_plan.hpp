// Host-side planning of the CUDA indexing kernels (kernels/cuda/index.cu), plain C++ compiled in every
// build so the CPU tests cover it: the coalesced layouts that turn a thread's linear id into operand
// offsets, index_select's outer/index/inner geometry, the choice of scatter kernel, and the per-thread
// bodies (EMBER_HD) that the device kernels run and the tests run on the host.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "core/dtype.hpp"
#include "core/tensor.hpp"
#include "kernels/index.hpp"

namespace ember::kernels::index_plan {

inline constexpr int kMaxDims = 16;
inline constexpr int kOps = 3;  // operands of a layout; unused ones have zero strides

// Dims innermost first, strides in elements per operand; linear id i (0 <= i < numel) is the
// row-major position in the original shape, so masked_select keeps PyTorch's order.
struct Layout {
  int ndim = 0;
  int64_t numel = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[kMaxDims][kOps] = {};
};

// Element offsets of linear id i in each operand.
EMBER_HD void offsets(const Layout& l, int64_t i, int64_t (&off)[kOps]) {
  if (l.ndim == 1) {  // one (coalesced) dim: no division
    for (int k = 0; k < kOps; ++k) off[k] = i * l.stride[0][k];
    return;
  }
  for (int k = 0; k < kOps; ++k) off[k] = 0;
  for (int d = 0; d < l.ndim; ++d) {
    const int64_t q = i / l.size[d], r = i - q * l.size[d];
    i = q;
    for (int k = 0; k < kOps; ++k) off[k] += r * l.stride[d][k];
  }
}

// The layout of `shape` walked by operands of the given element strides (missing operands: zeros):
// size-1 dims dropped, neighbouring dims merged where every operand allows it.
Layout make_layout(const Shape& shape, const std::vector<Shape>& strides);

// index_select of a contiguous self viewed as [outer, n, inner], index of m entries (stride istride),
// into a contiguous out [outer, m, inner].
struct SelectGeom {
  int64_t outer = 1, n = 1, m = 0, inner = 1, istride = 0;
  int64_t numel() const { return outer * m * inner; }
};
SelectGeom plan_index_select(const Tensor& self, int64_t dim, const Tensor& index);

// The index value that output element i reads (the first element of its index position is the one
// that reports a bad value: `first`), and the source element offset (in self) for that value.
template <class I>
EMBER_HD int64_t select_index(const SelectGeom& g, const I* index, int64_t i, bool* first = nullptr) {
  const int64_t c = i % g.inner, r = i / g.inner;
  if (first != nullptr) *first = c == 0 && r < g.m;
  return static_cast<int64_t>(index[(r % g.m) * g.istride]);
}
EMBER_HD int64_t select_offset(const SelectGeom& g, int64_t v, int64_t i) {
  const int64_t c = i % g.inner, o = i / g.inner / g.m;
  return (o * g.n + v) * g.inner + c;
}
template <class I>
EMBER_HD int64_t select_source(const SelectGeom& g, const I* index, int64_t i) {
  return select_offset(g, select_index(g, index, i), i);
}

// Whether index value v addresses one of `size` positions along dim. The CUDA kernels check every
// value: a bad one reads or writes nothing, and the kernel reports it as a deferred error.
EMBER_HD bool in_bounds(int64_t v, int64_t size) { return v >= 0 && v < size; }

// gather walks index's shape: operands (out, self with its dim stride zeroed, index); the index value
// times self_dim_stride completes self's offset.
struct GatherPlan {
  Layout elems;
  int64_t self_dim_stride = 0;
  int64_t size = 0;  // self's size along dim
};
GatherPlan plan_gather(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index);

// Element e of a gather; a bad index value writes 0 and is returned in *bad (the result false).
template <class T, class I>
EMBER_HD bool gather_element(T* out, const T* self, const I* index, const GatherPlan& p, int64_t e, int64_t* bad) {
  int64_t off[kOps];
  offsets(p.elems, e, off);
  const auto v = static_cast<int64_t>(index[off[2]]);
  if (!in_bounds(v, p.size)) {
    out[off[0]] = T(0);
    *bad = v;
    return false;
  }
  out[off[0]] = self[off[1] + v * p.self_dim_stride];
  return true;
}

enum class ScatterKernel : uint8_t {
  Lines,       // a thread per line (all positions but along dim), j in order: CPU's order, no atomics
  Elements,    // a thread per element: atomicAdd for Add, a racing store for Assign (duplicates: any wins)
  SortedRows,  // the index is one vector shared by every line: sort it (stable), sum each run in order
};

// Below kSerialK positions along dim or from kBusyLines lines on, a thread per line is fast enough.
inline constexpr int64_t kSerialK = 32;
inline constexpr int64_t kBusyLines = int64_t{1} << 16;

struct ScatterPlan {
  ScatterKernel kernel = ScatterKernel::Lines;
  Layout lines;                   // index's shape with dim folded to 1: operands (out, src, index)
  Layout elems;                   // index's full shape: operands (out with its dim stride zeroed, src, index)
  int64_t k = 0;                  // positions along dim
  int64_t dim_stride[kOps] = {};  // out, src, index strides along dim
  bool shared_index = false;      // index's strides are zero off dim (index_add, embedding backward)
  int64_t size = 0;               // out's size along dim
  int key_bits = 1;               // bits the sort needs for keys in [0, size] (size: a bad index)
};
// atomics: whether the dtype has a native atomicAdd (SignedTypes: floats, i32, i64); u8/bool take Lines.
ScatterPlan plan_scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, ScatterMode mode,
                         bool deterministic, bool atomics);

// Sorted-rows workspace: keys and positions in and out of the radix sort (int64 each).
struct SortBuffers {
  int64_t keys_in = 0, keys_out = 0, pos_in = 0, pos_out = 0, total = 0;  // element offsets into one buffer
};
SortBuffers plan_sort_buffers(int64_t k);

template <class T>
EMBER_HD T scatter_combine(T old, T v, acc_t<T> alpha, bool add) {
  if (!add) return v;
  return static_cast<T>(static_cast<acc_t<T>>(old) + alpha * static_cast<acc_t<T>>(v));
}

// One line of the Lines kernel: positions along dim in order (so the last duplicate wins for Assign).
// A bad index value writes nothing; the first one is returned in *bad (the result false).
template <class T, class I>
EMBER_HD bool scatter_line(T* out, const T* src, const I* index, const int64_t (&base)[kOps], const ScatterPlan& p,
                           acc_t<T> alpha, bool add, int64_t* bad) {
  bool ok = true;
  for (int64_t j = 0; j < p.k; ++j) {
    const auto at = static_cast<int64_t>(index[base[2] + j * p.dim_stride[2]]);
    if (!in_bounds(at, p.size)) {
      if (ok) *bad = at;
      ok = false;
      continue;
    }
    T* dst = out + base[0] + at * p.dim_stride[0];
    *dst = scatter_combine(*dst, src[base[1] + j * p.dim_stride[1]], alpha, add);
  }
  return ok;
}

// Element e of the Elements kernel: the offsets of its destination in out and of its value in src, or
// false with the bad index value in *bad.
template <class I>
EMBER_HD bool scatter_element(const ScatterPlan& p, const I* index, int64_t e, int64_t* dst, int64_t* from,
                              int64_t* bad) {
  int64_t off[kOps];
  offsets(p.elems, e, off);
  const auto at = static_cast<int64_t>(index[off[2]]);
  if (!in_bounds(at, p.size)) {
    *bad = at;
    return false;
  }
  *dst = off[0] + at * p.dim_stride[0];
  *from = off[1];
  return true;
}

// The SortedRows sort key of index value v: v, or size for a bad value (sorted last, written nowhere).
EMBER_HD int64_t sort_key(int64_t v, int64_t size) { return in_bounds(v, size) ? v : size; }

// Thread i of a line in the SortedRows kernel: sort_keys sorted stably (pos: where each key came from
// along dim). The thread at the start of a run of equal keys owns that destination and adds the run in
// order (Add), or writes its last element (Assign); every other thread, and the run of bad values
// (key p.size), does nothing.
template <class T>
EMBER_HD void scatter_sorted_run(T* out, const T* src, const int64_t* keys, const int64_t* pos, int64_t i,
                                 const int64_t (&base)[kOps], const ScatterPlan& p, acc_t<T> alpha, bool add) {
  const int64_t key = keys[i], k = p.k;
  if (key >= p.size || (i > 0 && keys[i - 1] == key)) return;
  T* dst = out + base[0] + key * p.dim_stride[0];
  if (!add) {
    int64_t e = i;
    while (e + 1 < k && keys[e + 1] == key) ++e;
    *dst = src[base[1] + pos[e] * p.dim_stride[1]];
    return;
  }
  acc_t<T> acc = static_cast<acc_t<T>>(*dst);
  for (int64_t e = i; e < k && keys[e] == key; ++e)
    acc += alpha * static_cast<acc_t<T>>(src[base[1] + pos[e] * p.dim_stride[1]]);
  *dst = static_cast<T>(acc);
}

// Host reference of the SortedRows plan (what the device sort and kernel compute), for the tests:
// stable sort of the shared index, then scatter_sorted_run for every (sorted position, line).
void scatter_sorted_reference(const ScatterPlan& plan, const Tensor& out, const Tensor& index, const Tensor& src,
                              ScatterMode mode, const Scalar& alpha);

// Blocks of a grid-stride reduction (index_range, count_true): enough to fill a GPU, few atomics.
inline constexpr int64_t kReduceMaxBlocks = 1024;
int64_t reduce_blocks(int64_t numel, int64_t threads);

}  // namespace ember::kernels::index_plan
