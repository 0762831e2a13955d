// CPU fused cross entropy over class indices: per position (n, k) of an [N, C, K] input, one pass
// for the row max, one for sum(exp) (and the smoothing sums), then the loss; the backward writes
// coef * (s * exp(x - lse) - q) in one pass. f32 computes exp 8 lanes at a time (vec_math.hpp's
// polynomial in GCC vector types).
#include "kernels/loss.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/cpu/loops.hpp"
#include "kernels/functors.hpp"
#include "kernels/loss_math.hpp"
#include "kernels/vec_math.hpp"

// The 8-float vector helpers below are internal (inlined, never across a library boundary), so GCC's
// note that their ABI depends on -mavx is moot; builds without -march=native (a plain subproject) warn.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace ember::kernels {

namespace cpu {
namespace {

// Positions [0, n) in parallel chunks of about kGrain elements of work when large.
template <class F>
void for_positions(int64_t n, int64_t work, F&& body) {
  work = std::max<int64_t>(work, 1);
  if (n * work <= kGrain) {
    body(0, n);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, std::max<int64_t>(1, kGrain / work)),
                    [&](const tbb::blocked_range<int64_t>& r) { body(r.begin(), r.end()); });
}

// Max over C values at stride st (1 for [N, C] input: 32-byte vectors there; GCC keeps a scalar
// ternary-max reduction scalar without -ffast-math). A NaN is skipped here and poisons the exp sum.
template <class T, bool kUnit>
inline T row_max(const T* x, int64_t c, int64_t stride) {
  T m = x[0];
  int64_t j = 0;
  if constexpr (kUnit) {
    constexpr int L = 32 / sizeof(T);
    typedef T V __attribute__((vector_size(32)));
    if (c >= L) {
      V mv;
      std::memcpy(&mv, x, sizeof mv);
      for (j = L; j + L <= c; j += L) {
        V v;
        std::memcpy(&v, x + j, sizeof v);
        mv = v > mv ? v : mv;
      }
      for (int l = 0; l < L; ++l) m = mv[l] > m ? mv[l] : m;
    }
  }
  for (; j < c; ++j) m = x[j * stride] > m ? x[j * stride] : m;
  return m;
}

// exp_fast of vec_math.hpp on 8 floats at once in GCC vector types: GCC leaves the scalar form
// unvectorised in a loop ("control flow"), which made it the cost of the whole kernel.
typedef float V8 __attribute__((vector_size(32)));
typedef int32_t I8 __attribute__((vector_size(32)));

inline V8 load8(const float* p) {
  V8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline V8 exp8(V8 x) {
  const V8 lo = V8{} - 104.0f, hi = V8{} + 88.8f;
  x = x < lo ? lo : x;  // NaN passes through both
  x = x > hi ? hi : x;
  const V8 t = x * 1.44269504088896341f + 12582912.0f;
  const V8 n = t - 12582912.0f;
  V8 r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V8 q = V8{} + 1.9875691500e-4f;
  q = q * r + 1.3981999507e-3f;
  q = q * r + 8.3334519073e-3f;
  q = q * r + 4.1665795894e-2f;
  q = q * r + 1.6666665459e-1f;
  q = q * r + 5.0000001201e-1f;
  V8 y = q * r * r + r + 1.0f;
  const I8 ni = std::bit_cast<I8>(t) - 0x4B400000;
  const I8 n1 = ni >> 1, n2 = ni - n1;
  const I8 s1 = (n1 + 127) << 23, s2 = (n2 + 127) << 23;
  y *= std::bit_cast<V8>(s1);
  return y * std::bit_cast<V8>(s2);
}

// log(sum(exp(x))) over C values at stride st.
template <class T, bool kUnit>
inline T row_logsumexp(const T* x, int64_t c, int64_t stride) {
  const T m = row_max<T, kUnit>(x, c, stride);  // NaN only when x[0] is: the exp sum catches the others
  if (std::isinf(m)) {  // all -inf, or a +inf: the loss is NaN or inf, as PyTorch's, unless a NaN is there
    for (int64_t j = 0; j < c; ++j)
      if (std::isnan(x[j * stride])) return x[j * stride];
    return m;
  }
  T s = 0;
  int64_t j = 0;
  if constexpr (kUnit && std::is_same_v<T, float>) {
    V8 acc{};
    for (; j + 8 <= c; j += 8) acc += exp8(load8(x + j) - m);
    for (int l = 0; l < 8; ++l) s += acc[l];
  }
  const int64_t st = kUnit ? 1 : stride;
  for (; j < c; ++j) s += exp_<T>(x[j * st] - m);
  return m + std::log(s);
}

// Sum of x (w == nullptr) or of w * x over C values at stride st.
template <class T, bool kUnit>
inline T row_dot(const T* x, const T* w, int64_t c, int64_t stride) {
  const int64_t st = kUnit ? 1 : stride;
  T s = 0;
  if (w)
    for (int64_t j = 0; j < c; ++j) s += w[j] * x[j * st];
  else
    for (int64_t j = 0; j < c; ++j) s += x[j * st];
  return s;
}

template <class T>
std::pair<double, double> forward_impl(const Tensor& loss_t, const Tensor& lse_t, const Tensor& input,
                                       const Tensor& target, const Tensor& weight_t, const CrossEntropyParams& p) {
  const int64_t n = input.size(0), c = input.size(1), k = input.size(2), positions = n * k;
  const T* x = input.data_ptr<T>();
  const int64_t* tg = target.data_ptr<int64_t>();
  const T* w = weight_t.defined() ? weight_t.data_ptr<T>() : nullptr;
  T* loss = loss_t.data_ptr<T>();
  T* lse = lse_t.data_ptr<T>();
  for (int64_t i = 0; i < positions; ++i) {
    const int64_t t = tg[i];
    EMBER_CHECK(t == p.ignore_index || (t >= 0 && t < c), IndexError, "[cross_entropy] target ", t,
                " is out of bounds for ", c, " classes (at flat target index ", i, "; ignore_index ", p.ignore_index,
                ")");
  }
  const T ls = static_cast<T>(p.label_smoothing), keep = static_cast<T>(1.0 - p.label_smoothing);
  const T w_total = w ? row_dot<T, true>(w, nullptr, c, 1) : static_cast<T>(c);
  auto run = [&]<bool kUnit>() {
    for_positions(positions, c, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t t = tg[i];
        if (t == p.ignore_index) {
          loss[i] = 0;
          lse[i] = 0;
          continue;
        }
        const T* row = kUnit ? x + i * c : x + (i / k) * c * k + i % k;
        const T l = row_logsumexp<T, kUnit>(row, c, k);
        const T wt = w ? w[t] : T(1);
        const T dot = ls != 0 ? row_dot<T, kUnit>(row, w, c, k) : T(0);
        loss[i] = ce_position_loss<T>(l, row[t * k], wt, keep, ls / static_cast<T>(c), w_total, dot, ls != 0);
        lse[i] = l;
      }
    });
  };
  if (k == 1)
    run.template operator()<true>();
  else
    run.template operator()<false>();
  double total = 0, wsum = 0;
  for (int64_t i = 0; i < positions; ++i) {
    if (tg[i] == p.ignore_index) continue;
    total += static_cast<double>(loss[i]);
    wsum += w ? static_cast<double>(w[tg[i]]) : 1.0;
  }
  return {total, wsum};
}

template <class T>
void backward_impl(const Tensor& grad_input, const Tensor& grad_loss, double grad_scale, const Tensor& input,
                   const Tensor& target, const Tensor& weight_t, const Tensor& lse_t, const CrossEntropyParams& p) {
  const int64_t n = input.size(0), c = input.size(1), k = input.size(2), positions = n * k;
  const T* x = input.data_ptr<T>();
  const int64_t* tg = target.data_ptr<int64_t>();
  const T* w = weight_t.defined() ? weight_t.data_ptr<T>() : nullptr;
  const T* lse = lse_t.data_ptr<T>();
  const T* g = grad_loss.defined() ? grad_loss.data_ptr<T>() : nullptr;
  const int64_t g_step = g && grad_loss.numel() == 1 ? 0 : 1;  // one upstream value for every position
  T* gi = grad_input.data_ptr<T>();
  const T ls = static_cast<T>(p.label_smoothing), keep = static_cast<T>(1.0 - p.label_smoothing);
  const T lsc = ls / static_cast<T>(c);
  const T w_total = w ? row_dot<T, true>(w, nullptr, c, 1) : static_cast<T>(c);
  const T scale = static_cast<T>(grad_scale);
  for_positions(positions, c, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t off = (i / k) * c * k + i % k;
      const T* row = x + off;
      T* out = gi + off;
      const int64_t t = tg[i];
      if (t == p.ignore_index) {
        for (int64_t j = 0; j < c; ++j) out[j * k] = 0;
        continue;
      }
      const T coef = g ? g[i * g_step] * scale : scale;
      const T wt = w ? w[t] : T(1);
      const T cs = ce_grad_scale<T>(coef, keep, wt, lsc, w_total), l = lse[i];
      if (k == 1) {  // contiguous row
        int64_t j = 0;
        if constexpr (std::is_same_v<T, float>) {
          for (; j + 8 <= c; j += 8) {
            V8 v = exp8(load8(row + j) - l) * cs - (w ? load8(w + j) * (coef * lsc) : V8{} + coef * lsc);
            std::memcpy(out + j, &v, sizeof v);
          }
        }
        for (; j < c; ++j) out[j] = ce_grad_base<T>(cs, exp_<T>(row[j] - l), coef, lsc, w ? w[j] : T(1));
      } else {
        for (int64_t j = 0; j < c; ++j)
          out[j * k] = ce_grad_base<T>(cs, exp_<T>(row[j * k] - l), coef, lsc, w ? w[j] : T(1));
      }
      out[t * k] -= ce_grad_target<T>(coef, keep, wt);
    }
  });
}

}  // namespace

std::pair<double, double> cross_entropy_forward(const Tensor& loss, const Tensor& lse, const Tensor& input,
                                                const Tensor& target, const Tensor& weight,
                                                const CrossEntropyParams& p) {
  if (input.dtype() == kF64) return forward_impl<double>(loss, lse, input, target, weight, p);
  EMBER_CHECK(input.dtype() == kF32, DTypeError, "[cross_entropy] the fused kernel takes float32 or float64, got ",
              describe(input));
  return forward_impl<float>(loss, lse, input, target, weight, p);
}

void cross_entropy_backward(const Tensor& grad_input, const Tensor& grad_loss, double grad_scale, const Tensor& input,
                            const Tensor& target, const Tensor& weight, const Tensor& lse,
                            const CrossEntropyParams& p) {
  if (input.dtype() == kF64)
    return backward_impl<double>(grad_input, grad_loss, grad_scale, input, target, weight, lse, p);
  EMBER_CHECK(input.dtype() == kF32, DTypeError, "[cross_entropy] the fused kernel takes float32 or float64, got ",
              describe(input));
  backward_impl<float>(grad_input, grad_loss, grad_scale, input, target, weight, lse, p);
}

}  // namespace cpu
}  // namespace ember::kernels
