// The per-element and per-row math of the pooling and normalisation kernels, EMBER_HD so that the
// CPU kernels (kernels/cpu/pool.cpp, norm.cpp) and the CUDA ones (kernels/cuda/pool.cu, norm.cu) share
// it: window bounds, the windows that hold an input position (the gather backwards), the max-pool
// comparison, layer_norm's normalisation and backward row formula, batch_norm's gradient coefficients
// and Welford merges. CPU tests cover all of it.
#pragma once
#include <cstdint>
#include <limits>

#include "core/half.hpp"

namespace ember::kernels {

EMBER_HD int64_t nn_min(int64_t a, int64_t b) { return a < b ? a : b; }
EMBER_HD int64_t nn_max(int64_t a, int64_t b) { return a > b ? a : b; }

// ------------------------------------------------------------------------------------ pooling

// A half-open range [begin, end) of positions along one dim.
struct Range {
  int64_t begin, end;
};

// The in-range taps of max-pool window o along a dim of n: begin, begin + d, ... below end
// (PyTorch's: taps in the padding are skipped, the first tap moved up by whole dilations).
EMBER_HD Range max_pool_taps(int64_t o, int64_t k, int64_t s, int64_t p, int64_t d, int64_t n) {
  int64_t begin = o * s - p;
  const int64_t end = nn_min(begin + (k - 1) * d + 1, n);
  if (begin < 0) begin += (-begin + d - 1) / d * d;
  return {begin, end};
}

// An avg-pool window along one dim: [begin, end) inside the input, and `size`, the window clipped to
// input + padding only (count_include_pad's divisor factor).
struct AvgWindow {
  int64_t begin, end, size;
};
EMBER_HD AvgWindow avg_pool_window(int64_t o, int64_t k, int64_t s, int64_t p, int64_t n) {
  const int64_t b = o * s - p;
  const int64_t e = nn_min(b + k, n + p);
  return {nn_max(b, 0), nn_min(e, n), e - b};
}
EMBER_HD int64_t avg_pool_divisor(const AvgWindow& h, const AvgWindow& w, bool count_include_pad) {
  return count_include_pad ? h.size * w.size : (h.end - h.begin) * (w.end - w.begin);
}

// PyTorch's adaptive bins: bin o of n inputs into m outputs is [floor(o n / m), ceil((o + 1) n / m)).
EMBER_HD int64_t adaptive_start(int64_t o, int64_t n, int64_t m) { return o * n / m; }
EMBER_HD int64_t adaptive_end(int64_t o, int64_t n, int64_t m) { return ((o + 1) * n + m - 1) / m; }

// The windows (of `out`) whose span [o s - p, o s - p + span) holds input position i: the outputs an
// input gathers from in the backwards. span is k for avg pools and (k - 1) d + 1 for max pools (a
// superset of the windows with a tap at i; the saved indices pick among them).
EMBER_HD Range pool_windows_containing(int64_t i, int64_t span, int64_t s, int64_t p, int64_t out) {
  const int64_t t = i + p - span;  // o s > t
  const int64_t begin = t < 0 ? 0 : t / s + 1;
  const int64_t end = nn_min((i + p) / s + 1, out);  // o s <= i + p
  return {begin, end < begin ? begin : end};
}
// The adaptive bins holding input i: the same formula with the roles of n and m swapped.
EMBER_HD Range adaptive_windows_containing(int64_t i, int64_t n, int64_t m) {
  return {adaptive_start(i, m, n), nn_min(adaptive_end(i, m, n), m)};
}

template <class A>
EMBER_HD A pool_lowest() {
  if constexpr (std::numeric_limits<A>::has_infinity)
    return -std::numeric_limits<A>::infinity();
  else
    return std::numeric_limits<A>::lowest();
}
// Whether v replaces the running max: larger, or NaN (a NaN wins; the last NaN's position is kept).
// Bitwise |, so that the CPU's select loops vectorise.
template <class A>
EMBER_HD bool pool_max_take(A v, A best) {
  if constexpr (std::numeric_limits<A>::has_quiet_NaN)
    return (v > best) | (v != v);
  else
    return v > best;
}

// ------------------------------------------------------------------------------- normalisation

// A row's mean as hi + lo from k (the row's first element) and the sum of x - k over n values: the
// shifted sum does not cancel when the mean is large against the spread, and x - hi is then exact.
template <class A>
struct MeanSplit {
  A hi, lo;
};
template <class A>
EMBER_HD MeanSplit<A> shifted_mean(A k, A sum_shifted, int64_t n) {
  const A dm = sum_shifted / static_cast<A>(n);
  const A hi = k + dm;
  return {hi, (k - hi) + dm};
}
// x normalised by a mean kept as hi + lo (x - hi is exact when the spread is small against the mean).
template <class A>
EMBER_HD A normalize_value(A x, A hi, A lo, A rstd) {
  return ((x - hi) - lo) * rstd;
}
// layer_norm's input gradient for one element (first-order): with gw = g * w and the row means
// mean(gw * xhat), mean(gw): dx = rstd * (gw - xhat * mean_gx - mean_g).
template <class A>
EMBER_HD A layer_norm_dx(A rstd, A gw, A xhat, A mean_gx, A mean_g) {
  return rstd * (gw - xhat * mean_gx - mean_g);
}

// batch_norm's backward per channel: dx = k g + bx x + d, from the channel's sums of g and
// g * (x - mean) over `count` values. Evaluation (constant statistics) leaves only k g.
struct BnGradCoeffs {
  double k, bx, d;
};
EMBER_HD BnGradCoeffs bn_grad_coeffs(double scale, double rstd, double mean, double sum_g, double sum_gxm, double count,
                                     bool training) {
  const double k = scale * rstd;
  const double bx = training ? -k * rstd * rstd * sum_gxm / count : 0.0;
  const double d = training ? -k * sum_g / count - bx * mean : 0.0;
  return {k, bx, d};
}

// A running (count, mean, sum of squared deviations) and Chan's merge of two of them, in a fixed order
// wherever it is used, so the statistics are deterministic.
template <class A>
struct Welford {
  A n = 0, mean = 0, m2 = 0;
};
template <class A>
EMBER_HD Welford<A> welford_add(Welford<A> w, A x) {
  w.n += A(1);
  const A delta = x - w.mean;
  w.mean += delta / w.n;
  w.m2 += delta * (x - w.mean);
  return w;
}
template <class A>
EMBER_HD Welford<A> welford_merge(const Welford<A>& a, const Welford<A>& b) {
  const A n = a.n + b.n;
  if (n == A(0)) return a;
  const A f = b.n / n, delta = b.mean - a.mean;
  return {n, a.mean + delta * f, a.m2 + b.m2 + delta * delta * a.n * f};
}

}  // namespace ember::kernels
