// CPU indexing kernels: gather/scatter walk the index's shape with the indexed dim folded out of the
// plan, so threads own disjoint output positions (no atomics, deterministic scatter_add);
// index_select copies whole rows; masked ops use the elementwise plans of loops.hpp.
#include "kernels/index.hpp"

#include <tbb/parallel_reduce.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "kernels/cpu/loops.hpp"
#include "kernels/index_plan.hpp"

namespace ember::kernels::cpu {
namespace {

// f(begin, end) over [0, numel) in chunks of about `grain`, in parallel when there is more than one.
template <class F>
void parallel_range(int64_t numel, int64_t grain, F&& f) {
  if (numel <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  if (numel <= grain) {
    f(int64_t{0}, numel);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, numel, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { f(r.begin(), r.end()); });
}

// t viewed with `shape` but t's own strides: the gather/scatter operands over the index's shape with
// the indexed dim set to 1, so the plan walks every position except along dim.
Tensor fold_dim(const Tensor& t, Shape shape, int64_t dim) {
  shape[dim] = 1;
  return make_view(t, shape, t.strides(), t.storage_offset());
}

template <class T>
inline constexpr int64_t kSize = sizeof(T);

template <class I>
inline int64_t load_index(const char* p) {
  return static_cast<int64_t>(*reinterpret_cast<const I*>(p));
}

}  // namespace

std::pair<int64_t, int64_t> index_range(const Tensor& index) {
  return visit_dtype<IndexTypes>(index.dtype(), "[index_range]", [&]<class I>() {
    using Range = std::pair<int64_t, int64_t>;
    const Range empty{std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()};
    auto plan = make_plan<1>({&index});
    auto scan = [&](int64_t begin, int64_t end, Range r) {
      I lo = std::numeric_limits<I>::max(), hi = std::numeric_limits<I>::min();
      walk(plan, begin, end, [&](char** p, const int64_t* s, int64_t n) {
        if (s[0] == kSize<I>) {
          const I* x = reinterpret_cast<const I*>(p[0]);
          for (int64_t i = 0; i < n; ++i) {
            lo = std::min(lo, x[i]);
            hi = std::max(hi, x[i]);
          }
        } else {
          for (int64_t i = 0; i < n; ++i) {
            I v = *reinterpret_cast<const I*>(p[0] + i * s[0]);
            lo = std::min(lo, v);
            hi = std::max(hi, v);
          }
        }
      });
      return Range{std::min<int64_t>(r.first, lo), std::max<int64_t>(r.second, hi)};
    };
    if (plan.numel <= kGrain) return scan(0, plan.numel, empty);
    return tbb::parallel_reduce(
        tbb::blocked_range<int64_t>(0, plan.numel, kGrain), empty,
        [&](const tbb::blocked_range<int64_t>& r, Range acc) { return scan(r.begin(), r.end(), acc); },
        [](Range a, Range b) {
          return Range{std::min(a.first, b.first), std::max(a.second, b.second)};
        });
  });
}

void index_select(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index) {
  if (out.numel() == 0) return;
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= self.shape()[d];
  for (int64_t d = dim + 1; d < self.dim(); ++d) inner *= self.shape()[d];
  const int64_t n = self.shape()[dim], m = index.numel();
  const int64_t istride = index.dim() == 0 ? 0 : index.strides()[0];
  visit_dtype<AllTypes>(self.dtype(), "[index_select]", [&]<class T>() {
    visit_dtype<IndexTypes>(index.dtype(), "[index_select]", [&]<class I>() {
      const T* src = static_cast<const T*>(self.raw_data());
      T* dst = static_cast<T*>(out.raw_data());
      const I* idx = static_cast<const I*>(index.raw_data());
      // One task unit is an output row of `inner` elements: (outer position, selected index).
      parallel_range(outer * m, kGrain / std::max<int64_t>(inner, 1), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const int64_t o = r / m, j = r % m;
          const T* s = src + (o * n + static_cast<int64_t>(idx[j * istride])) * inner;
          T* d = dst + r * inner;
          if (inner == 1)
            *d = *s;
          else
            std::copy(s, s + inner, d);
        }
      });
    });
  });
}

void gather(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index) {
  const int64_t k = index.shape()[dim];
  if (index.numel() == 0) return;
  Tensor out_v = fold_dim(out, index.shape(), dim);
  Tensor self_v = fold_dim(self, index.shape(), dim);
  Tensor index_v = fold_dim(index, index.shape(), dim);
  visit_dtype<AllTypes>(self.dtype(), "[gather]", [&]<class T>() {
    visit_dtype<IndexTypes>(index.dtype(), "[gather]", [&]<class I>() {
      const int64_t od = out.strides()[dim] * kSize<T>, sd = self.strides()[dim] * kSize<T>;
      const int64_t id = index.strides()[dim] * kSize<I>;
      auto plan = make_plan<3>({&out_v, &self_v, &index_v});
      auto one = [&](char* o, const char* s, const char* i, int64_t j) {
        *reinterpret_cast<T*>(o + j * od) = *reinterpret_cast<const T*>(s + load_index<I>(i + j * id) * sd);
      };
      run(
          plan,
          [&](char** p, const int64_t* st, int64_t n) {
            // Walk the indexed dim innermost when the index is contiguous along it, otherwise the row.
            if (id == kSize<I> || n == 1) {
              for (int64_t r = 0; r < n; ++r)
                for (int64_t j = 0; j < k; ++j) one(p[0] + r * st[0], p[1] + r * st[1], p[2] + r * st[2], j);
            } else {
              for (int64_t j = 0; j < k; ++j)
                for (int64_t r = 0; r < n; ++r) one(p[0] + r * st[0], p[1] + r * st[1], p[2] + r * st[2], j);
            }
          },
          std::max<int64_t>(kGrain / k, 1));
    });
  });
}

void scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, ScatterMode mode,
             const Scalar& alpha) {
  const int64_t k = index.shape()[dim];
  if (index.numel() == 0) return;
  Tensor out_v = fold_dim(out, index.shape(), dim);
  Tensor src_v = fold_dim(src, index.shape(), dim);
  Tensor index_v = fold_dim(index, index.shape(), dim);
  visit_dtype<AllTypes>(out.dtype(), "[scatter]", [&]<class T>() {
    visit_dtype<IndexTypes>(index.dtype(), "[scatter]", [&]<class I>() {
      const int64_t od = out.strides()[dim] * kSize<T>, sd = src.strides()[dim] * kSize<T>;
      const int64_t id = index.strides()[dim] * kSize<I>;
      const acc_t<T> a = alpha.to<acc_t<T>>();
      const bool add = mode == ScatterMode::Add;
      auto plan = make_plan<3>({&out_v, &src_v, &index_v});
      auto one = [&](char* o, const char* s, const char* i, int64_t j) {
        T* dst = reinterpret_cast<T*>(o + load_index<I>(i + j * id) * od);
        const T v = *reinterpret_cast<const T*>(s + j * sd);
        *dst = index_plan::scatter_combine(*dst, v, a, add);  // the CUDA kernels' combine
      };
      // Positions along dim run in order within one thread, so duplicate indices accumulate
      // deterministically and the last write wins for Assign.
      run(
          plan,
          [&](char** p, const int64_t* st, int64_t n) {
            if (id == kSize<I> || n == 1) {
              for (int64_t r = 0; r < n; ++r)
                for (int64_t j = 0; j < k; ++j) one(p[0] + r * st[0], p[1] + r * st[1], p[2] + r * st[2], j);
            } else {
              for (int64_t j = 0; j < k; ++j)
                for (int64_t r = 0; r < n; ++r) one(p[0] + r * st[0], p[1] + r * st[1], p[2] + r * st[2], j);
            }
          },
          std::max<int64_t>(kGrain / k, 1));
    });
  });
}

void masked_fill(const Tensor& out, const Tensor& self, const Tensor& mask, const Scalar& value) {
  visit_dtype<AllTypes>(out.dtype(), "[masked_fill]", [&]<class T>() {
    const T v = value.to<T>();
    auto plan = make_plan<3>({&out, &self, &mask});
    run(plan, [&](char** p, const int64_t* s, int64_t n) {
      if (s[0] == kSize<T> && s[1] == kSize<T> && s[2] == 1) {
        T* o = reinterpret_cast<T*>(p[0]);
        const T* x = reinterpret_cast<const T*>(p[1]);
        const bool* m = reinterpret_cast<const bool*>(p[2]);
        for (int64_t i = 0; i < n; ++i) o[i] = m[i] ? v : x[i];
      } else {
        for (int64_t i = 0; i < n; ++i)
          *reinterpret_cast<T*>(p[0] + i * s[0]) =
              *reinterpret_cast<const bool*>(p[2] + i * s[2]) ? v : *reinterpret_cast<const T*>(p[1] + i * s[1]);
      }
    });
  });
}

namespace {
// Counts the true elements of plan operand 0 over [begin, end).
template <int N>
int64_t count_block(const Plan<N>& plan, int64_t begin, int64_t end) {
  int64_t c = 0;
  walk(plan, begin, end, [&](char** p, const int64_t* s, int64_t n) {
    if (s[0] == 1) {
      const bool* m = reinterpret_cast<const bool*>(p[0]);
      for (int64_t i = 0; i < n; ++i) c += m[i];
    } else {
      for (int64_t i = 0; i < n; ++i) c += *reinterpret_cast<const bool*>(p[0] + i * s[0]);
    }
  });
  return c;
}
}  // namespace

int64_t count_true(const Tensor& mask) {
  if (mask.numel() == 0) return 0;
  auto plan = make_plan<1>({&mask});
  if (plan.numel <= kGrain) return count_block(plan, 0, plan.numel);
  return tbb::parallel_reduce(
      tbb::blocked_range<int64_t>(0, plan.numel, kGrain), int64_t{0},
      [&](const tbb::blocked_range<int64_t>& r, int64_t acc) { return acc + count_block(plan, r.begin(), r.end()); },
      [](int64_t a, int64_t b) { return a + b; });
}

void masked_select(const Tensor& out, const Tensor& self, const Tensor& mask) {
  if (out.numel() == 0) return;
  visit_dtype<AllTypes>(self.dtype(), "[masked_select]", [&]<class T>() {
    auto plan = make_plan<2>({&mask, &self});
    // Blocks of kGrain elements: count each, prefix-sum the counts, then each block writes its run.
    const int64_t blocks = (plan.numel + kGrain - 1) / kGrain;
    std::vector<int64_t> start(static_cast<size_t>(blocks) + 1, 0);
    auto block_end = [&](int64_t b) { return std::min(plan.numel, (b + 1) * kGrain); };
    parallel_range(blocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) start[b + 1] = count_block(plan, b * kGrain, block_end(b));
    });
    for (int64_t b = 0; b < blocks; ++b) start[b + 1] += start[b];
    T* dst = static_cast<T*>(out.raw_data());
    parallel_range(blocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        T* o = dst + start[b];
        walk(plan, b * kGrain, block_end(b), [&](char** p, const int64_t* s, int64_t n) {
          for (int64_t i = 0; i < n; ++i)
            if (*reinterpret_cast<const bool*>(p[0] + i * s[0])) *o++ = *reinterpret_cast<const T*>(p[1] + i * s[1]);
        });
      }
    });
  });
}

}  // namespace ember::kernels::cpu
