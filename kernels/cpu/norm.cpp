// CPU normalisation kernels: layer_norm (and its first-order backward) and rms_norm per row, batch_norm statistics per
// channel and its affine apply per (n, c) plane. Statistics accumulate in double; f16/bf16 compute in f32.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/loops.hpp"
#include "kernels/nn.hpp"
#include "kernels/nn_math.hpp"

namespace ember::kernels {
namespace cpu {
namespace {

// Runs body(i) for i in [0, n), in parallel chunks of about kGrain elements of work when large.
template <class F>
void for_each(int64_t n, int64_t work_per_item, F&& body) {
  work_per_item = std::max<int64_t>(work_per_item, 1);
  if (n * work_per_item <= kGrain) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
  int64_t grain = std::max<int64_t>(1, kGrain / work_per_item);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, grain), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t i = r.begin(); i < r.end(); ++i) body(i);
  });
}

// Sums of (x - k) and (x - k)^2 over a contiguous row in one pass, shifted by k (the row's first
// element) so that the variance does not cancel when the mean is large. Eight lanes let it vectorise.
template <class T>
void shifted_sums(const T* x, int64_t n, double k, double& s, double& ss) {
  constexpr int L = 8;
  double a[L] = {}, b[L] = {};
  int64_t j = 0;
  for (; j + L <= n; j += L)
    for (int l = 0; l < L; ++l) {
      const double d = static_cast<double>(load(x[j + l])) - k;
      a[l] += d;
      b[l] += d * d;
    }
  s = 0;
  ss = 0;
  for (; j < n; ++j) {
    const double d = static_cast<double>(load(x[j])) - k;
    s += d;
    ss += d * d;
  }
  for (int l = 0; l < L; ++l) {
    s += a[l];
    ss += b[l];
  }
}

// A layer_norm row's mean as a hi + lo pair of the computation type A (x - hi is exact when the spread
// is small against the mean, so a large mean does not cost f32 results their precision) and its rstd
// from the biased variance.
template <class T, class A = acc_t<T>>
struct RowStats {
  A hi, lo, rstd;
};
template <class T>
RowStats<T> row_stats(const T* x, int64_t cols, double eps) {
  using A = acc_t<T>;
  double s, ss;
  const double k = static_cast<double>(load(x[0]));
  shifted_sums(x, cols, k, s, ss);
  const double dm = s / static_cast<double>(cols);
  const double var = std::max(ss / static_cast<double>(cols) - dm * dm, 0.0);
  const double mean = k + dm;
  const A hi = static_cast<A>(mean);
  return {hi, static_cast<A>(mean - static_cast<double>(hi)), static_cast<A>(1.0 / std::sqrt(var + eps))};
}

template <class T>
void layer_norm_impl(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias, double eps) {
  using A = acc_t<T>;
  const int64_t rows = in.size(0), cols = in.size(1);
  const T* src = static_cast<const T*>(in.raw_data());
  T* dst = static_cast<T*>(out.raw_data());
  const A* w = weight.defined() ? static_cast<const A*>(weight.raw_data()) : nullptr;
  const A* b = bias.defined() ? static_cast<const A*>(bias.raw_data()) : nullptr;
  if (cols == 0) return;
  for_each(rows, cols, [&](int64_t r) {
    const T* x = src + r * cols;
    T* y = dst + r * cols;
    const auto [hi, lo, rstd] = row_stats(x, cols, eps);
    if (w && b) {
      for (int64_t j = 0; j < cols; ++j) y[j] = convert<T>(normalize_value(load(x[j]), hi, lo, rstd) * w[j] + b[j]);
    } else if (w) {
      for (int64_t j = 0; j < cols; ++j) y[j] = convert<T>(normalize_value(load(x[j]), hi, lo, rstd) * w[j]);
    } else if (b) {
      for (int64_t j = 0; j < cols; ++j) y[j] = convert<T>(normalize_value(load(x[j]), hi, lo, rstd) + b[j]);
    } else {
      for (int64_t j = 0; j < cols; ++j) y[j] = convert<T>(normalize_value(load(x[j]), hi, lo, rstd));
    }
  });
}

// The input gradient of layer_norm in one pass per row (first-order backward, no graph): with xhat and
// rstd recomputed as the forward does and gw = g * w, dx = rstd * (gw - xhat * mean(gw * xhat) - mean(gw)).
// The weight's and bias's gradients (the sums over rows of g * xhat and of g) accumulate in double per
// chunk of rows as they go; the chunks (fixed by the shape, not by the threads) are then added in order.
template <class T>
void layer_norm_backward_impl(const Tensor& grad_in, const Tensor& grad_weight, const Tensor& grad_bias,
                              const Tensor& in, const Tensor& grad_out, const Tensor& weight, double eps) {
  using A = acc_t<T>;
  const int64_t rows = in.size(0), cols = in.size(1);
  const T* src = static_cast<const T*>(in.raw_data());
  const T* gsrc = static_cast<const T*>(grad_out.raw_data());
  T* dst = static_cast<T*>(grad_in.raw_data());
  const A* w = weight.defined() ? static_cast<const A*>(weight.raw_data()) : nullptr;
  A* gwt = grad_weight.defined() ? static_cast<A*>(grad_weight.raw_data()) : nullptr;
  A* gbs = grad_bias.defined() ? static_cast<A*>(grad_bias.raw_data()) : nullptr;
  if (cols == 0) return;
  const bool params = gwt || gbs;
  // About kGrain elements of work per chunk, at most kMaxChunks chunks (the partials' memory).
  constexpr int64_t kMaxChunks = 256;
  int64_t chunk_rows = std::max<int64_t>(1, kGrain / (3 * cols));
  if ((rows + chunk_rows - 1) / chunk_rows > kMaxChunks) chunk_rows = (rows + kMaxChunks - 1) / kMaxChunks;
  const int64_t chunks = (rows + chunk_rows - 1) / chunk_rows;
  std::vector<double> partial(params ? static_cast<size_t>(chunks * 2 * cols) : 0);  // [chunk][2][cols]
  auto rows_of = [&](int64_t chunk) {
    double* pw = params ? partial.data() + chunk * 2 * cols : nullptr;
    double* pb = params ? pw + cols : nullptr;
    for (int64_t r = chunk * chunk_rows; r < std::min(rows, (chunk + 1) * chunk_rows); ++r) {
      const T* x = src + r * cols;
      const T* g = gsrc + r * cols;
      T* dx = dst + r * cols;
      const auto [hi, lo, rstd] = row_stats(x, cols, eps);
      constexpr int L = 8;  // lanes, so the two sums vectorise
      double a[L] = {}, b[L] = {};
      int64_t j = 0;
      for (; j + L <= cols; j += L)
        for (int l = 0; l < L; ++l) {
          const A xhat = normalize_value(load(x[j + l]), hi, lo, rstd);
          const A gw = w ? load(g[j + l]) * w[j + l] : load(g[j + l]);
          a[l] += static_cast<double>(gw * xhat);
          b[l] += static_cast<double>(gw);
        }
      double sum_gx = 0, sum_g = 0;
      for (; j < cols; ++j) {
        const A xhat = normalize_value(load(x[j]), hi, lo, rstd);
        const A gw = w ? load(g[j]) * w[j] : load(g[j]);
        sum_gx += static_cast<double>(gw * xhat);
        sum_g += static_cast<double>(gw);
      }
      for (int l = 0; l < L; ++l) sum_gx += a[l], sum_g += b[l];
      const A mgx = static_cast<A>(sum_gx / static_cast<double>(cols)),
              mg = static_cast<A>(sum_g / static_cast<double>(cols));
      for (j = 0; j < cols; ++j) {
        const A xhat = normalize_value(load(x[j]), hi, lo, rstd);
        const A gj = load(g[j]);
        dx[j] = convert<T>(layer_norm_dx(rstd, w ? gj * w[j] : gj, xhat, mgx, mg));
        if (params) {
          pw[j] += static_cast<double>(gj * xhat);
          pb[j] += static_cast<double>(gj);
        }
      }
    }
  };
  if (chunks == 1)
    rows_of(0);
  else
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, chunks, 1), [&](const tbb::blocked_range<int64_t>& r) {
      for (int64_t c = r.begin(); c < r.end(); ++c) rows_of(c);
    });
  if (!params) return;
  for_each(cols, 2 * chunks, [&](int64_t j) {
    double sw = 0, sb = 0;
    for (int64_t c = 0; c < chunks; ++c) sw += partial[c * 2 * cols + j], sb += partial[c * 2 * cols + cols + j];
    if (gwt) gwt[j] = static_cast<A>(sw);
    if (gbs) gbs[j] = static_cast<A>(sb);
  });
}

template <class T>
void rms_norm_impl(const Tensor& out, const Tensor& in, const Tensor& weight, double eps) {
  using A = acc_t<T>;
  const int64_t rows = in.size(0), cols = in.size(1);
  const T* src = static_cast<const T*>(in.raw_data());
  T* dst = static_cast<T*>(out.raw_data());
  const A* w = weight.defined() ? static_cast<const A*>(weight.raw_data()) : nullptr;
  if (cols == 0) return;
  for_each(rows, cols, [&](int64_t r) {
    const T* x = src + r * cols;
    T* y = dst + r * cols;
    double s, ss;
    shifted_sums(x, cols, 0.0, s, ss);
    const A rr = static_cast<A>(1.0 / std::sqrt(ss / static_cast<double>(cols) + eps));
    if (w) {
      for (int64_t j = 0; j < cols; ++j) y[j] = convert<T>(load(x[j]) * rr * w[j]);
    } else {
      for (int64_t j = 0; j < cols; ++j) y[j] = convert<T>(load(x[j]) * rr);
    }
  });
}

// Sum over one channel of an [N, C, S] view: n outer, s inner (stride ss).
template <class T, class F>
double channel_sum(const T* x, int64_t n, int64_t sn, int64_t s, int64_t ss, F&& f) {
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T* row = x + i * sn;
    double part = 0;
    if (ss == 1) {  // eight lanes, so the contiguous case vectorises
      constexpr int L = 8;
      double lanes[L] = {};
      int64_t j = 0;
      for (; j + L <= s; j += L)
        for (int l = 0; l < L; ++l) lanes[l] += f(static_cast<double>(load(row[j + l])));
      for (; j < s; ++j) part += f(static_cast<double>(load(row[j])));
      for (int l = 0; l < L; ++l) part += lanes[l];
    } else {
      for (int64_t j = 0; j < s; ++j) part += f(static_cast<double>(load(row[j * ss])));
    }
    acc += part;
  }
  return acc;
}

template <class T>
void bn_stats_impl(const Tensor& mean, const Tensor& var, const Tensor& in) {
  const int64_t n = in.size(0), c = in.size(1), s = in.size(2);
  const int64_t sn = in.stride(0), sc = in.stride(1), ss = in.stride(2);
  const T* src = static_cast<const T*>(in.raw_data());
  double* m = static_cast<double*>(mean.raw_data());
  double* v = static_cast<double*>(var.raw_data());
  const int64_t count = n * s;
  // Two passes per channel (mean, then squared deviations), as PyTorch's CPU kernel.
  for_each(c, 2 * count, [&](int64_t ch) {
    const T* x = src + ch * sc;
    if (count == 0) {
      m[ch] = std::nan("");
      v[ch] = std::nan("");
      return;
    }
    const double mu = channel_sum(x, n, sn, s, ss, [](double e) { return e; }) / static_cast<double>(count);
    const double sq = channel_sum(x, n, sn, s, ss, [mu](double e) { return (e - mu) * (e - mu); });
    m[ch] = mu;
    v[ch] = sq / static_cast<double>(count);
  });
}

// batch_norm's first-order backward per channel of [N, C, S]: the sums of g and g * (x - mean) (lanes in
// double, so they vectorise), then dx = k g + b x + d, the training formula (through the batch
// statistics) or, in evaluation, k g, with k = scale * rstd.
template <class T>
void bn_backward_impl(const Tensor& grad_in, const Tensor& sum_g, const Tensor& sum_gxm, const Tensor& in,
                      const Tensor& grad_out, const Tensor& mean, const Tensor& rstd, const Tensor& scale,
                      bool training) {
  using A = acc_t<T>;
  const int64_t n = in.size(0), c = in.size(1), s = in.size(2);
  const T* src = static_cast<const T*>(in.raw_data());
  const T* gsrc = static_cast<const T*>(grad_out.raw_data());
  T* dst = static_cast<T*>(grad_in.raw_data());
  const double *mu = static_cast<const double*>(mean.raw_data()), *rs = static_cast<const double*>(rstd.raw_data());
  const double* sc = static_cast<const double*>(scale.raw_data());
  double *sg = static_cast<double*>(sum_g.raw_data()), *sgx = static_cast<double*>(sum_gxm.raw_data());
  const double count = static_cast<double>(n * s);
  for_each(c, 3 * n * s, [&](int64_t ch) {
    constexpr int L = 8;
    double a[L] = {}, b[L] = {}, tg = 0, tgx = 0;
    const A m = static_cast<A>(mu[ch]);
    for (int64_t i = 0; i < n; ++i) {
      const T* x = src + (i * c + ch) * s;
      const T* g = gsrc + (i * c + ch) * s;
      int64_t j = 0;
      for (; j + L <= s; j += L)
        for (int l = 0; l < L; ++l) {
          a[l] += static_cast<double>(load(g[j + l]));
          b[l] += static_cast<double>(load(g[j + l]) * (load(x[j + l]) - m));
        }
      for (; j < s; ++j) {
        tg += static_cast<double>(load(g[j]));
        tgx += static_cast<double>(load(g[j]) * (load(x[j]) - m));
      }
    }
    for (int l = 0; l < L; ++l) tg += a[l], tgx += b[l];
    sg[ch] = tg;
    sgx[ch] = tgx;
    const BnGradCoeffs f = bn_grad_coeffs(sc[ch], rs[ch], mu[ch], tg, tgx, count, training);
    const A ka = static_cast<A>(f.k), ba = static_cast<A>(f.bx), da = static_cast<A>(f.d);
    for (int64_t i = 0; i < n; ++i) {
      const T* x = src + (i * c + ch) * s;
      const T* g = gsrc + (i * c + ch) * s;
      T* y = dst + (i * c + ch) * s;
      for (int64_t j = 0; j < s; ++j) y[j] = convert<T>(ka * load(g[j]) + ba * load(x[j]) + da);
    }
  });
}

template <class T>
void bn_apply_impl(const Tensor& out, const Tensor& in, const Tensor& scale, const Tensor& shift) {
  using A = acc_t<T>;
  const int64_t c = in.size(1), s = in.size(2);
  const int64_t sn = in.stride(0), sc = in.stride(1), ss = in.stride(2);
  const T* src = static_cast<const T*>(in.raw_data());
  T* dst = static_cast<T*>(out.raw_data());
  const double* a = static_cast<const double*>(scale.raw_data());
  const double* b = static_cast<const double*>(shift.raw_data());
  for_each(in.size(0) * c, s, [&](int64_t plane) {
    const int64_t i = plane / c, ch = plane % c;
    const T* x = src + i * sn + ch * sc;
    T* y = dst + plane * s;
    const A k = static_cast<A>(a[ch]), d = static_cast<A>(b[ch]);
    if (ss == 1) {
      for (int64_t j = 0; j < s; ++j) y[j] = convert<T>(load(x[j]) * k + d);
    } else {
      for (int64_t j = 0; j < s; ++j) y[j] = convert<T>(load(x[j * ss]) * k + d);
    }
  });
}

}  // namespace

void layer_norm(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias, double eps) {
  visit_dtype<FloatTypes>(in.dtype(), "[layer_norm]",
                          [&]<class T>() { layer_norm_impl<T>(out, in, weight, bias, eps); });
}
void layer_norm_backward(const Tensor& grad_in, const Tensor& grad_weight, const Tensor& grad_bias, const Tensor& in,
                         const Tensor& grad_out, const Tensor& weight, double eps) {
  visit_dtype<FloatTypes>(in.dtype(), "[layer_norm_backward]", [&]<class T>() {
    layer_norm_backward_impl<T>(grad_in, grad_weight, grad_bias, in, grad_out, weight, eps);
  });
}
void rms_norm(const Tensor& out, const Tensor& in, const Tensor& weight, double eps) {
  visit_dtype<FloatTypes>(in.dtype(), "[rms_norm]", [&]<class T>() { rms_norm_impl<T>(out, in, weight, eps); });
}
void batch_norm_stats(const Tensor& mean, const Tensor& var, const Tensor& in) {
  visit_dtype<FloatTypes>(in.dtype(), "[batch_norm]", [&]<class T>() { bn_stats_impl<T>(mean, var, in); });
}
void batch_norm_apply(const Tensor& out, const Tensor& in, const Tensor& scale, const Tensor& shift) {
  visit_dtype<FloatTypes>(in.dtype(), "[batch_norm]", [&]<class T>() { bn_apply_impl<T>(out, in, scale, shift); });
}
void batch_norm_backward(const Tensor& grad_in, const Tensor& sum_g, const Tensor& sum_gxm, const Tensor& in,
                         const Tensor& grad_out, const Tensor& mean, const Tensor& rstd, const Tensor& scale,
                         bool training) {
  visit_dtype<FloatTypes>(in.dtype(), "[batch_norm_backward]", [&]<class T>() {
    bn_backward_impl<T>(grad_in, sum_g, sum_gxm, in, grad_out, mean, rstd, scale, training);
  });
}

}  // namespace cpu
}  // namespace ember::kernels
