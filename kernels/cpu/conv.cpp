// CPU convolution: im2col into a [C/g * kH * kW, OH * OW] column matrix, then one GEMM per (sample,
// group) with the weight; 1x1 stride-1 unpadded convs skip im2col (the input already is that matrix).
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
// Per-(sample, group) GEMM work above which OpenBLAS's own threading beats splitting the batch.
constexpr double kMaxUnitParallelWork = 1 << 26;

struct Geometry {
  int64_t c, h, w;  // input channels per group, height, width
  int64_t kh, kw;   // kernel
  int64_t oh, ow;   // output
  int64_t sh, sw, ph, pw, dh, dw;
};

// Fills rows [r0, r1) of the column matrix from one group's input x [c, h, w]: row (ci, ki, kj) holds,
// for every output position, the input pixel that kernel tap sees (0 in the padding).
template <class T>
void im2col_rows(const T* x, const Geometry& g, T* col, int64_t r0, int64_t r1) {
  const int64_t ohw = g.oh * g.ow;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t ci = r / (g.kh * g.kw), ki = (r / g.kw) % g.kh, kj = r % g.kw;
    T* dst = col + r * ohw;
    // Output columns whose input column iw = ox * sw - pw + kj * dw lies inside [0, w).
    const int64_t off = kj * g.dw - g.pw;
    int64_t lo = off >= 0 ? 0 : (-off + g.sw - 1) / g.sw;
    int64_t hi = g.w - 1 - off < 0 ? 0 : std::min(g.ow, (g.w - 1 - off) / g.sw + 1);
    lo = std::min(lo, hi);
    for (int64_t oy = 0; oy < g.oh; ++oy, dst += g.ow) {
      const int64_t iy = oy * g.sh - g.ph + ki * g.dh;
      if (iy < 0 || iy >= g.h) {
        std::fill(dst, dst + g.ow, T(0));
        continue;
      }
      const T* src = x + (ci * g.h + iy) * g.w;
      std::fill(dst, dst + lo, T(0));
      if (g.sw == 1) {
        std::copy(src + lo + off, src + hi + off, dst + lo);
      } else {
        for (int64_t ox = lo; ox < hi; ++ox) dst[ox] = src[ox * g.sw + off];
      }
      std::fill(dst + hi, dst + g.ow, T(0));
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

template <class T>
void conv2d_typed(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias,
                  const Conv2dParams& p) {
  const int64_t n_batch = in.shape()[0], c_in = in.shape()[1], groups = p.groups;
  const int64_t c_out = weight.shape()[0], og = c_out / groups;
  Geometry g{weight.shape()[1], in.shape()[2],  in.shape()[3], weight.shape()[2], weight.shape()[3],
             out.shape()[2],    out.shape()[3], p.stride[0],   p.stride[1],       p.padding[0],
             p.padding[1],      p.dilation[0],  p.dilation[1]};
  const int64_t k = g.c * g.kh * g.kw, l = g.oh * g.ow, hw = g.h * g.w;
  const int64_t units = n_batch * groups;
  if (units == 0 || og == 0 || l == 0) return;
  // A 1x1 kernel with stride 1 and no padding sees the input itself as the column matrix.
  const bool direct = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
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
  const int threads = get_num_threads();
  if (threads > 1 && units >= threads && unit_work <= kMaxUnitParallelWork &&
      unit_work * double(units) >= kMinParallelWork) {
    // Many (sample, group) pairs: one per task, OpenBLAS single-threaded inside.
    BlasSingleThreaded single;
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, units, 1), [&](const tbb::blocked_range<int64_t>& r) {
      std::unique_ptr<T[]> col(new T[std::max<size_t>(col_size, 1)]);
      for (int64_t u = r.begin(); u < r.end(); ++u) unit(u, col.get(), false);
    });
    return;
  }
  std::unique_ptr<T[]> col(new T[std::max<size_t>(col_size, 1)]);
  for (int64_t u = 0; u < units; ++u) unit(u, col.get(), true);
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

}  // namespace ember::kernels::cpu
