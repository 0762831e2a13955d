// CPU convolution: im2col into a [C/g * kH * kW, OH * OW] column matrix, then one GEMM per (sample,
// group) with the weight; 1x1 stride-1 unpadded convs skip im2col (the input already is that matrix).
// The transposed convolution is the adjoint: one GEMM with the weight transposed, then col2im adds the
// columns back into the image; the weight gradient is im2col + GEMM summed over the batch.
// float32 stride-1 convs (forward, and so the input gradient, and the weight gradient) take the
// `padded` path on AVX2 machines: register tiles reading a zero-padded copy of the image, no column
// matrix at all (ResNet step 106-122 -> 80-99 ms on 2 cores).
#include "kernels/conv.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "kernels/cpu/loops.hpp"
#include "kernels/cpu/tiles.hpp"
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

// Sums a weight gradient over the batch in `chunks` parallel pieces: add(n0, n1, acc) adds samples
// [n0, n1) into acc; chunk 0 adds into gw itself, the others into zeroed buffers that are then added in
// chunk order, so the result does not depend on scheduling.
template <class T, class Add>
void sum_batch_chunks(int64_t n_batch, int64_t chunks, T* gw, int64_t size, Add&& add) {
  std::unique_ptr<T[]> partial(new T[size_t((chunks - 1) * size)]());
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, chunks, 1), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t c = r.begin(); c < r.end(); ++c)
      add(c * n_batch / chunks, (c + 1) * n_batch / chunks, c == 0 ? gw : partial.get() + (c - 1) * size);
  });
  for (int64_t c = 1; c < chunks; ++c) {
    const T* part = partial.get() + (c - 1) * size;
    for (int64_t i = 0; i < size; ++i) gw[i] += part[i];
  }
}

// The batch is split into chunks (one per thread when the per-sample work is small), summed by
// sum_batch_chunks.
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
    return sum_batch_chunks(n_batch, chunks, gw, size, [&](int64_t n0, int64_t n1, T* acc) {
      std::unique_ptr<T[]> col(new T[std::max<size_t>(col_size, 1)]);
      for (int64_t n = n0; n < n1; ++n) sample(n, acc, col.get(), false);
    });
  }
  std::unique_ptr<T[]> col(new T[std::max<size_t>(col_size, 1)]);
  for (int64_t n = 0; n < n_batch; ++n) sample(n, gw, col.get(), true);
}

#if defined(__AVX2__) && defined(__FMA__)
// float32 stride-1 convolution without a column matrix. Each sample's input is copied once into a
// zero-padded plane per channel; then the column matrix's row for tap (ci, ki, kj) at output (oy, ox)
// is that padded plane read at a fixed offset from (oy, ox), so a 6x16 register tile reads 16
// consecutive outputs' pixels for a tap with two vector loads from the padded input (which stays in
// L1/L2), multiplied by the weight packed once per call into 6-row panels. Against im2col + sgemm this
// saves writing the column matrix, OpenBLAS packing it again, and the GEMM's C = 0 pass.
namespace padded {

using tiles::kMR;
using tiles::kNR;
constexpr int64_t kMaxWeight = 1 << 16;  // og * k floats: the packed weight stays in L2

bool applies(const Geometry& g, int64_t og, int64_t k) {
  return g.sh == 1 && g.sw == 1 && og * k <= kMaxWeight && k <= 4096;
}

// The og weight rows split into ceil(og / kMR) panels of as even a size as possible (32 rows: 5, 5, 5,
// 5, 6, 6), since a tile of one or two rows has too few accumulators to hide the FMA latency.
int64_t panel_start(int64_t og, int64_t i) {
  const int64_t panels = (og + kMR - 1) / kMR;
  return og / panels * i + std::max<int64_t>(0, i - (panels - og % panels));
}

// The weight rows of one group, w [og, k], as those panels, each stored [k][rows] from row start * k.
void pack_weight(const float* w, int64_t og, int64_t k, float* out) {
  for (int64_t i = 0, r0 = 0; r0 < og; r0 = panel_start(og, ++i)) {
    const int64_t rows = panel_start(og, i + 1) - r0;
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < rows; ++j) out[r0 * k + p * rows + j] = w[(r0 + j) * k + p];
  }
}

// c [MR rows of ldc][cols] = bias + sum_p a[p][i] * base[start[p] + j], j < 16: the first cols kept.
template <int MR>
void tile(int64_t k, const float* __restrict a, const float* base, const int64_t* __restrict start, const float* bias,
          float* c, int64_t ldc, int64_t cols) {
  __m256 lo[MR], hi[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) lo[i] = hi[i] = _mm256_set1_ps(bias ? bias[i] : 0.0f);
  for (int64_t p = 0; p < k; ++p, a += MR) {
    const float* b = base + start[p];
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      lo[i] = _mm256_fmadd_ps(ai, b0, lo[i]);
      hi[i] = _mm256_fmadd_ps(ai, b1, hi[i]);
    }
  }
  if (cols == kNR) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) _mm256_storeu_ps(c + i * ldc, lo[i]), _mm256_storeu_ps(c + i * ldc + 8, hi[i]);
    return;
  }
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mask_lo = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols)), lanes);
  const __m256i mask_hi = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols) - 8), lanes);
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    _mm256_maskstore_ps(c + i * ldc, mask_lo, lo[i]);
    _mm256_maskstore_ps(c + i * ldc + 8, mask_hi, hi[i]);
  }
}

using TileFn = void (*)(int64_t, const float*, const float*, const int64_t*, const float*, float*, int64_t, int64_t);
constexpr TileFn kTiles[kMR + 1] = {nullptr, tile<1>, tile<2>, tile<3>, tile<4>, tile<5>, tile<6>};

// One group's conv over the padded image: c planes of h2 x w2, and where tap r = (ci, ki, kj) of output
// (0, 0) sits in it (output (oy, ox) adds oy * w2 + ox).
struct Plan {
  Geometry g;
  int64_t og, k, h2, w2;
  std::vector<int64_t> start;
  Plan(const Geometry& geo, int64_t og_)
      : g(geo), og(og_), k(geo.c * geo.kh * geo.kw), h2(geo.h + 2 * geo.ph), w2(geo.w + 2 * geo.pw) {
    start.reserve(static_cast<size_t>(k));
    for (int64_t ci = 0; ci < g.c; ++ci)
      for (int64_t ki = 0; ki < g.kh; ++ki)
        for (int64_t kj = 0; kj < g.kw; ++kj) start.push_back((ci * h2 + ki * g.dh) * w2 + kj * g.dw);
  }
  int64_t plane_size() const { return g.c * h2 * w2 + kNR; }  // kNR floats of slack for the last strip's loads
};

// Copies one group's image x [c, h, w] into xp [c, h2, w2] with zeros around it.
void pad(const float* x, const Plan& pl, float* xp) {
  const Geometry& g = pl.g;
  std::fill(xp, xp + pl.plane_size(), 0.0f);
  for (int64_t ci = 0; ci < g.c; ++ci)
    for (int64_t iy = 0; iy < g.h; ++iy)
      std::copy(x + (ci * g.h + iy) * g.w, x + (ci * g.h + iy + 1) * g.w, xp + (ci * pl.h2 + iy + g.ph) * pl.w2 + g.pw);
}

// Output rows [oy0, oy1) of y [og, oh * ow] from the padded image xp.
void rows(const float* xp, const Plan& pl, const float* wp, const float* bias, float* y, int64_t oy0, int64_t oy1) {
  const Geometry& g = pl.g;
  const int64_t l = g.oh * g.ow;
  for (int64_t oy = oy0; oy < oy1; ++oy)
    for (int64_t ox = 0; ox < g.ow; ox += kNR)
      for (int64_t i = 0, r0 = 0; r0 < pl.og; r0 = panel_start(pl.og, ++i)) {
        const int64_t mr = panel_start(pl.og, i + 1) - r0;
        kTiles[mr](pl.k, wp + r0 * pl.k, xp + oy * pl.w2 + ox, pl.start.data(), bias ? bias + r0 : nullptr,
                   y + r0 * l + oy * g.ow + ox, l, std::min(kNR, g.ow - ox));
      }
}

void conv2d(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias, const Conv2dParams& p) {
  const int64_t n_batch = in.shape()[0], c_in = in.shape()[1], groups = p.groups;
  const int64_t c_out = weight.shape()[0], og = c_out / groups;
  const Geometry g = geometry(weight.shape()[1], in, weight, out, p);
  const Plan pl(g, og);
  const int64_t k = pl.k, l = g.oh * g.ow, hw = g.h * g.w, units = n_batch * groups;
  auto wp = tiles::aligned_floats(c_out * k);
  for (int64_t gi = 0; gi < groups; ++gi)
    pack_weight(weight.data_ptr<float>() + gi * og * k, og, k, wp.get() + gi * og * k);
  const float* x = in.data_ptr<float>();
  const float* b = bias.defined() ? bias.data_ptr<float>() : nullptr;
  float* y = out.data_ptr<float>();
  auto unit = [&](int64_t u, float* xp, int64_t oy0, int64_t oy1) {
    const int64_t n = u / groups, gi = u % groups;
    rows(xp, pl, wp.get() + gi * og * k, b ? b + gi * og : nullptr, y + (n * c_out + gi * og) * l, oy0, oy1);
  };
  auto image = [&](int64_t u) { return x + ((u / groups) * c_in + (u % groups) * g.c) * hw; };
  const double unit_work = double(og) * double(l) * double(k);
  if (split_units(units, unit_work)) {  // many (sample, group) pairs: one per task
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, units, 1), [&](const tbb::blocked_range<int64_t>& r) {
      auto xp = tiles::aligned_floats(pl.plane_size());
      for (int64_t u = r.begin(); u < r.end(); ++u) {
        pad(image(u), pl, xp.get());
        unit(u, xp.get(), 0, g.oh);
      }
    });
    return;
  }
  auto xp = tiles::aligned_floats(pl.plane_size());
  const bool parallel = get_num_threads() > 1 && unit_work >= kMinParallelWork;
  for (int64_t u = 0; u < units; ++u) {
    pad(image(u), pl, xp.get());
    if (!parallel) {
      unit(u, xp.get(), 0, g.oh);
      continue;
    }
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, g.oh),
                      [&](const tbb::blocked_range<int64_t>& r) { unit(u, xp.get(), r.begin(), r.end()); });
  }
}

// In-register transpose of eight rows of eight floats.
inline void transpose8(__m256 (&r)[8]) {
  __m256 t[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  __m256 u[8];
  for (int i = 0; i < 8; i += 4)
    for (int j = 0; j < 2; ++j) {
      u[i + 2 * j] = _mm256_shuffle_ps(t[i + j], t[i + j + 2], _MM_SHUFFLE(1, 0, 1, 0));
      u[i + 2 * j + 1] = _mm256_shuffle_ps(t[i + j], t[i + j + 2], _MM_SHUFFLE(3, 2, 3, 2));
    }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

// One group's output gradient dyg [og, oh * ow] as panels of 16 channels, [oh * w2][16] each: position
// (oy, ox) at oy * w2 + ox, 0 past ow (the padded image's extra columns) and past og.
void pack_output_grad(const float* dyg, const Plan& pl, float* dyp) {
  const Geometry& g = pl.g;
  const int64_t l = g.oh * g.ow, panels = (pl.og + kNR - 1) / kNR;
  for (int64_t q = 0; q < panels; ++q)
    for (int64_t c8 = 0; c8 < kNR; c8 += 8) {
      const int64_t o0 = q * kNR + c8, nc = std::clamp<int64_t>(pl.og - o0, 0, 8);
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        float* d = dyp + (q * g.oh + oy) * pl.w2 * kNR + c8;  // position ox at d + ox * kNR
        const float* src = dyg + o0 * l + oy * g.ow;          // channel o0 + i at src + i * l
        int64_t ox = 0;
        if (nc == 8)
          for (; ox + 8 <= g.ow; ox += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * l + ox);
            transpose8(r);
            for (int t = 0; t < 8; ++t) _mm256_storeu_ps(d + (ox + t) * kNR, r[t]);
          }
        for (; ox < pl.w2; ++ox)
          for (int64_t i = 0; i < 8; ++i) d[ox * kNR + i] = i < nc && ox < g.ow ? src[i * l + ox] : 0.0f;
      }
    }
}

// grad_weight [O, C / groups, kH, kW] = sum over the batch of grad_out x the column matrix of in,
// with the same padded image as the forward; batch chunks summed by sum_batch_chunks.
void conv2d_weight_backward(const Tensor& grad_weight, const Tensor& grad_out, const Tensor& in,
                            const Conv2dParams& p) {
  const int64_t n_batch = in.shape()[0], c_in = in.shape()[1], groups = p.groups;
  const int64_t c_out = grad_weight.shape()[0], og = c_out / groups;
  const Geometry g = geometry(grad_weight.shape()[1], in, grad_weight, grad_out, p);
  const Plan pl(g, og);
  const int64_t k = pl.k, l = g.oh * g.ow, hw = g.h * g.w, size = c_out * k;
  const int64_t positions = g.oh * pl.w2, panels = (og + kNR - 1) / kNR;
  const float* x = in.data_ptr<float>();
  const float* dy = grad_out.data_ptr<float>();
  float* gw = grad_weight.data_ptr<float>();
  std::fill(gw, gw + size, 0.0f);
  // Adds samples [n0, n1) into acc [O, k]; xp and dyp are the chunk's own buffers.
  auto samples = [&](int64_t n0, int64_t n1, float* acc, float* xp, float* dyp) {
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t gi = 0; gi < groups; ++gi) {
        pad(x + (n * c_in + gi * g.c) * hw, pl, xp);
        pack_output_grad(dy + (n * c_out + gi * og) * l, pl, dyp);
        float* accg = acc + gi * og * k;
        for (int64_t i = 0, r0 = 0; r0 < k; r0 = panel_start(k, ++i)) {
          const int64_t mr = panel_start(k, i + 1) - r0;
          const float* taps[kMR];  // the column-matrix rows of taps r0 .. r0 + mr
          for (int64_t t = 0; t < mr; ++t) taps[t] = xp + pl.start[size_t(r0 + t)];
          for (int64_t q = 0; q < panels; ++q)
            tiles::rows_by_panel(mr, positions, taps, dyp + q * positions * kNR, 1.0f, 1.0f, accg + q * kNR * k + r0, k,
                                 std::min(kNR, og - q * kNR));
        }
      }
  };
  const int64_t xp_size = pl.plane_size(), dyp_size = panels * positions * kNR;
  const int64_t chunks = std::min<int64_t>(get_num_threads(), n_batch);
  const double sample_work = double(c_out) * double(k) * double(l);
  if (chunks < 2 || sample_work * double(n_batch) < kMinParallelWork) {
    auto xp = tiles::aligned_floats(xp_size), dyp = tiles::aligned_floats(dyp_size);
    return samples(0, n_batch, gw, xp.get(), dyp.get());
  }
  sum_batch_chunks(n_batch, chunks, gw, size, [&](int64_t n0, int64_t n1, float* acc) {
    auto xp = tiles::aligned_floats(xp_size), dyp = tiles::aligned_floats(dyp_size);
    samples(n0, n1, acc, xp.get(), dyp.get());
  });
}

}  // namespace padded
#endif

// float32 conv2d: stride-1 convs whose weight fits in L2 without a column matrix on AVX2 machines,
// everything else im2col + GEMM.
void conv2d_f32(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias, const Conv2dParams& p) {
#if defined(__AVX2__) && defined(__FMA__)
  const Geometry g = geometry(weight.shape()[1], in, weight, out, p);
  const int64_t og = weight.shape()[0] / p.groups, k = g.c * g.kh * g.kw;
  if (!is_direct(g) && padded::applies(g, og, k) && in.numel() > 0 && out.numel() > 0)
    return padded::conv2d(out, in, weight, bias, p);
#endif
  conv2d_typed<float>(out, in, weight, bias, p);
}

void conv2d_weight_backward_f32(const Tensor& grad_weight, const Tensor& grad_out, const Tensor& in,
                                const Conv2dParams& p) {
#if defined(__AVX2__) && defined(__FMA__)
  const Geometry g = geometry(grad_weight.shape()[1], in, grad_weight, grad_out, p);
  const int64_t og = grad_weight.shape()[0] / p.groups, k = g.c * g.kh * g.kw;
  if (!is_direct(g) && padded::applies(g, og, k) && in.numel() > 0 && grad_out.numel() > 0)
    return padded::conv2d_weight_backward(grad_weight, grad_out, in, p);
#endif
  conv2d_weight_backward_typed<float>(grad_weight, grad_out, in, p);
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
      conv2d_f32(out32, to_f32(in), to_f32(weight), to_f32(bias), p);
      copy(out, out32);
    } else if constexpr (std::is_same_v<T, float>) {
      conv2d_f32(out, in, weight, bias, p);
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
      conv2d_weight_backward_f32(gw32, to_f32(grad_out), to_f32(in), p);
      copy(grad_weight, gw32);
    } else if constexpr (std::is_same_v<T, float>) {
      conv2d_weight_backward_f32(grad_weight, grad_out, in, p);
    } else {
      conv2d_weight_backward_typed<T>(grad_weight, grad_out, in, p);
    }
  });
}

}  // namespace ember::kernels::cpu
