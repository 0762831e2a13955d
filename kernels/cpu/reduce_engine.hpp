// The CPU reduction engine: input dims are split into kept and reduced sets, each sorted into memory
// order and coalesced. When the innermost input dim is reduced, each output folds its rows with a
// many-lane vectorisable loop; when it is kept, whole output rows accumulate at once (reduced index
// outer, output index inner). Work is split over outputs, or over the reduced range and combined.
// This header holds the op-side templates; the drivers live in kernels/cpu/reduce.cpp.
#pragma once
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "kernels/cpu/loops.hpp"
#include "kernels/reduce_math.hpp"
#include "kernels/reduce_plan.hpp"
#include "kernels/vec_math.hpp"

namespace ember::kernels::cpu {

// Runs f(begin, end) over chunks of [0, n) of at least `grain` items on the thread pool. Not a
// template: one tbb instantiation serves every reduction (compile time).
using RangeFn = void (*)(const void* ctx, int64_t begin, int64_t end);
void parallel_range_impl(int64_t n, int64_t grain, RangeFn fn, const void* ctx);
template <class F>
void parallel_range(int64_t n, int64_t grain, const F& f) {
  parallel_range_impl(
      n, grain, [](const void* c, int64_t b, int64_t e) { (*static_cast<const F*>(c))(b, e); }, &f);
}

// ReducePlan and make_reduce_plan live in kernels/reduce_plan.hpp (the CUDA kernels share them).
static_assert(kReduceMaxDims == kMaxDims);

// An op seen by the engine's drivers: its state is opaque bytes, its row/column folds and output
// writes are reached through this table, so the drivers (odometers, splitting, threading) are
// compiled once and only the inner loops are instantiated per op and dtype.
struct OpTable {
  int64_t state_size;
  void (*init)(const void* op, void* s, int64_t n);                    // n consecutive states
  void (*combine)(const void* op, void* a, const void* b, int64_t n);  // a[i] <- a[i] then b[i]
  void (*emit)(const void* op, int64_t off, int64_t ostride, const void* s, int64_t n);
  // fold n elements p[0], p[stride], ... of output `off` into s; pos = reduced index of p[0]
  void (*row)(const void* op, void* s, const char* p, int64_t stride, int64_t n, int64_t off, int64_t pos);
  // acc[i] <- acc[i] then p[i * stride] for i < w (outputs off + i * ostride, reduced index pos)
  void (*cols)(const void* op, void* acc, const char* p, int64_t stride, int64_t w, int64_t off, int64_t ostride,
               int64_t pos);
};

inline constexpr int64_t kColTile = 1024;
inline constexpr int64_t kMaxStateSize = 16;

template <class Op>
const OpTable& table_of() {
  using S = typename Op::State;
  static_assert(sizeof(S) <= kMaxStateSize);
  static const OpTable t{
      sizeof(S),
      [](const void* op, void* s, int64_t n) {
        for (int64_t i = 0; i < n; ++i) static_cast<S*>(s)[i] = static_cast<const Op*>(op)->init();
      },
      [](const void* op, void* a, const void* b, int64_t n) {
        for (int64_t i = 0; i < n; ++i)
          static_cast<const Op*>(op)->combine(static_cast<S*>(a)[i], static_cast<const S*>(b)[i]);
      },
      [](const void* op, int64_t off, int64_t ostride, const void* s, int64_t n) {
        for (int64_t i = 0; i < n; ++i)
          static_cast<const Op*>(op)->emit(off + i * ostride, static_cast<const S*>(s)[i]);
      },
      [](const void* op, void* s, const char* p, int64_t stride, int64_t n, int64_t off, int64_t pos) {
        static_cast<const Op*>(op)->row(*static_cast<S*>(s), p, stride, n, off, pos);
      },
      [](const void* op, void* acc, const char* p, int64_t stride, int64_t w, int64_t off, int64_t ostride,
         int64_t pos) { static_cast<const Op*>(op)->cols(static_cast<S*>(acc), p, stride, w, off, ostride, pos); },
  };
  return t;
}

// Runs a reduction plan (kernels/cpu/reduce.cpp).
void run_reduce(const ReducePlan& p, const OpTable& t, const void* op);
template <class Op>
void run_reduce(const ReducePlan& p, const Op& op) {
  run_reduce(p, table_of<Op>(), &op);
}

// ---------------------------------------------------------------- monoids, transforms, finalisers

// The monoids (AddM, MulM, MaxM, MinM, AndM, OrM) are in kernels/reduce_math.hpp.

struct NoCenter {};

// half -> float without branches (exact, Giesen's method), so that loops over half inputs vectorise;
// other types convert with a plain cast.
inline float half_bits_to_float(uint16_t h) {
  const uint32_t shifted = static_cast<uint32_t>(h & 0x7fffu) << 13;
  const uint32_t e = shifted & 0x0f800000u;
  uint32_t o = shifted + 0x38000000u + (e == 0x0f800000u ? 0x38000000u : 0u) + (e == 0 ? 0x00800000u : 0u);
  float f = std::bit_cast<float>(o);
  f = e == 0 ? f - std::bit_cast<float>(113u << 23) : f;  // renormalise subnormals
  return std::bit_cast<float>(std::bit_cast<uint32_t>(f) | static_cast<uint32_t>(h & 0x8000u) << 16);
}
template <class Acc, class In>
inline Acc to_acc(In x) {
  if constexpr (std::is_same_v<In, half>)
    return static_cast<Acc>(half_bits_to_float(x.bits));
  else
    return static_cast<Acc>(x);
}

template <class A>
inline A exp_acc(A x) {
  if constexpr (std::is_same_v<A, float>)
    return exp_fast(x);
  else
    return std::exp(x);
}

template <class Acc>
struct IdentT {
  template <class In, class C>
  Acc operator()(In x, C) const {
    return to_acc<Acc>(x);
  }
};
template <class Acc>
struct AbsT {
  template <class In, class C>
  Acc operator()(In x, C) const {
    return abs_term(to_acc<Acc>(x));
  }
};
template <class Acc>
struct SquareT {
  template <class In, class C>
  Acc operator()(In x, C) const {
    return square_term(to_acc<Acc>(x));
  }
};
template <class Acc>
struct PowAbsT {
  Acc p;
  template <class In, class C>
  Acc operator()(In x, C) const {
    return pow_abs_term(to_acc<Acc>(x), p);
  }
};
template <class Acc>
struct NonZeroT {
  template <class In, class C>
  Acc operator()(In x, C) const {
    return nonzero_term<Acc>(to_acc<acc_t<In>>(x));
  }
};
// (x - mean)^2 around a per-output centre.
template <class Acc>
struct SqDevT {
  using Center = Acc;
  template <class In>
  Acc operator()(In x, Acc c) const {
    return sq_dev_term(to_acc<Acc>(x), c);
  }
};
// exp(x - max) around a per-output centre.
template <class Acc>
struct ExpShiftT {
  using Center = Acc;
  template <class In>
  Acc operator()(In x, Acc c) const {
    return exp_acc(to_acc<Acc>(x) - c);
  }
};

struct PlainF {
  template <class Out, class S, class C>
  Out fin(S s, C) const {
    return convert<Out>(s);
  }
};
struct ScaleF {
  double scale;
  template <class Out, class S, class C>
  Out fin(S s, C) const {
    return convert<Out>(scale_fin(s, scale));
  }
};
struct SqrtF {
  double scale;
  template <class Out, class S, class C>
  Out fin(S s, C) const {
    return convert<Out>(sqrt_fin(s, scale));
  }
};
struct RootF {
  double inv_p;
  template <class Out, class S, class C>
  Out fin(S s, C) const {
    return convert<Out>(root_fin(s, inv_p));
  }
};
struct LogShiftF {
  template <class Out, class S, class C>
  Out fin(S s, C c) const {
    return convert<Out>(log_shift_fin(static_cast<double>(s), static_cast<double>(c)));
  }
};

template <class Tr>
concept Centered = requires {
  typename Tr::Center;
};

// Max/min of plain numbers over explicit vectors: GCC does not vectorise the NaN-aware select
// of the lane loop below. NaN lanes are tracked in a mask and win at the end.
template <class A, int L>
struct VecOf {
  typedef A type __attribute__((vector_size(L * sizeof(A))));
};
template <class Mon, class A, class In, class Tr>
inline constexpr bool kVecExtreme =
    (std::is_same_v<Mon, MaxM> ||
     std::is_same_v<Mon, MinM>)&&std::is_same_v<A, In>&& std::is_same_v<Tr, IdentT<A>>&& std::is_arithmetic_v<A> &&
    !std::is_same_v<A, bool>;
template <class Mon, class A>
A vec_extreme(const A* x, int64_t n, int64_t& done) {
  // One native vector: a GCC vector wider than the target's registers is lowered element by element
  // (3x slower softmax on AVX2 with 64-byte vectors).
#if defined(__AVX512F__)
  constexpr int L = 64 / sizeof(A);
#elif defined(__AVX__)
  constexpr int L = 32 / sizeof(A);
#else
  constexpr int L = 16 / sizeof(A);
#endif
  using V = typename VecOf<A, L>::type;
  V m = V{} + Mon::template identity<A>();
  auto nan = m != m;
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    V v;
    std::memcpy(&v, x + i, sizeof v);
    if constexpr (std::is_floating_point_v<A>) nan |= v != v;
    if constexpr (std::is_same_v<Mon, MaxM>)
      m = v > m ? v : m;
    else
      m = v < m ? v : m;
  }
  done = i;
  A r = Mon::template identity<A>();
  for (int j = 0; j < L; ++j) r = Mon::op(r, static_cast<A>(m[j]));
  if constexpr (std::is_floating_point_v<A>) {
    for (int j = 0; j < L; ++j)
      if (nan[j]) r = std::numeric_limits<A>::quiet_NaN();
  }
  return r;
}

// Folds a contiguous run into s with L independent Acc lanes (a vectorisable loop); the lanes are
// combined pairwise and folded into s every block, so float lanes can feed a double sum.
template <class Mon, class Acc, class State, class In, class Tr, class C>
State lane_fold(State s, const In* x, int64_t n, const Tr& tr, C c) {
  if constexpr (kVecExtreme<Mon, Acc, In, Tr>) {
    int64_t done = 0;
    s = Mon::op(s, static_cast<State>(vec_extreme<Mon>(x, n, done)));
    for (; done < n; ++done) s = Mon::op(s, static_cast<State>(x[done]));
    return s;
  }
  constexpr int L = std::clamp<int>(128 / static_cast<int>(sizeof(Acc)), 8, 32);
  constexpr int64_t kBlock = 64 * L;
  int64_t i = 0;
  while (n - i >= L) {
    const int64_t stop = i + std::min<int64_t>(kBlock, (n - i) / L * L);
    Acc a[L];
    for (int j = 0; j < L; ++j) a[j] = Mon::template identity<Acc>();
    for (; i < stop; i += L)
      for (int j = 0; j < L; ++j) a[j] = Mon::op(a[j], tr(x[i + j], c));
    for (int h = L / 2; h > 0; h /= 2)
      for (int j = 0; j < h; ++j) a[j] = Mon::op(a[j], a[j + h]);
    s = Mon::op(s, static_cast<State>(a[0]));
  }
  for (; i < n; ++i) s = Mon::op(s, static_cast<State>(tr(x[i], c)));
  return s;
}

// A reduction by a monoid over transformed elements: many Acc lanes per contiguous row (folded into
// State every block, e.g. float lanes into a double sum), State rows in outer mode.
template <class In, class Acc, class StateT, class Out, class Mon, class Tr, class Fin>
struct MonoidReduce {
  using State = StateT;
  Tr tr;
  Fin fin;
  Out* out;
  const void* aux = nullptr;  // per-output centres (Tr::Center, keepdim layout) for centred transforms

  auto center(int64_t off) const {
    if constexpr (Centered<Tr>)
      return static_cast<const typename Tr::Center*>(aux)[off];
    else
      return NoCenter{};
  }
  State init() const { return Mon::template identity<State>(); }
  void combine(State& a, const State& b) const { a = Mon::op(a, b); }
  void emit(int64_t off, const State& s) const { out[off] = fin.template fin<Out>(s, center(off)); }

  void row(State& s, const char* p, int64_t stride, int64_t n, int64_t off, int64_t) const {
    const auto c = center(off);
    if (stride == static_cast<int64_t>(sizeof(In))) {
      s = lane_fold<Mon, Acc>(s, reinterpret_cast<const In*>(p), n, tr, c);
      return;
    }
    for (int64_t i = 0; i < n; ++i)
      s = Mon::op(s, static_cast<State>(tr(*reinterpret_cast<const In*>(p + i * stride), c)));
  }
  void cols(State* acc, const char* p, int64_t stride, int64_t w, int64_t off, int64_t ostride, int64_t) const {
    if (stride == static_cast<int64_t>(sizeof(In))) {
      const In* x = reinterpret_cast<const In*>(p);
      if constexpr (Centered<Tr>) {
        if (ostride == 1) {
          const auto* c = static_cast<const typename Tr::Center*>(aux) + off;
          for (int64_t i = 0; i < w; ++i) acc[i] = Mon::op(acc[i], static_cast<State>(tr(x[i], c[i])));
          return;
        }
      } else {
        for (int64_t i = 0; i < w; ++i) acc[i] = Mon::op(acc[i], static_cast<State>(tr(x[i], NoCenter{})));
        return;
      }
    }
    for (int64_t i = 0; i < w; ++i)
      acc[i] = Mon::op(acc[i],
                       static_cast<State>(tr(*reinterpret_cast<const In*>(p + i * stride), center(off + i * ostride))));
  }
};

}  // namespace ember::kernels::cpu
