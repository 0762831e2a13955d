// CPU kernels of the reduction family: monoid reductions, variance, logsumexp and arg-reductions on
// the engine of reduce_engine.hpp; scans, sort/topk and softmax on contiguous inputs.
#include "kernels/reduce.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <utility>
#include <vector>

#include "kernels/cpu/reduce_engine.hpp"
#include "kernels/elementwise.hpp"

namespace ember::kernels::cpu {

void parallel_range_impl(int64_t n, int64_t grain, RangeFn fn, const void* ctx) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, std::max<int64_t>(grain, 1)),
                    [&](const tbb::blocked_range<int64_t>& r) { fn(ctx, r.begin(), r.end()); });
}

namespace {

// Walks the first n kept dims of a plan from a flat position, tracking input and output offsets.
struct KeptIter {
  const ReducePlan& p;
  int n;
  int64_t idx[kMaxDims] = {};
  int64_t in_off = 0, out_off = 0;
  KeptIter(const ReducePlan& plan, int ndims, int64_t pos) : p(plan), n(ndims) {
    for (int d = n - 1; d >= 0; --d) {
      idx[d] = pos % p.ksize[d];
      pos /= p.ksize[d];
      in_off += idx[d] * p.kin[d];
      out_off += idx[d] * p.kout[d];
    }
  }
  void next() {
    for (int d = n - 1; d >= 0; --d) {
      if (++idx[d] < p.ksize[d]) {
        in_off += p.kin[d];
        out_off += p.kout[d];
        return;
      }
      in_off -= (p.ksize[d] - 1) * p.kin[d];
      out_off -= (p.ksize[d] - 1) * p.kout[d];
      idx[d] = 0;
    }
  }
};

// States as raw bytes, suitably aligned for any op's State.
std::unique_ptr<std::max_align_t[]> state_buffer(int64_t n, const OpTable& t) {
  size_t words = static_cast<size_t>((n * t.state_size + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t));
  return std::unique_ptr<std::max_align_t[]>(new std::max_align_t[std::max<size_t>(words, 1)]);
}
char* state_at(void* buf, const OpTable& t, int64_t i) { return static_cast<char*>(buf) + i * t.state_size; }

// Folds the reduced elements [begin, end) (flat, memory order) of one output into s.
void fold_span(const ReducePlan& p, const OpTable& t, const void* op, void* s, const char* base, int64_t out_off,
               int64_t begin, int64_t end) {
  if (begin >= end) return;
  const int last = p.nr - 1;
  int64_t idx[kMaxDims];
  int64_t rem = begin;
  const char* ptr = base;
  for (int d = last; d >= 0; --d) {
    idx[d] = rem % p.rsize[d];
    rem /= p.rsize[d];
    ptr += idx[d] * p.rin[d];
  }
  for (int64_t pos = begin;;) {
    int64_t n = std::min(p.rsize[last] - idx[last], end - pos);
    t.row(op, s, ptr, p.rin[last], n, out_off, pos);
    pos += n;
    if (pos >= end) break;
    ptr += n * p.rin[last];
    idx[last] += n;
    for (int d = last; d > 0 && idx[d] == p.rsize[d]; --d) {
      ptr += p.rin[d - 1] - p.rsize[d] * p.rin[d];
      idx[d] = 0;
      ++idx[d - 1];
    }
  }
}

// Accumulates reduced positions [begin, end) into the output row segment acc[0..w) (outer mode).
void fold_cols(const ReducePlan& p, const OpTable& t, const void* op, void* acc, const char* base, int64_t w,
               int64_t out_off, int64_t begin, int64_t end) {
  if (begin >= end) return;
  const int64_t ks = p.kin[p.nk - 1], ko = p.kout[p.nk - 1];
  int64_t idx[kMaxDims];
  int64_t rem = begin;
  const char* ptr = base;
  for (int d = p.nr - 1; d >= 0; --d) {
    idx[d] = rem % p.rsize[d];
    rem /= p.rsize[d];
    ptr += idx[d] * p.rin[d];
  }
  for (int64_t pos = begin; pos < end; ++pos) {
    t.cols(op, acc, ptr, ks, w, out_off, ko, pos);
    for (int d = p.nr - 1; d >= 0; --d) {
      if (++idx[d] < p.rsize[d]) {
        ptr += p.rin[d];
        break;
      }
      ptr -= (p.rsize[d] - 1) * p.rin[d];
      idx[d] = 0;
    }
  }
}

// Chunk of the reduced range per task when one output's reduction is split; it depends on N only,
// so results are deterministic whatever the thread count.
int64_t split_chunk(int64_t n, int64_t min_chunk) { return std::max(min_chunk, (n + 63) / 64); }

void run_inner(const ReducePlan& p, const OpTable& t, const void* op) {
  const int64_t M = p.M, N = p.N;
  if (M < 16 && N >= 8 * kGrain) {  // few long reductions: split each one's range
    KeptIter it(p, p.nk, 0);
    const int64_t chunk = split_chunk(N, 4 * kGrain), nchunks = (N + chunk - 1) / chunk;
    auto part = state_buffer(nchunks, t);
    for (int64_t o = 0; o < M; ++o, it.next()) {
      const char* base = p.in + it.in_off;
      const int64_t out_off = it.out_off;
      t.init(op, part.get(), nchunks);
      parallel_range(nchunks, 1, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c)
          fold_span(p, t, op, state_at(part.get(), t, c), base, out_off, c * chunk, std::min(N, (c + 1) * chunk));
      });
      for (int64_t c = 1; c < nchunks; ++c) t.combine(op, part.get(), state_at(part.get(), t, c), 1);
      t.emit(op, out_off, 0, part.get(), 1);
    }
    return;
  }
  auto body = [&](int64_t o0, int64_t o1) {
    alignas(std::max_align_t) char s[kMaxStateSize];
    KeptIter it(p, p.nk, o0);
    for (int64_t o = o0; o < o1; ++o, it.next()) {
      t.init(op, s, 1);
      fold_span(p, t, op, s, p.in + it.in_off, it.out_off, 0, N);
      t.emit(op, it.out_off, 0, s, 1);
    }
  };
  if (M * std::max<int64_t>(N, 1) <= kGrain || M == 1) return body(0, M);
  parallel_range(M, std::max<int64_t>(1, kGrain / std::max<int64_t>(N, 1)), body);
}

void run_outer(const ReducePlan& p, const OpTable& t, const void* op) {
  const int ki = p.nk - 1;
  const int64_t W = p.ksize[ki], N = p.N, ko = p.kout[ki];
  const int64_t tiles = (W + kColTile - 1) / kColTile, tasks = (p.M / W) * tiles;
  auto locate = [&](int64_t task, const char*& base, int64_t& out_off, int64_t& w) {
    KeptIter it(p, ki, task / tiles);
    int64_t i0 = (task % tiles) * kColTile;
    w = std::min(kColTile, W - i0);
    base = p.in + it.in_off + i0 * p.kin[ki];
    out_off = it.out_off + i0 * ko;
  };
  const int64_t work = p.M * std::max<int64_t>(N, 1);
  if (tasks < 8 && work > 8 * kGrain) {  // few row segments, long reductions: split the reduced range
    for (int64_t task = 0; task < tasks; ++task) {
      const char* base;
      int64_t out_off, w;
      locate(task, base, out_off, w);
      const int64_t chunk = split_chunk(N, std::max<int64_t>(1, kGrain / w)), nchunks = (N + chunk - 1) / chunk;
      auto part = state_buffer(nchunks * w, t);
      t.init(op, part.get(), nchunks * w);
      parallel_range(nchunks, 1, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c)
          fold_cols(p, t, op, state_at(part.get(), t, c * w), base, w, out_off, c * chunk,
                    std::min(N, (c + 1) * chunk));
      });
      for (int64_t c = 1; c < nchunks; ++c) t.combine(op, part.get(), state_at(part.get(), t, c * w), w);
      t.emit(op, out_off, ko, part.get(), w);
    }
    return;
  }
  auto body = [&](int64_t t0, int64_t t1) {
    alignas(std::max_align_t) char acc[kColTile * kMaxStateSize];
    for (int64_t task = t0; task < t1; ++task) {
      const char* base;
      int64_t out_off, w;
      locate(task, base, out_off, w);
      t.init(op, acc, w);
      fold_cols(p, t, op, acc, base, w, out_off, 0, N);
      t.emit(op, out_off, ko, acc, w);
    }
  };
  if (work <= kGrain || tasks == 1) return body(0, tasks);
  parallel_range(tasks, std::max<int64_t>(1, kGrain / (std::max<int64_t>(N, 1) * std::min(W, kColTile))), body);
}

}  // namespace

void run_reduce(const ReducePlan& p, const OpTable& t, const void* op) {
  if (p.M == 0) return;
  if (p.outer)
    run_outer(p, t, op);
  else
    run_inner(p, t, op);
}

namespace {

template <class In, class Acc, class State, class Out, class Mon, class Tr, class Fin>
void run_monoid(const ReducePlan& plan, const Tensor& out, Tr tr, Fin fin, const void* aux = nullptr) {
  assert(out.dtype() == dtype_of<Out>());
  MonoidReduce<In, Acc, State, Out, Mon, Tr, Fin> op{tr, fin, static_cast<Out*>(out.raw_data()), aux};
  run_reduce(plan, op);
}

// Variance finaliser: m2 / max(0, n - correction), optionally square-rooted.
struct VarF {
  double scale;
  bool root;
  template <class Out, class S, class C>
  Out fin(S s, C) const {
    return convert<Out>(var_fin(s, scale, root));
  }
};

// The first index of the max/min (NaN counts as the extreme). Contiguous rows find the extreme with
// vectorised lanes, then scan for its first occurrence.
template <class In, bool kMax>
struct ArgReduce {
  using A = acc_t<In>;
  using Mon = std::conditional_t<kMax, MaxM, MinM>;
  struct State {
    A v;
    int64_t i;
  };
  In* values;
  int64_t* indices;

  static bool better(A v, A cur) { return arg_better<kMax>(v, cur); }
  State init() const { return {A{}, -1}; }
  void combine(State& a, const State& b) const {
    if (b.i >= 0 && (a.i < 0 || better(b.v, a.v))) a = b;
  }
  void emit(int64_t off, const State& s) const {
    if (values) values[off] = convert<In>(s.v);
    indices[off] = s.i;
  }
  void row(State& s, const char* p, int64_t stride, int64_t n, int64_t, int64_t pos) const {
    if (stride == static_cast<int64_t>(sizeof(In)) && n >= 32) {
      const In* x = reinterpret_cast<const In*>(p);
      A m = lane_fold<Mon, A>(Mon::template identity<A>(), x, n, IdentT<A>{}, NoCenter{});
      int64_t j = 0;
      if (m != m) {
        while (to_acc<A>(x[j]) == to_acc<A>(x[j])) ++j;
      } else {
        while (to_acc<A>(x[j]) != m) ++j;
      }
      combine(s, {to_acc<A>(x[j]), pos + j});  // the element, not m: +0 and -0 compare equal
      return;
    }
    for (int64_t k = 0; k < n; ++k) {
      A v = to_acc<A>(*reinterpret_cast<const In*>(p + k * stride));
      if (s.i < 0 || better(v, s.v)) s = {v, pos + k};
    }
  }
  void cols(State* acc, const char* p, int64_t stride, int64_t w, int64_t, int64_t, int64_t pos) const {
    for (int64_t i = 0; i < w; ++i) {
      A v = to_acc<A>(*reinterpret_cast<const In*>(p + i * stride));
      if (acc[i].i < 0 || better(v, acc[i].v)) acc[i] = {v, pos};
    }
  }
};

// Sizes around `dim` of a contiguous tensor: outer x n x inner.
struct Lines {
  int64_t outer = 1, n = 1, inner = 1;
  Lines(const Tensor& t, int64_t dim) {
    for (int64_t d = 0; d < t.dim(); ++d) {
      if (d < dim)
        outer *= t.shape()[d];
      else if (d == dim)
        n = t.shape()[d];
      else
        inner *= t.shape()[d];
    }
  }
};

// Runs f(begin, end) over [0, count) items of `work_per_item` elements, in parallel when large.
template <class F>
void parallel_items(int64_t count, int64_t work_per_item, F&& f) {
  if (count <= 0) return;
  const int64_t w = std::max<int64_t>(work_per_item, 1);
  if (count == 1 || count * w <= kGrain) return f(int64_t{0}, count);
  parallel_range(count, std::max<int64_t>(1, kGrain / w), f);
}

// ---------------------------------------------------------------- scans
template <class T, bool kProd>
void cumulative_impl(const Tensor& out, const Tensor& in, int64_t dim) {
  constexpr bool kInt = !std::is_floating_point_v<acc_t<T>>;
  using Acc = std::conditional_t<kInt, int64_t, std::conditional_t<std::is_same_v<T, float>, double, acc_t<T>>>;
  using Out = std::conditional_t<kInt, int64_t, T>;
  using Mon = std::conditional_t<kProd, MulM, AddM>;
  const Lines l(in, dim);
  const T* x = static_cast<const T*>(in.raw_data());
  Out* y = static_cast<Out*>(out.raw_data());
  if (l.inner == 1) {
    parallel_items(l.outer, l.n, [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        Acc a = Mon::template identity<Acc>();
        for (int64_t i = 0; i < l.n; ++i) {
          a = Mon::op(a, to_acc<Acc>(x[o * l.n + i]));
          y[o * l.n + i] = convert<Out>(a);
        }
      }
    });
    return;
  }
  const int64_t tiles = (l.inner + kColTile - 1) / kColTile;
  parallel_items(l.outer * tiles, l.n * std::min(l.inner, kColTile), [&](int64_t t0, int64_t t1) {
    Acc a[kColTile];
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t o = t / tiles, j0 = (t % tiles) * kColTile, w = std::min(kColTile, l.inner - j0);
      for (int64_t j = 0; j < w; ++j) a[j] = Mon::template identity<Acc>();
      for (int64_t i = 0; i < l.n; ++i) {
        const int64_t base = (o * l.n + i) * l.inner + j0;
        for (int64_t j = 0; j < w; ++j) {
          a[j] = Mon::op(a[j], to_acc<Acc>(x[base + j]));
          y[base + j] = convert<Out>(a[j]);
        }
      }
    }
  });
}

// ---------------------------------------------------------------- sort and topk
// NaN orders as the largest value, as PyTorch (key_less, sort_before: kernels/reduce_math.hpp).
template <class T>
void sort_impl(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t dim, bool descending) {
  using K = acc_t<T>;
  const Lines l(in, dim);
  const T* x = static_cast<const T*>(in.raw_data());
  T* v = static_cast<T*>(values.raw_data());
  int64_t* ix = static_cast<int64_t*>(indices.raw_data());
  parallel_items(l.outer * l.inner, l.n * 8, [&](int64_t b0, int64_t b1) {
    std::vector<std::pair<K, int64_t>> buf(static_cast<size_t>(l.n));
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t base = (b / l.inner) * l.n * l.inner + b % l.inner;
      for (int64_t i = 0; i < l.n; ++i) buf[i] = {to_acc<K>(x[base + i * l.inner]), i};
      // (key, index) is a total order: std::sort gives the stable order
      std::sort(buf.begin(), buf.end(), [descending](const auto& a, const auto& c) {
        return sort_before(a.first, a.second, c.first, c.second, descending);
      });
      for (int64_t i = 0; i < l.n; ++i) {
        v[base + i * l.inner] = convert<T>(buf[i].first);
        ix[base + i * l.inner] = buf[i].second;
      }
    }
  });
}

template <class T>
void topk_impl(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t k, int64_t dim, bool largest) {
  using K = acc_t<T>;
  const Lines l(in, dim);
  const T* x = static_cast<const T*>(in.raw_data());
  T* v = static_cast<T*>(values.raw_data());
  int64_t* ix = static_cast<int64_t*>(indices.raw_data());
  using Item = std::pair<K, int64_t>;
  // Ties go to the lower index, so results do not depend on the selection algorithm.
  auto first = [largest](const Item& a, const Item& b) {
    return sort_before(a.first, a.second, b.first, b.second, largest);
  };
  parallel_items(l.outer * l.inner, l.n * 4, [&](int64_t b0, int64_t b1) {
    std::vector<Item> buf;
    buf.reserve(static_cast<size_t>(l.n));
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t o = b / l.inner, j = b % l.inner;
      const int64_t in_base = o * l.n * l.inner + j, out_base = o * k * l.inner + j;
      if (k * 8 <= l.n) {  // small k: one pass keeping a heap of the k best, worst on top
        buf.clear();
        for (int64_t i = 0; i < l.n; ++i) {
          Item it{to_acc<K>(x[in_base + i * l.inner]), i};
          if (static_cast<int64_t>(buf.size()) < k) {
            buf.push_back(it);
            std::push_heap(buf.begin(), buf.end(), first);
          } else if (k > 0 &&
                     (largest ? key_less(buf.front().first, it.first) : key_less(it.first, buf.front().first))) {
            // equal values never displace: the kept one has the lower index
            std::pop_heap(buf.begin(), buf.end(), first);
            buf.back() = it;
            std::push_heap(buf.begin(), buf.end(), first);
          }
        }
        std::sort_heap(buf.begin(), buf.end(), first);
      } else {
        buf.resize(static_cast<size_t>(l.n));
        for (int64_t i = 0; i < l.n; ++i) buf[i] = {to_acc<K>(x[in_base + i * l.inner]), i};
        std::nth_element(buf.begin(), buf.begin() + k, buf.end(), first);
        std::sort(buf.begin(), buf.begin() + k, first);
      }
      for (int64_t i = 0; i < k; ++i) {
        v[out_base + i * l.inner] = convert<T>(buf[i].first);
        ix[out_base + i * l.inner] = buf[i].second;
      }
    }
  });
}

// ---------------------------------------------------------------- softmax
// One contiguous row: max, sum of exp(x - max), normalise; the 2-byte floats compute in float and
// recompute exp rather than round an intermediate.
template <class T>
void softmax_row(const T* x, T* y, int64_t n, bool log) {
  using A = acc_t<T>;
  const A m = lane_fold<MaxM, A>(MaxM::identity<A>(), x, n, IdentT<A>{}, NoCenter{});
  if (log) {  // (x - max) - log(sum), as PyTorch: x - (max + log(sum)) loses bits when |max| is large
    const A ls = static_cast<A>(std::log(lane_fold<AddM, A>(0.0, x, n, ExpShiftT<A>{}, m)));
    for (int64_t k = 0; k < n; ++k) y[k] = convert<T>((to_acc<A>(x[k]) - m) - ls);
  } else if constexpr (std::is_same_v<T, A>) {
    for (int64_t k = 0; k < n; ++k) y[k] = exp_acc(x[k] - m);
    const A inv = static_cast<A>(1.0 / lane_fold<AddM, A>(0.0, y, n, IdentT<A>{}, NoCenter{}));
    for (int64_t k = 0; k < n; ++k) y[k] *= inv;
  } else {
    const A inv = static_cast<A>(1.0 / lane_fold<AddM, A>(0.0, x, n, ExpShiftT<A>{}, m));
    for (int64_t k = 0; k < n; ++k) y[k] = convert<T>(exp_acc(to_acc<A>(x[k]) - m) * inv);
  }
}

// The first-order backward of one contiguous row from the output y: softmax y (g - sum(g y)),
// log_softmax g - exp(y) sum(g); the sums in double lanes, so they vectorise.
template <class T>
void softmax_backward_row(const T* g, const T* y, T* dx, int64_t n, bool log) {
  using A = acc_t<T>;
  constexpr int L = 8;
  double lanes[L] = {}, total = 0;
  int64_t k = 0;
  for (; k + L <= n; k += L)
    for (int l = 0; l < L; ++l)
      lanes[l] += static_cast<double>(log ? to_acc<A>(g[k + l]) : to_acc<A>(g[k + l]) * to_acc<A>(y[k + l]));
  for (; k < n; ++k) total += static_cast<double>(log ? to_acc<A>(g[k]) : to_acc<A>(g[k]) * to_acc<A>(y[k]));
  for (int l = 0; l < L; ++l) total += lanes[l];
  const A s = static_cast<A>(total);
  if (log) {
    for (k = 0; k < n; ++k) dx[k] = convert<T>(to_acc<A>(g[k]) - exp_acc(to_acc<A>(y[k])) * s);
  } else {
    for (k = 0; k < n; ++k) dx[k] = convert<T>(to_acc<A>(y[k]) * (to_acc<A>(g[k]) - s));
  }
}

// Softmax over a non-innermost dim: a tile of w adjacent lines (stride `inner`) at once, vectorised
// across the lines.
template <class T>
void softmax_cols(const T* x, T* y, int64_t n, int64_t inner, int64_t w, bool log) {
  using A = acc_t<T>;
  constexpr bool kStore = std::is_same_v<T, A>;
  A m[kColTile], s[kColTile];
  for (int64_t j = 0; j < w; ++j) {
    m[j] = MaxM::identity<A>();
    s[j] = 0;
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < w; ++j) m[j] = MaxM::op(m[j], to_acc<A>(x[i * inner + j]));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < w; ++j) {
      A e = exp_acc(to_acc<A>(x[i * inner + j]) - m[j]);
      if (!log && kStore) y[i * inner + j] = convert<T>(e);
      s[j] += e;
    }
  if (log) {
    for (int64_t j = 0; j < w; ++j) s[j] = std::log(s[j]);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < w; ++j) y[i * inner + j] = convert<T>((to_acc<A>(x[i * inner + j]) - m[j]) - s[j]);
    return;
  }
  for (int64_t j = 0; j < w; ++j) s[j] = A(1) / s[j];
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < w; ++j) {
      if constexpr (kStore)
        y[i * inner + j] *= s[j];
      else
        y[i * inner + j] = convert<T>(exp_acc(to_acc<A>(x[i * inner + j]) - m[j]) * s[j]);
    }
}

template <class T>
void softmax_impl(const Tensor& out, const Tensor& in, int64_t dim, bool log) {
  const Lines l(in, dim);
  const T* x = static_cast<const T*>(in.raw_data());
  T* y = static_cast<T*>(out.raw_data());
  if (l.n == 0) return;
  if (l.inner == 1) {
    parallel_items(l.outer, l.n * 4, [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) softmax_row(x + o * l.n, y + o * l.n, l.n, log);
    });
    return;
  }
  const int64_t tiles = (l.inner + kColTile - 1) / kColTile;
  parallel_items(l.outer * tiles, 4 * l.n * std::min(l.inner, kColTile), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t o = t / tiles, j0 = (t % tiles) * kColTile;
      const int64_t off = o * l.n * l.inner + j0;
      softmax_cols(x + off, y + off, l.n, l.inner, std::min(kColTile, l.inner - j0), log);
    }
  });
}

}  // namespace

void reduce(ReduceKind kind, const Tensor& out, const Tensor& in, const ReduceParams& prm) {
  const ReducePlan plan = make_reduce_plan(out, in);
  visit_dtype<AllTypes>(in.dtype(), "[reduce]", [&]<class T>() {
    using A = acc_t<T>;
    constexpr bool kFloat = std::is_floating_point_v<A>;
    switch (kind) {
      case ReduceKind::Sum:
      case ReduceKind::Mean:
        if constexpr (kFloat) {
          double scale = kind == ReduceKind::Mean ? 1.0 / static_cast<double>(plan.N) : 1.0;
          run_monoid<T, A, double, T, AddM>(plan, out, IdentT<A>{}, ScaleF{scale});
        } else {
          run_monoid<T, int64_t, int64_t, int64_t, AddM>(plan, out, IdentT<int64_t>{}, PlainF{});
        }
        return;
      case ReduceKind::Prod:
        if constexpr (kFloat)
          run_monoid<T, A, A, T, MulM>(plan, out, IdentT<A>{}, PlainF{});
        else
          run_monoid<T, int64_t, int64_t, int64_t, MulM>(plan, out, IdentT<int64_t>{}, PlainF{});
        return;
      case ReduceKind::Max:
        return run_monoid<T, A, A, T, MaxM>(plan, out, IdentT<A>{}, PlainF{});
      case ReduceKind::Min:
        return run_monoid<T, A, A, T, MinM>(plan, out, IdentT<A>{}, PlainF{});
      case ReduceKind::All:
        return run_monoid<T, bool, bool, bool, AndM>(plan, out, NonZeroT<bool>{}, PlainF{});
      case ReduceKind::Any:
        return run_monoid<T, bool, bool, bool, OrM>(plan, out, NonZeroT<bool>{}, PlainF{});
      default:
        break;
    }
    if constexpr (kFloat) {
      switch (kind) {
        case ReduceKind::NormL0:
          return run_monoid<T, A, double, T, AddM>(plan, out, NonZeroT<A>{}, PlainF{});
        case ReduceKind::NormL1:
          return run_monoid<T, A, double, T, AddM>(plan, out, AbsT<A>{}, PlainF{});
        case ReduceKind::NormL2:
          return run_monoid<T, A, double, T, AddM>(plan, out, SquareT<A>{}, SqrtF{1.0});
        case ReduceKind::NormInf:
          return run_monoid<T, A, A, T, MaxM>(plan, out, AbsT<A>{}, PlainF{});
        case ReduceKind::NormNegInf:
          return run_monoid<T, A, A, T, MinM>(plan, out, AbsT<A>{}, PlainF{});
        case ReduceKind::NormP:
          return run_monoid<T, A, double, T, AddM>(plan, out, PowAbsT<A>{static_cast<A>(prm.p)}, RootF{1.0 / prm.p});
        default:
          break;
      }
    }
    throw_unsupported_dtype(in.dtype(), "[norm]");
  });
}

void var_mean(const Tensor& var, const Tensor& mean, const Tensor& in, int64_t correction, bool take_sqrt) {
  const ReducePlan plan = make_reduce_plan(var, in);
  visit_dtype<FloatTypes>(in.dtype(), "[var]", [&]<class T>() {
    // Pass 1: the mean in double; pass 2: squared deviations from it, in double.
    Tensor centre = make_tensor(var.shape(), kF64);
    const double n = static_cast<double>(plan.N);
    run_monoid<T, acc_t<T>, double, double, AddM>(plan, centre, IdentT<acc_t<T>>{}, ScaleF{1.0 / n});
    const double divisor = std::max(0.0, n - static_cast<double>(correction));
    run_monoid<T, double, double, T, AddM>(plan, var, SqDevT<double>{}, VarF{1.0 / divisor, take_sqrt},
                                           centre.raw_data());
    if (mean.defined()) copy(mean, centre);
  });
}

void logsumexp(const Tensor& out, const Tensor& in) {
  const ReducePlan plan = make_reduce_plan(out, in);
  visit_dtype<FloatTypes>(in.dtype(), "[logsumexp]", [&]<class T>() {
    using A = acc_t<T>;
    Tensor shift = make_tensor(out.shape(), dtype_of<A>());
    run_monoid<T, A, A, A, MaxM>(plan, shift, IdentT<A>{}, PlainF{});
    A* m = static_cast<A*>(shift.raw_data());
    for (int64_t k = 0; k < shift.numel(); ++k) m[k] = lse_shift(m[k]);
    run_monoid<T, A, double, T, AddM>(plan, out, ExpShiftT<A>{}, LogShiftF{}, m);
  });
}

void arg_reduce(bool is_max, const Tensor& values, const Tensor& indices, const Tensor& in) {
  const ReducePlan plan = make_reduce_plan(indices, in);
  visit_dtype<AllTypes>(in.dtype(), is_max ? "[argmax]" : "[argmin]", [&]<class T>() {
    T* v = values.defined() ? static_cast<T*>(values.raw_data()) : nullptr;
    int64_t* ix = static_cast<int64_t*>(indices.raw_data());
    if (is_max)
      run_reduce(plan, ArgReduce<T, true>{v, ix});
    else
      run_reduce(plan, ArgReduce<T, false>{v, ix});
  });
}

void cumulative(bool is_prod, const Tensor& out, const Tensor& in, int64_t dim) {
  Tensor x = in.contiguous();
  visit_dtype<AllTypes>(in.dtype(), is_prod ? "[cumprod]" : "[cumsum]", [&]<class T>() {
    if (is_prod)
      cumulative_impl<T, true>(out, x, dim);
    else
      cumulative_impl<T, false>(out, x, dim);
  });
}

void sort(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t dim, bool descending) {
  Tensor x = in.contiguous();
  visit_dtype<AllTypes>(in.dtype(), "[sort]", [&]<class T>() { sort_impl<T>(values, indices, x, dim, descending); });
}

void topk(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t k, int64_t dim, bool largest, bool) {
  Tensor x = in.contiguous();
  visit_dtype<AllTypes>(in.dtype(), "[topk]", [&]<class T>() { topk_impl<T>(values, indices, x, k, dim, largest); });
}

void softmax_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& out, bool log) {
  const int64_t n = out.dim() == 0 ? 1 : out.shape().back(), rows = n == 0 ? 0 : out.numel() / n;
  visit_dtype<FloatTypes>(out.dtype(), log ? "[log_softmax_backward]" : "[softmax_backward]", [&]<class T>() {
    const T* g = static_cast<const T*>(grad_out.raw_data());
    const T* y = static_cast<const T*>(out.raw_data());
    T* dx = static_cast<T*>(grad_in.raw_data());
    parallel_items(rows, n * 3, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) softmax_backward_row(g + r * n, y + r * n, dx + r * n, n, log);
    });
  });
}

void softmax(const Tensor& out, const Tensor& in, int64_t dim, bool log) {
  Tensor x = in.contiguous();
  visit_dtype<FloatTypes>(in.dtype(), log ? "[log_softmax]" : "[softmax]",
                          [&]<class T>() { softmax_impl<T>(out, x, dim, log); });
}

}  // namespace ember::kernels::cpu
