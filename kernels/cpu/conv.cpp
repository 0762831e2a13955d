// CPU convolution: im2col into a [C/g * kH * kW, OH * OW] column matrix, then one GEMM per (sample,
// group) with the weight; 1x1 stride-1 unpadded convs skip im2col (the input already is that matrix).
// The transposed convolution is the adjoint: one GEMM with the weight transposed, then col2im adds the
// columns back into the image; the weight gradient is im2col + GEMM summed over the batch.
#include "kernels/conv.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>

#include "kernels/cpu/loops.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/linalg.hpp"

namespace ember::kernels::cpu {
namespace {

// Multiply-adds below which a convolution stays on one thread.
constexpr double kMinParallelWork = 1 << 17;
// Per-(sample, group) GEMM work above which splitting each GEMM beats splitting the batch.
constexpr double kMaxUnitParallelWork = 1 << 26;

struct Geometry {
  int64_t c, h, w;  // input channels per group, height, width
  int64_t kh, kw;   // kernel
  int64_t oh, ow;   // output
  int64_t sh, sw, ph, pw, dh, dw;
};

// The geometry of a conv over `image` ([N, C, H, W]) with `weight`'s kernel giving `result`'s positions,
// c channels per group.
Geometry geometry(int64_t c, const Tensor& image, const Tensor& weight, const Tensor& result, const Conv2dParams& p) {
  Geometry g{};
  g.c = c, g.h = image.size(2), g.w = image.size(3);
  g.kh = weight.size(2), g.kw = weight.size(3);
  g.oh = result.size(2), g.ow = result.size(3);
  g.sh = p.stride[0], g.sw = p.stride[1], g.ph = p.padding[0], g.pw = p.padding[1];
  g.dh = p.dilation[0], g.dw = p.dilation[1];
  return g;
}

// A 1x1, stride-1, unpadded conv whose result covers the image: the image is its own column matrix.
bool is_direct(const Geometry& g) {
  return g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 && g.h == g.oh && g.w == g.ow;
}

// im2col's copies are short (a row of a small image, a padding edge of one or two pixels): GCC and
// clang would turn its loops into memset/memcpy calls, which cost more than such copies (they were a
// third of a LeNet step), so im2col keeps them as loops.
#if defined(__clang__)
#define EMBER_NO_MEM_CALLS __attribute__((no_builtin("memset", "memcpy", "memmove")))
#elif defined(__GNUC__)
#define EMBER_NO_MEM_CALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define EMBER_NO_MEM_CALLS
#endif

// Fills rows [r0, r1) of the column matrix from one group's input x [c, h, w]: row (ci, ki, kj) holds,
// for every output position, the input pixel that kernel tap sees (0 in the padding).
template <class T>
EMBER_NO_MEM_CALLS void im2col_rows(const T* x, const Geometry& g, T* col, int64_t r0, int64_t r1) {
  const int64_t ohw = g.oh * g.ow, ow = g.ow, sw = g.sw;
  // Stride 1 with the output as wide as the input ("same" padding): consecutive output rows read
  // consecutive input rows, so a tap's row of the column matrix is one shifted copy of the input
  // plane, with the columns that fall into the padding zeroed afterwards.
  const bool same_width = g.sh == 1 && sw == 1 && ow == g.w;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t ci = r / (g.kh * g.kw), ki = (r / g.kw) % g.kh, kj = r % g.kw;
    T* dst = col + r * ohw;
    // Output columns whose input column iw = ox * sw - pw + kj * dw lies inside [0, w).
    const int64_t off = kj * g.dw - g.pw;
    int64_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
    int64_t hi = g.w - 1 - off < 0 ? 0 : std::min(ow, (g.w - 1 - off) / sw + 1);
    lo = std::min(lo, hi);
    if (same_width) {
      // Output rows [oy0, oy1) see input row iy = oy + dy inside [0, h).
      const int64_t dy = ki * g.dh - g.ph;
      const int64_t oy0 = std::clamp<int64_t>(-dy, 0, g.oh), oy1 = std::clamp<int64_t>(g.h - dy, oy0, g.oh);
      if (lo == hi) {  // every column in the padding
        for (int64_t i = 0; i < ohw; ++i) dst[i] = T(0);
        continue;
      }
      for (int64_t i = 0; i < oy0 * ow; ++i) dst[i] = T(0);
      for (int64_t i = oy1 * ow; i < ohw; ++i) dst[i] = T(0);
      const int64_t shift = (ci * g.h + dy) * g.w + off;  // dst[i] reads x[i + shift]
      for (int64_t i = oy0 * ow + lo, n = (oy1 - 1) * ow + hi; i < n; ++i) dst[i] = x[i + shift];
      for (int64_t oy = oy0; oy < oy1; ++oy) {
        for (int64_t ox = 0; ox < lo; ++ox) dst[oy * ow + ox] = T(0);
        for (int64_t ox = hi; ox < ow; ++ox) dst[oy * ow + ox] = T(0);
      }
      continue;
    }
    for (int64_t oy = 0; oy < g.oh; ++oy, dst += ow) {
      const int64_t iy = oy * g.sh - g.ph + ki * g.dh;
      if (iy < 0 || iy >= g.h) {
        for (int64_t ox = 0; ox < ow; ++ox) dst[ox] = T(0);
        continue;
      }
      const T* src = x + (ci * g.h + iy) * g.w;
      for (int64_t ox = 0; ox < lo; ++ox) dst[ox] = T(0);
      if (sw == 1) {
        for (int64_t ox = lo; ox < hi; ++ox) dst[ox] = src[ox + off];
      } else {
        for (int64_t ox = lo; ox < hi; ++ox) dst[ox] = src[ox * sw + off];
      }
      for (int64_t ox = hi; ox < ow; ++ox) dst[ox] = T(0);
    }
  }
}

template <class T>
void im2col(const T* x, const Geometry& g, T* col, bool parallel) {
  const int64_t rows = g.c * g.kh * g.kw, ohw = g.oh * g.ow;
  if (!parallel || rows * ohw <= kGrain) return im2col_rows(x, g, col, 0, rows);
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(ohw, 1));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { im2col_rows(x, g, col, r.begin(), r.end()); });
}

// Adds rows [r0, r1) of the column matrix into one group's image x [c, h, w]: the adjoint of im2col_rows.
// Rows of one channel only write that channel, so whole channels are the unit of parallel work.
template <class T>
void col2im_rows(const T* col, const Geometry& g, T* x, int64_t r0, int64_t r1) {
  const int64_t ohw = g.oh * g.ow;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t ci = r / (g.kh * g.kw), ki = (r / g.kw) % g.kh, kj = r % g.kw;
    const T* src = col + r * ohw;
    const int64_t off = kj * g.dw - g.pw;
    int64_t lo = off >= 0 ? 0 : (-off + g.sw - 1) / g.sw;
    int64_t hi = g.w - 1 - off < 0 ? 0 : std::min(g.ow, (g.w - 1 - off) / g.sw + 1);
    lo = std::min(lo, hi);
    for (int64_t oy = 0; oy < g.oh; ++oy, src += g.ow) {
      const int64_t iy = oy * g.sh - g.ph + ki * g.dh;
      if (iy < 0 || iy >= g.h) continue;
      T* dst = x + (ci * g.h + iy) * g.w + off;
      if (g.sw == 1) {
        for (int64_t ox = lo; ox < hi; ++ox) dst[ox] += src[ox];
      } else {
        for (int64_t ox = lo; ox < hi; ++ox) dst[ox * g.sw] += src[ox];
      }
    }
  }
}

template <class T>
void col2im(const T* col, const Geometry& g, T* x, bool parallel) {
  const int64_t taps = g.kh * g.kw, ohw = g.oh * g.ow;
  if (!parallel || g.c * taps * ohw <= kGrain) return col2im_rows(col, g, x, 0, g.c * taps);
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(taps * ohw, 1));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, g.c, grain), [&](const tbb::blocked_range<int64_t>& r) {
    col2im_rows(col, g, x, r.begin() * taps, r.end() * taps);
  });
}

// Whether `units` independent pieces of `unit_work` multiply-adds each run best one per task
// rather than one after another with each GEMM split across the threads.
bool split_units(int64_t units, double unit_work) {
  const int threads = get_num_threads();
  return threads > 1 && units >= threads && unit_work <= kMaxUnitParallelWork &&
         unit_work * double(units) >= kMinParallelWork;
}

template <class T>
void conv2d_typed(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias,
                  const Conv2dParams& p) {
  const int64_t n_batch = in.shape()[0], c_in = in.shape()[1], groups = p.groups;
  const int64_t c_out = weight.shape()[0], og = c_out / groups;
  const Geometry g = geometry(weight.shape()[1], in, weight, out, p);
  const int64_t k = g.c * g.kh * g.kw, l = g.oh * g.ow, hw = g.h * g.w;
  const int64_t units = n_batch * groups;
  if (units == 0 || og == 0 || l == 0) return;
  const bool direct = is_direct(g);
  const T* x = in.data_ptr<T>();
  const T* w = weight.data_ptr<T>();
  const T* b = bias.defined() ? bias.data_ptr<T>() : nullptr;
  T* y = out.data_ptr<T>();

  auto unit = [&](int64_t u, T* col, bool inner_parallel) {
    const int64_t n = u / groups, gi = u % groups;
    const T* xg = x + (n * c_in + gi * g.c) * hw;
    T* yg = y + (n * c_out + gi * og) * l;
    const T* cols = xg;
    if (!direct) {
      im2col(xg, g, col, inner_parallel);
      cols = col;
    }
    T beta = T(0);
    if (b != nullptr) {  // start from the bias and let the GEMM accumulate onto it
      for (int64_t o = 0; o < og; ++o) std::fill(yg + o * l, yg + (o + 1) * l, b[gi * og + o]);
      beta = T(1);
    }
    gemm_strided<T>(og, l, k, T(1), w + gi * og * k, k, 1, cols, l, 1, beta, yg, l, 1);
  };
  const size_t col_size = direct ? 0 : size_t(k * l);
  const double unit_work = double(og) * double(l) * double(std::max<int64_t>(k, 1));
  if (split_units(units, unit_work)) {
    // Many (sample, group) pairs: one per task.
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, units, 1), [&](const tbb::blocked_range<int64_t>& r) {
      std::unique_ptr<T[]> col(new T[std::max<size_t>(col_size, 1)]);
      for (int64_t u = r.begin(); u < r.end(); ++u) unit(u, col.get(), false);
    });
    return;
  }
  std::unique_ptr<T[]> col(new T[std::max<size_t>(col_size, 1)]);
  for (int64_t u = 0; u < units; ++u) unit(u, col.get(), true);
}

template <class T>
void conv_transpose2d_typed(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias,
                            const Conv2dParams& p) {
  const int64_t n_batch = in.shape()[0], c_in = in.shape()[1], groups = p.groups, cg = c_in / groups;
  const int64_t c_out = out.shape()[1], og = weight.shape()[1];
  // The conv2d this is the adjoint of maps an image of out's size to one of in's size.
  const Geometry g = geometry(og, out, weight, in, p);
  const int64_t k = og * g.kh * g.kw, l = g.oh * g.ow, ohw = g.h * g.w;  // l: in's positions, ohw: out's
  const int64_t units = n_batch * groups;
  if (units == 0 || og == 0 || ohw == 0) return;
  const bool direct = is_direct(g);
  const T* x = in.data_ptr<T>();
  const T* w = weight.data_ptr<T>();
  const T* b = bias.defined() ? bias.data_ptr<T>() : nullptr;
  T* y = out.data_ptr<T>();

  auto unit = [&](int64_t u, T* col, bool inner_parallel) {
    const int64_t n = u / groups, gi = u % groups;
    const T* xg = x + (n * c_in + gi * cg) * l;
    const T* wg = w + gi * cg * k;  // [cg, k]; its transpose [k, cg] is read by trans flag
    T* yg = y + (n * c_out + gi * og) * ohw;
    for (int64_t o = 0; o < og; ++o) std::fill(yg + o * ohw, yg + (o + 1) * ohw, b ? b[gi * og + o] : T(0));
    if (direct) return gemm_strided<T>(og, l, cg, T(1), wg, 1, k, xg, l, 1, T(1), yg, l, 1);
    gemm_strided<T>(k, l, cg, T(1), wg, 1, k, xg, l, 1, T(0), col, l, 1);
    col2im(col, g, yg, inner_parallel);
  };
  const size_t col_size = direct ? 0 : size_t(k * l);
  const double unit_work = double(k) * double(l) * double(std::max<int64_t>(cg, 1));
  if (split_units(units, unit_work)) {
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, units, 1), [&](const tbb::blocked_range<int64_t>& r) {
      std::unique_ptr<T[]> col(new T[std::max<size_t>(col_size, 1)]);
      for (int64_t u = r.begin(); u < r.end(); ++u) unit(u, col.get(), false);
    });
    return;
  }
  std::unique_ptr<T[]> col(new T[std::max<size_t>(col_size, 1)]);
  for (int64_t u = 0; u < units; ++u) unit(u, col.get(), true);
}

// The batch is split into chunks (one per thread when the per-sample work is small), each summing its
// samples' products into its own buffer; the buffers are added in chunk order, so the result does not
// depend on scheduling.
template <class T>
void conv2d_weight_backward_typed(const Tensor& grad_weight, const Tensor& grad_out, const Tensor& in,
                                  const Conv2dParams& p) {
  const int64_t n_batch = in.shape()[0], c_in = in.shape()[1], groups = p.groups;
  const int64_t c_out = grad_weight.shape()[0], og = c_out / groups;
  const Geometry g = geometry(grad_weight.shape()[1], in, grad_weight, grad_out, p);
  const int64_t k = g.c * g.kh * g.kw, l = g.oh * g.ow, hw = g.h * g.w;
  T* gw = grad_weight.data_ptr<T>();
  const int64_t size = c_out * k;
  std::fill(gw, gw + size, T(0));
  if (n_batch == 0 || l == 0 || size == 0) return;
  const bool direct = is_direct(g);
  const T* x = in.data_ptr<T>();
  const T* dy = grad_out.data_ptr<T>();

  // Adds sample n's contribution, all groups, into acc [O, k].
  auto sample = [&](int64_t n, T* acc, T* col, bool inner_parallel) {
    for (int64_t gi = 0; gi < groups; ++gi) {
      const T* xg = x + (n * c_in + gi * g.c) * hw;
      const T* cols = xg;
      if (!direct) {
        im2col(xg, g, col, inner_parallel);
        cols = col;
      }
      // acc_g [og, k] += dy_g [og, l] @ cols^T [l, k]
      gemm_strided<T>(og, k, l, T(1), dy + (n * c_out + gi * og) * l, l, 1, cols, 1, l, T(1), acc + gi * og * k, k, 1);
    }
  };
  const size_t col_size = direct ? 0 : size_t(k * l);
  const double sample_work = double(c_out) * double(k) * double(l);
  if (split_units(n_batch, sample_work)) {
    const int64_t chunks = std::min<int64_t>(get_num_threads(), n_batch);
    std::unique_ptr<T[]> partial(new T[size_t((chunks - 1) * size)]());
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, chunks, 1), [&](const tbb::blocked_range<int64_t>& r) {
      std::unique_ptr<T[]> col(new T[std::max<size_t>(col_size, 1)]);
      for (int64_t c = r.begin(); c < r.end(); ++c) {
        T* acc = c == 0 ? gw : partial.get() + (c - 1) * size;
        for (int64_t n = c * n_batch / chunks; n < (c + 1) * n_batch / chunks; ++n) sample(n, acc, col.get(), false);
      }
    });
    for (int64_t c = 1; c < chunks; ++c) {
      const T* part = partial.get() + (c - 1) * size;
      for (int64_t i = 0; i < size; ++i) gw[i] += part[i];
    }
    return;
  }
  std::unique_ptr<T[]> col(new T[std::max<size_t>(col_size, 1)]);
  for (int64_t n = 0; n < n_batch; ++n) sample(n, gw, col.get(), true);
}

Tensor to_f32(const Tensor& t) {
  if (!t.defined()) return t;
  Tensor r = make_tensor(t.shape(), kF32);
  copy(r, t);
  return r;
}

}  // namespace

void conv2d(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias, const Conv2dParams& p) {
  using ConvTypes = TypeList<float, double, half, bfloat16, int32_t, int64_t, uint8_t>;
  visit_dtype<ConvTypes>(out.dtype(), "[conv2d]", [&]<class T>() {
    if constexpr (std::is_same_v<T, half> || std::is_same_v<T, bfloat16>) {
      Tensor out32 = make_tensor(out.shape(), kF32);
      conv2d_typed<float>(out32, to_f32(in), to_f32(weight), to_f32(bias), p);
      copy(out, out32);
    } else {
      conv2d_typed<T>(out, in, weight, bias, p);
    }
  });
}

void conv_transpose2d(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias,
                      const Conv2dParams& p) {
  visit_dtype<FloatTypes>(out.dtype(), "[conv_transpose2d]", [&]<class T>() {
    if constexpr (std::is_same_v<T, half> || std::is_same_v<T, bfloat16>) {
      Tensor out32 = make_tensor(out.shape(), kF32);
      conv_transpose2d_typed<float>(out32, to_f32(in), to_f32(weight), to_f32(bias), p);
      copy(out, out32);
    } else {
      conv_transpose2d_typed<T>(out, in, weight, bias, p);
    }
  });
}

void conv2d_weight_backward(const Tensor& grad_weight, const Tensor& grad_out, const Tensor& in,
                            const Conv2dParams& p) {
  visit_dtype<FloatTypes>(grad_weight.dtype(), "[conv2d_backward]", [&]<class T>() {
    if constexpr (std::is_same_v<T, half> || std::is_same_v<T, bfloat16>) {
      Tensor gw32 = make_tensor(grad_weight.shape(), kF32);
      conv2d_weight_backward_typed<float>(gw32, to_f32(grad_out), to_f32(in), p);
      copy(grad_weight, gw32);
    } else {
      conv2d_weight_backward_typed<T>(grad_weight, grad_out, in, p);
    }
  });
}

}  // namespace ember::kernels::cpu
