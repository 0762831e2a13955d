// Per-position math of the fused cross entropy, shared by the CPU kernel (kernels/cpu/loss.cpp) and the
// CUDA kernels (kernels/cuda/loss.cu): an online logsumexp whose partial rows merge in any grouping (so
// a warp or a block can split a row and read it once), one position's loss, and one gradient element.
#pragma once
#include <cmath>
#include <limits>

#include "core/half.hpp"

namespace ember::kernels {

// Running max m and sum s of exp(x - m) over the values seen. NaN anywhere makes the result NaN (m turns
// NaN and stays so, whatever the grouping), else a +inf makes it +inf and an all -inf row -inf, as the
// CPU's two-pass logsumexp and PyTorch.
template <class A>
struct LseAcc {
  A m = -std::numeric_limits<A>::infinity();
  A s = 0;

  EMBER_HD void add(A x) {
    if (m != m) return;
    if (x != x) {
      m = x;
    } else if (x > m) {
      s = s * std::exp(m - x) + A(1);  // m = -inf: exp(-inf) = 0
      m = x;
    } else if (x != -std::numeric_limits<A>::infinity()) {
      s += std::exp(x - m);  // after a +inf: exp(inf - inf) is NaN, but result() returns m then
    }
  }
  // Folds in another partial row (om, os).
  EMBER_HD void merge(A om, A os) {
    if (m != m) return;
    if (om != om) {
      m = om;
    } else if (om > m) {
      s = s * std::exp(m - om) + os;
      m = om;
    } else if (om != -std::numeric_limits<A>::infinity()) {
      s += os * std::exp(om - m);
    }
  }
  EMBER_HD A result() const {
    constexpr A inf = std::numeric_limits<A>::infinity();
    if (m != m || m == inf || m == -inf) return m;
    return m + std::log(s);
  }
};

// One position's loss: (1 - ls) w_t (lse - x_t) + ls / C (W lse - sum_c w_c x_c), with W the summed class
// weights (C without weights) and dot = sum_c w_c x_c (sum_c x_c without weights).
template <class A>
EMBER_HD A ce_position_loss(A lse, A x_t, A wt, A keep, A ls_over_c, A w_total, A dot, bool smoothing) {
  A v = keep * wt * (lse - x_t);
  if (smoothing) v += ls_over_c * (w_total * lse - dot);
  return v;
}

// The per-position factor of the softmax term in d loss / d x: coef ((1 - ls) w_t + ls W / C).
template <class A>
EMBER_HD A ce_grad_scale(A coef, A keep, A wt, A lsc, A w_total) {
  return coef * (keep * wt + lsc * w_total);
}
// d loss / d x_j without the target's one-hot term: cs softmax_j - coef ls / C w_j.
template <class A>
EMBER_HD A ce_grad_base(A cs, A softmax_j, A coef, A lsc, A wj) {
  return cs * softmax_j - coef * lsc * wj;
}
// What the target class subtracts on top: coef (1 - ls) w_t.
template <class A>
EMBER_HD A ce_grad_target(A coef, A keep, A wt) {
  return coef * keep * wt;
}

}  // namespace ember::kernels
