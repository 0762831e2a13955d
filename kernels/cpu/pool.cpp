// CPU 2-d pooling forwards (max with indices, average, adaptive average) and their backwards, one
// (n, c) plane per task, reading inputs through their strides. Window rules follow PyTorch's CPU kernels.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/loops.hpp"
#include "kernels/nn.hpp"
#include "kernels/nn_math.hpp"

namespace ember::kernels {
namespace cpu {
namespace {

// The geometry shared by the pools: the input's plane layout and the output's plane size.
struct Planes {
  int64_t n, c, h, w, oh, ow;
  int64_t sn, sc, sh, sw;  // input strides, elements
  explicit Planes(const Tensor& in, const Tensor& out)
      : n(in.size(0)),
        c(in.size(1)),
        h(in.size(2)),
        w(in.size(3)),
        oh(out.size(2)),
        ow(out.size(3)),
        sn(in.stride(0)),
        sc(in.stride(1)),
        sh(in.stride(2)),
        sw(in.stride(3)) {}
  int64_t count() const { return n * c; }
  int64_t in_offset(int64_t plane) const { return (plane / c) * sn + (plane % c) * sc; }
};

// Runs body(plane) for every plane, in parallel chunks of about kGrain window reads when large.
template <class F>
void for_planes(int64_t planes, int64_t work_per_plane, F&& body) {
  work_per_plane = std::max<int64_t>(work_per_plane, 1);
  auto chunk = [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) body(i);
  };
  if (planes * work_per_plane <= kGrain) {
    chunk(0, planes);
    return;
  }
  int64_t grain = std::max<int64_t>(1, kGrain / work_per_plane);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, planes, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { chunk(r.begin(), r.end()); });
}

// Max pooling whose windows all lie inside the input (no padding, no ceil-mode overhang) over rows
// of unit stride: for each output row, each window tap in turn is compared against a whole row of
// running maxima, a select per element the compiler vectorises (the per-window loop branches on every
// compare, and on data those branches mispredict). Taps are visited in the per-window loop's order
// with the same test, so ties and NaNs resolve as there.
template <class T>
void max_pool_rows(const Tensor& out, const Tensor& indices, const Tensor& in, const Pool2dParams& p) {
  using A = acc_t<T>;
  const Planes g(in, out);
  const T* src = static_cast<const T*>(in.raw_data());
  T* dst = static_cast<T*>(out.raw_data());
  int64_t* idx = indices.defined() ? static_cast<int64_t*>(indices.raw_data()) : nullptr;
  for_planes(g.count(), g.oh * g.ow * p.kernel[0] * p.kernel[1], [&, g](int64_t plane) {
    const int64_t w = g.w, ow_n = g.ow, sh = g.sh, kh = p.kernel[0], kw = p.kernel[1];
    const int64_t dh = p.dilation[0], dw = p.dilation[1], str_h = p.stride[0], str_w = p.stride[1];
    thread_local std::vector<A> best;
    thread_local std::vector<int32_t> tap;  // index of the winning tap in the window, i * kw + j
    best.resize(static_cast<size_t>(ow_n));
    tap.resize(static_cast<size_t>(ow_n));
    A* b = best.data();
    int32_t* t = tap.data();
    const T* x = src + g.in_offset(plane);
    for (int64_t oh = 0; oh < g.oh; ++oh) {
      for (int64_t i = 0; i < kh; ++i) {
        const T* row = x + (oh * str_h + i * dh) * sh;
        for (int64_t j = 0; j < kw; ++j) {
          const T* r = row + j * dw;
          const auto id = static_cast<int32_t>(i * kw + j);
          if (i == 0 && j == 0) {
            for (int64_t o = 0; o < ow_n; ++o) b[o] = load(r[o * str_w]), t[o] = 0;
            continue;
          }
          for (int64_t o = 0; o < ow_n; ++o) {
            const A v = load(r[o * str_w]);
            const bool take = pool_max_take(v, b[o]);
            b[o] = take ? v : b[o];
            t[o] = take ? id : t[o];
          }
        }
      }
      T* y = dst + (plane * g.oh + oh) * ow_n;
      for (int64_t o = 0; o < ow_n; ++o) y[o] = convert<T>(b[o]);
      if (idx) {
        int64_t* yi = idx + (plane * g.oh + oh) * ow_n;
        for (int64_t o = 0; o < ow_n; ++o) yi[o] = (oh * str_h + t[o] / kw * dh) * w + o * str_w + t[o] % kw * dw;
      }
    }
  });
}

template <class T, bool kUnitW>
void max_pool_impl(const Tensor& out, const Tensor& indices, const Tensor& in, const Pool2dParams& p) {
  using A = acc_t<T>;
  const Planes g(in, out);
  const T* src = static_cast<const T*>(in.raw_data());
  T* dst = static_cast<T*>(out.raw_data());
  int64_t* idx = indices.defined() ? static_cast<int64_t*>(indices.raw_data()) : nullptr;
  for_planes(g.count(), g.oh * g.ow * p.kernel[0] * p.kernel[1], [&, g](int64_t plane) {
    // Locals, so that the index stores cannot alias the geometry and force reloads.
    const int64_t h = g.h, w = g.w, oh_n = g.oh, ow_n = g.ow, sh = g.sh, sw = kUnitW ? 1 : g.sw;
    const int64_t kh = p.kernel[0], kw = p.kernel[1], dh = p.dilation[0], dw = p.dilation[1];
    const int64_t str_h = p.stride[0], str_w = p.stride[1], pad_h = p.padding[0], pad_w = p.padding[1];
    const T* x = src + g.in_offset(plane);
    T* y = dst + plane * oh_n * ow_n;
    int64_t* yi = idx ? idx + plane * oh_n * ow_n : nullptr;
    for (int64_t oh = 0; oh < oh_n; ++oh) {
      const auto [h0, h1] = max_pool_taps(oh, kh, str_h, pad_h, dh, h);
      for (int64_t ow = 0; ow < ow_n; ++ow) {
        const auto [w0, w1] = max_pool_taps(ow, kw, str_w, pad_w, dw, w);
        // Ties keep the first position; a NaN wins and the last NaN's position is kept, as PyTorch.
        A best = pool_lowest<A>();
        int64_t best_i = h0 * w + w0;
        for (int64_t ih = h0; ih < h1; ih += dh) {
          const T* row = x + ih * sh;
          for (int64_t iw = w0; iw < w1; iw += dw) {
            const A v = load(row[iw * sw]);
            const bool take = pool_max_take(v, best);
            // Selects, not a branch: on data a branch would mispredict every other element.
            best = take ? v : best;
            best_i = take ? ih * w + iw : best_i;
          }
        }
        y[oh * ow_n + ow] = convert<T>(best);
        if (yi) yi[oh * ow_n + ow] = best_i;
      }
    }
  });
}

template <class T>
void avg_pool_impl(const Tensor& out, const Tensor& in, const Pool2dParams& p) {
  using A = acc_t<T>;
  const Planes g(in, out);
  const T* src = static_cast<const T*>(in.raw_data());
  T* dst = static_cast<T*>(out.raw_data());
  const int64_t kh = p.kernel[0], kw = p.kernel[1], ph = p.padding[0], pw = p.padding[1];
  for_planes(g.count(), g.oh * g.ow * kh * kw, [&](int64_t plane) {
    const T* x = src + g.in_offset(plane);
    T* y = dst + plane * g.oh * g.ow;
    for (int64_t oh = 0; oh < g.oh; ++oh) {
      // The window is clipped to input + padding first (its size is the count_include_pad divisor),
      // then to the input itself.
      const AvgWindow wh = avg_pool_window(oh, kh, p.stride[0], ph, g.h);
      for (int64_t ow = 0; ow < g.ow; ++ow) {
        const AvgWindow ww = avg_pool_window(ow, kw, p.stride[1], pw, g.w);
        if (wh.begin >= wh.end || ww.begin >= ww.end) {
          y[oh * g.ow + ow] = convert<T>(0);
          continue;
        }
        A sum = 0;
        for (int64_t ih = wh.begin; ih < wh.end; ++ih)
          for (int64_t iw = ww.begin; iw < ww.end; ++iw) sum += load(x[ih * g.sh + iw * g.sw]);
        y[oh * g.ow + ow] = convert<T>(sum / static_cast<A>(avg_pool_divisor(wh, ww, p.count_include_pad)));
      }
    }
  });
}

template <class T>
void adaptive_avg_impl(const Tensor& out, const Tensor& in) {
  using A = acc_t<T>;
  const Planes g(in, out);
  const T* src = static_cast<const T*>(in.raw_data());
  T* dst = static_cast<T*>(out.raw_data());
  const int64_t kh = (g.h + g.oh - 1) / std::max<int64_t>(g.oh, 1) + 1;
  const int64_t kw = (g.w + g.ow - 1) / std::max<int64_t>(g.ow, 1) + 1;
  for_planes(g.count(), g.oh * g.ow * kh * kw, [&](int64_t plane) {
    const T* x = src + g.in_offset(plane);
    T* y = dst + plane * g.oh * g.ow;
    for (int64_t oh = 0; oh < g.oh; ++oh) {
      const int64_t h0 = adaptive_start(oh, g.h, g.oh), h1 = adaptive_end(oh, g.h, g.oh);
      for (int64_t ow = 0; ow < g.ow; ++ow) {
        const int64_t w0 = adaptive_start(ow, g.w, g.ow), w1 = adaptive_end(ow, g.w, g.ow);
        A sum = 0;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) sum += load(x[ih * g.sh + iw * g.sw]);
        y[oh * g.ow + ow] = convert<T>(sum / static_cast<A>((h1 - h0) * (w1 - w0)));
      }
    }
  });
}

// The backwards: each plane of grad_in is zeroed, then every output position adds its gradient (times
// its weight) into the input positions it read. f16/bf16 accumulate in a float plane first.
// body(go, acc) adds plane `plane`'s contributions into acc [h * w], reading grad_out through go(oh, ow).
template <class T, class Body>
void backward_planes(const Tensor& grad_in, const Tensor& grad_out, int64_t work_per_plane, Body&& body) {
  using A = acc_t<T>;
  const int64_t c = grad_in.size(1), hw = grad_in.size(2) * grad_in.size(3);
  const int64_t s0 = grad_out.stride(0), s1 = grad_out.stride(1), s2 = grad_out.stride(2), s3 = grad_out.stride(3);
  const T* gsrc = static_cast<const T*>(grad_out.raw_data());
  T* dst = static_cast<T*>(grad_in.raw_data());
  for_planes(grad_in.size(0) * c, std::max(work_per_plane, hw), [&](int64_t plane) {
    const T* go_plane = gsrc + (plane / c) * s0 + (plane % c) * s1;
    auto go = [&](int64_t oh, int64_t ow) { return static_cast<A>(load(go_plane[oh * s2 + ow * s3])); };
    T* gi = dst + plane * hw;
    if constexpr (std::is_same_v<A, T>) {
      std::fill(gi, gi + hw, T(0));
      body(plane, go, gi);
    } else {
      std::vector<A> acc(static_cast<size_t>(hw), A(0));
      body(plane, go, acc.data());
      for (int64_t i = 0; i < hw; ++i) gi[i] = convert<T>(acc[i]);
    }
  });
}

template <class T>
void max_pool_backward_impl(const Tensor& grad_in, const Tensor& grad_out, const Tensor& indices) {
  const int64_t oh_n = grad_out.size(2), ow_n = grad_out.size(3);
  const int64_t* idx = static_cast<const int64_t*>(indices.raw_data());
  backward_planes<T>(grad_in, grad_out, oh_n * ow_n, [&](int64_t plane, auto go, auto* acc) {
    const int64_t* pi = idx + plane * oh_n * ow_n;
    for (int64_t oh = 0; oh < oh_n; ++oh)
      for (int64_t ow = 0; ow < ow_n; ++ow) acc[pi[oh * ow_n + ow]] += go(oh, ow);
  });
}

template <class T>
void avg_pool_backward_impl(const Tensor& grad_in, const Tensor& grad_out, const Pool2dParams& p) {
  using A = acc_t<T>;
  const int64_t h = grad_in.size(2), w = grad_in.size(3), oh_n = grad_out.size(2), ow_n = grad_out.size(3);
  const int64_t kh = p.kernel[0], kw = p.kernel[1], ph = p.padding[0], pw = p.padding[1];
  backward_planes<T>(grad_in, grad_out, oh_n * ow_n * kh * kw, [&](int64_t, auto go, auto* acc) {
    for (int64_t oh = 0; oh < oh_n; ++oh) {
      // The forward's windows and divisors (see avg_pool_impl).
      const AvgWindow wh = avg_pool_window(oh, kh, p.stride[0], ph, h);
      for (int64_t ow = 0; ow < ow_n; ++ow) {
        const AvgWindow ww = avg_pool_window(ow, kw, p.stride[1], pw, w);
        if (wh.begin >= wh.end || ww.begin >= ww.end) continue;
        const A v = go(oh, ow) / static_cast<A>(avg_pool_divisor(wh, ww, p.count_include_pad));
        for (int64_t ih = wh.begin; ih < wh.end; ++ih)
          for (int64_t iw = ww.begin; iw < ww.end; ++iw) acc[ih * w + iw] += v;
      }
    }
  });
}

template <class T>
void adaptive_avg_backward_impl(const Tensor& grad_in, const Tensor& grad_out) {
  using A = acc_t<T>;
  const int64_t h = grad_in.size(2), w = grad_in.size(3), oh_n = grad_out.size(2), ow_n = grad_out.size(3);
  const int64_t kh = (h + oh_n - 1) / std::max<int64_t>(oh_n, 1) + 1;
  const int64_t kw = (w + ow_n - 1) / std::max<int64_t>(ow_n, 1) + 1;
  backward_planes<T>(grad_in, grad_out, oh_n * ow_n * kh * kw, [&](int64_t, auto go, auto* acc) {
    for (int64_t oh = 0; oh < oh_n; ++oh) {
      const int64_t h0 = adaptive_start(oh, h, oh_n), h1 = adaptive_end(oh, h, oh_n);
      for (int64_t ow = 0; ow < ow_n; ++ow) {
        const int64_t w0 = adaptive_start(ow, w, ow_n), w1 = adaptive_end(ow, w, ow_n);
        const A v = go(oh, ow) / static_cast<A>((h1 - h0) * (w1 - w0));
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) acc[ih * w + iw] += v;
      }
    }
  });
}

using MaxPoolTypes = NumericTypes;

}  // namespace

void max_pool2d(const Tensor& out, const Tensor& indices, const Tensor& in, const Pool2dParams& p) {
  visit_dtype<MaxPoolTypes>(in.dtype(), "[max_pool2d]", [&]<class T>() {
    const bool inside = p.padding[0] == 0 && p.padding[1] == 0 && out.numel() > 0 &&
                        (out.size(2) - 1) * p.stride[0] + (p.kernel[0] - 1) * p.dilation[0] < in.size(2) &&
                        (out.size(3) - 1) * p.stride[1] + (p.kernel[1] - 1) * p.dilation[1] < in.size(3);
    if (inside && in.stride(3) == 1)
      max_pool_rows<T>(out, indices, in, p);
    else if (in.stride(3) == 1)
      max_pool_impl<T, true>(out, indices, in, p);
    else
      max_pool_impl<T, false>(out, indices, in, p);
  });
}
void avg_pool2d(const Tensor& out, const Tensor& in, const Pool2dParams& p) {
  visit_dtype<FloatTypes>(in.dtype(), "[avg_pool2d]", [&]<class T>() { avg_pool_impl<T>(out, in, p); });
}
void adaptive_avg_pool2d(const Tensor& out, const Tensor& in) {
  visit_dtype<FloatTypes>(in.dtype(), "[adaptive_avg_pool2d]", [&]<class T>() { adaptive_avg_impl<T>(out, in); });
}
void max_pool2d_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& indices, const Pool2dParams&) {
  visit_dtype<FloatTypes>(grad_in.dtype(), "[max_pool2d_backward]",
                          [&]<class T>() { max_pool_backward_impl<T>(grad_in, grad_out, indices); });
}
void avg_pool2d_backward(const Tensor& grad_in, const Tensor& grad_out, const Pool2dParams& p) {
  visit_dtype<FloatTypes>(grad_in.dtype(), "[avg_pool2d_backward]",
                          [&]<class T>() { avg_pool_backward_impl<T>(grad_in, grad_out, p); });
}
void adaptive_avg_pool2d_backward(const Tensor& grad_in, const Tensor& grad_out) {
  visit_dtype<FloatTypes>(grad_in.dtype(), "[adaptive_avg_pool2d_backward]",
                          [&]<class T>() { adaptive_avg_backward_impl<T>(grad_in, grad_out); });
}

}  // namespace cpu
}  // namespace ember::kernels
