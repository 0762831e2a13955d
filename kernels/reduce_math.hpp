// Per-element and per-state math of the reduction family, shared by the CPU engine
// (kernels/cpu/reduce_engine.hpp, kernels/cpu/reduce.cpp) and the CUDA kernels (kernels/cuda/reduce*.cu),
// so that the CPU tests cover what the GPU computes: the monoids (max/min propagate NaN), the norm
// terms, the finalisers, the arg-reduce and sort orders (NaN as the extreme / largest, ties to the lower
// index) and the online softmax state.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "core/half.hpp"

namespace ember::kernels {

// ---------------------------------------------------------------- monoids
struct AddM {
  template <class A>
  static EMBER_HD A identity() {
    return A(0);
  }
  template <class A>
  static EMBER_HD A op(A a, A b) {
    return a + b;
  }
};
struct MulM {
  template <class A>
  static EMBER_HD A identity() {
    return A(1);
  }
  template <class A>
  static EMBER_HD A op(A a, A b) {
    return a * b;
  }
};
// Max/min propagate NaN: once a NaN is seen it sticks (v != v is false for integers).
struct MaxM {
  template <class A>
  static EMBER_HD A identity() {
    if constexpr (std::numeric_limits<A>::has_infinity)
      return -std::numeric_limits<A>::infinity();
    else
      return std::numeric_limits<A>::lowest();
  }
  template <class A>
  static EMBER_HD A op(A a, A b) {
    return (b > a || b != b) ? b : a;
  }
};
struct MinM {
  template <class A>
  static EMBER_HD A identity() {
    if constexpr (std::numeric_limits<A>::has_infinity)
      return std::numeric_limits<A>::infinity();
    else
      return std::numeric_limits<A>::max();
  }
  template <class A>
  static EMBER_HD A op(A a, A b) {
    return (b < a || b != b) ? b : a;
  }
};
struct AndM {
  template <class A>
  static EMBER_HD A identity() {
    return true;
  }
  template <class A>
  static EMBER_HD A op(A a, A b) {
    return a && b;
  }
};
struct OrM {
  template <class A>
  static EMBER_HD A identity() {
    return false;
  }
  template <class A>
  static EMBER_HD A op(A a, A b) {
    return a || b;
  }
};

// ---------------------------------------------------------------- element terms of the norms
template <class A>
EMBER_HD A abs_term(A v) {
  return std::abs(v);
}
template <class A>
EMBER_HD A square_term(A v) {
  return v * v;
}
template <class A>
EMBER_HD A pow_abs_term(A v, A p) {
  return std::pow(std::abs(v), p);
}
template <class R, class A>
EMBER_HD R nonzero_term(A v) {
  return static_cast<R>(v != A(0));
}
// (x - centre)^2 for the variance's second pass.
template <class A>
EMBER_HD A sq_dev_term(A v, A c) {
  const A d = v - c;
  return d * d;
}

// ---------------------------------------------------------------- finalisers (in double)
EMBER_HD double scale_fin(double s, double scale) { return s * scale; }
EMBER_HD double sqrt_fin(double s, double scale) { return std::sqrt(s * scale); }
EMBER_HD double root_fin(double s, double inv_p) { return std::pow(s, inv_p); }
// m2 / max(0, n - correction), optionally square-rooted (scale is the reciprocal divisor).
EMBER_HD double var_fin(double m2, double scale, bool root) {
  const double v = m2 * scale;
  return root ? std::sqrt(v) : v;
}
// logsumexp from the shift c and sum(exp(x - c)).
EMBER_HD double log_shift_fin(double s, double c) { return c + std::log(s); }
// The shift of logsumexp: the max, or 0 when it is infinite (all -inf gives -inf, any +inf gives +inf,
// without inf - inf).
template <class A>
EMBER_HD A lse_shift(A m) {
  return (m == std::numeric_limits<A>::infinity() || m == -std::numeric_limits<A>::infinity()) ? A(0) : m;
}

// ---------------------------------------------------------------- arg-reduce and sort orders
// v beats cur for argmax (kMax) / argmin: strictly more extreme, or a NaN over a number.
template <bool kMax, class A>
EMBER_HD bool arg_better(A v, A cur) {
  if constexpr (kMax)
    return v > cur || (v != v && cur == cur);
  else
    return v < cur || (v != v && cur == cur);
}
// Merges two (value, index) candidates, index < 0 meaning none: the better value wins, equal values
// (or two NaNs) go to the lower index, so the result does not depend on the merge order.
template <bool kMax, class A>
EMBER_HD void arg_merge(A& v, int64_t& i, A bv, int64_t bi) {
  if (bi < 0) return;
  if (i < 0 || arg_better<kMax>(bv, v) || (!arg_better<kMax>(v, bv) && bi < i)) {
    v = bv;
    i = bi;
  }
}

// a < b with NaN ordered as the largest value, as PyTorch's sort.
template <class K>
EMBER_HD bool key_less(K a, K b) {
  return a < b || (a == a && b != b);
}
// Whether (ka, ia) sorts before (kb, ib): by key (descending or not), ties by index (a stable sort).
template <class K>
EMBER_HD bool sort_before(K ka, int64_t ia, K kb, int64_t ib, bool descending) {
  const bool lt = descending ? key_less(kb, ka) : key_less(ka, kb);
  const bool gt = descending ? key_less(ka, kb) : key_less(kb, ka);
  return lt || (!gt && ia < ib);
}

// sort_before over a row padded to a power of two: slots with index >= n are padding and sort last.
template <class K>
EMBER_HD bool padded_before(K ka, int64_t ia, K kb, int64_t ib, int64_t n, bool descending) {
  if (ia >= n) return false;
  if (ib >= n) return true;
  return sort_before(ka, ia, kb, ib, descending);
}

// ---------------------------------------------------------------- online softmax
// The running max m and sum s of exp(x - m) over a row. exp(x - x) rather than 1 keeps the CPU's
// answer for +inf (NaN); -inf terms add nothing, so a row of -inf only gives s = 0 (NaN output).
template <class A, class Exp>
EMBER_HD void softmax_fold(A& m, A& s, A x, Exp exp) {
  if (m != m) return;
  if (x != x) {
    m = x;
    s = x;
  } else if (x > m) {
    s = s * exp(m - x) + exp(x - x);
    m = x;
  } else if (x > -std::numeric_limits<A>::infinity()) {
    s += exp(x - m);
  }
}
template <class A, class Exp>
EMBER_HD void softmax_merge(A& m, A& s, A bm, A bs, Exp exp) {
  if (m != m) return;
  if (bm != bm) {
    m = bm;
    s = bs;
    return;
  }
  const A inf = std::numeric_limits<A>::infinity();
  const A nm = bm > m ? bm : m;
  const A a = m > -inf ? s * exp(m - nm) : A(0);
  const A b = bm > -inf ? bs * exp(bm - nm) : A(0);
  m = nm;
  s = a + b;
}

}  // namespace ember::kernels
