// The CUDA pooling and normalisation planning (kernels/nn_plan.hpp) and the shared window and row math
// (kernels/nn_math.hpp), on the CPU: window bounds and the window ranges the gather backwards use
// against brute force over many geometries, a host emulation of the CUDA gather backwards against
// the CPU's scatter kernels, Welford merges, batch_norm's gradient coefficients, row and channel
// plans (coverage, grid limits, workspace sizes).
#include <set>

#include "kernels/nn_math.hpp"
#include "kernels/nn_plan.hpp"
#include "test_util.hpp"

using namespace ember;
using namespace ember::kernels;
using ember::testing::equal;

namespace {

// PyTorch's pooling_output_shape (core/ops/pool.cpp's pooled_size).
int64_t pooled_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dilation, bool ceil_mode) {
  const int64_t num = in + 2 * pad - dilation * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t out = (num >= 0 ? num / stride : -((-num + stride - 1) / stride)) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

std::set<int64_t> range_set(Range r) {
  std::set<int64_t> s;
  for (int64_t o = r.begin; o < r.end; ++o) s.insert(o);
  return s;
}

// Calls f(n, k, s, p, d, out) for many 1-d geometries the builders accept (padding <= k / 2, both
// ceil modes, non-empty output).
template <class F>
int for_geometries(F&& f) {
  int count = 0;
  for (int64_t n = 1; n <= 13; ++n)
    for (int64_t k = 1; k <= 5; ++k)
      for (int64_t s = 1; s <= 4; ++s)
        for (int64_t p = 0; p <= k / 2; ++p)
          for (int64_t d = 1; d <= 3; ++d)
            for (bool ceil : {false, true}) {
              const int64_t out = pooled_size(n, k, p, s, d, ceil);
              if (out <= 0) continue;
              f(n, k, s, p, d, out);
              ++count;
            }
  return count;
}

}  // namespace

TEST_CASE("nn plan: max-pool taps are the in-range dilated window positions") {
  const int count = for_geometries([](int64_t n, int64_t k, int64_t s, int64_t p, int64_t d, int64_t out) {
    for (int64_t o = 0; o < out; ++o) {
      std::set<int64_t> want;
      for (int64_t j = 0; j < k; ++j)
        if (const int64_t i = o * s - p + j * d; i >= 0 && i < n) want.insert(i);
      std::set<int64_t> got;
      const Range r = max_pool_taps(o, k, s, p, d, n);
      for (int64_t i = r.begin; i < r.end; i += d) got.insert(i);
      CHECK(got == want);
    }
  });
  CHECK(count > 1000);
}

TEST_CASE("nn plan: avg-pool windows and divisors") {
  for_geometries([](int64_t n, int64_t k, int64_t s, int64_t p, int64_t d, int64_t out) {
    if (d != 1) return;
    for (int64_t o = 0; o < out; ++o) {
      const AvgWindow w = avg_pool_window(o, k, s, p, n);
      const int64_t b = o * s - p;
      CHECK(w.begin == std::max<int64_t>(b, 0));
      CHECK(w.end == std::min(b + k, n));
      CHECK(w.size == std::min(b + k, n + p) - b);  // clipped to the padded input only
      CHECK(w.size <= k);
      CHECK(avg_pool_divisor(w, w, false) == (w.end - w.begin) * (w.end - w.begin));
      CHECK(avg_pool_divisor(w, w, true) == w.size * w.size);
    }
  });
}

TEST_CASE("nn plan: the windows holding each input position equal brute force (gather backwards)") {
  const int count = for_geometries([](int64_t n, int64_t k, int64_t s, int64_t p, int64_t d, int64_t out) {
    for (int64_t i = 0; i < n; ++i) {
      CAPTURE(n);
      CAPTURE(k);
      CAPTURE(s);
      CAPTURE(p);
      CAPTURE(d);
      CAPTURE(i);
      // Max pools: the windows whose span holds i, a superset of those with a tap at i.
      std::set<int64_t> span_set, tap_set;
      for (int64_t o = 0; o < out; ++o) {
        const int64_t b = o * s - p;
        if (b <= i && i < b + (k - 1) * d + 1) span_set.insert(o);
        const Range r = max_pool_taps(o, k, s, p, d, n);
        for (int64_t t = r.begin; t < r.end; t += d)
          if (t == i) tap_set.insert(o);
      }
      const std::set<int64_t> got = range_set(pool_windows_containing(i, (k - 1) * d + 1, s, p, out));
      CHECK(got == span_set);
      CHECK(std::includes(got.begin(), got.end(), tap_set.begin(), tap_set.end()));
      // Avg pools (no dilation): exactly the windows whose clipped range holds i.
      if (d == 1) {
        std::set<int64_t> want;
        for (int64_t o = 0; o < out; ++o) {
          const AvgWindow w = avg_pool_window(o, k, s, p, n);
          if (w.begin <= i && i < w.end) want.insert(o);
        }
        CHECK(range_set(pool_windows_containing(i, k, s, p, out)) == want);
      }
    }
  });
  CHECK(count > 1000);
  for (int64_t n = 1; n <= 25; ++n)
    for (int64_t m = 1; m <= 25; ++m)
      for (int64_t i = 0; i < n; ++i) {
        std::set<int64_t> want;
        for (int64_t o = 0; o < m; ++o)
          if (adaptive_start(o, n, m) <= i && i < adaptive_end(o, n, m)) want.insert(o);
        CAPTURE(n);
        CAPTURE(m);
        CAPTURE(i);
        CHECK(range_set(adaptive_windows_containing(i, n, m)) == want);
        CHECK(!want.empty());
      }
}

namespace {

// Host emulations of kernels/cuda/pool.cu's gather backwards (same math, same loop order), on f64.
Tensor gather_backward(const Tensor& go, const Tensor& idx, int64_t h, int64_t w, const Pool2dParams& p, int kind) {
  const PoolGeom g = make_pool_geom(go, h, w, go.size(2), go.size(3), p);
  Tensor gi = zeros({go.size(0), go.size(1), h, w}, {.dtype = kF64});
  const double* gp0 = static_cast<const double*>(go.raw_data());
  double* out = static_cast<double*>(gi.raw_data());
  for (int64_t e = 0; e < gi.numel(); ++e) {
    const int64_t x = e % w, y = e / w % h, plane = e / (h * w);
    const double* gp = gp0 + plane / g.c * g.s0 + plane % g.c * g.s1;
    double acc = 0;
    if (kind == 0) {
      const int64_t* ip = static_cast<const int64_t*>(idx.raw_data()) + plane * g.oh * g.ow;
      const Range rh = pool_windows_containing(y, (g.kh - 1) * g.dh + 1, g.sh, g.ph, g.oh);
      const Range rw = pool_windows_containing(x, (g.kw - 1) * g.dw + 1, g.sw, g.pw, g.ow);
      for (int64_t oy = rh.begin; oy < rh.end; ++oy)
        for (int64_t ox = rw.begin; ox < rw.end; ++ox)
          if (ip[oy * g.ow + ox] == y * w + x) acc += gp[oy * g.s2 + ox * g.s3];
    } else if (kind == 1) {
      const Range rh = pool_windows_containing(y, g.kh, g.sh, g.ph, g.oh);
      const Range rw = pool_windows_containing(x, g.kw, g.sw, g.pw, g.ow);
      for (int64_t oy = rh.begin; oy < rh.end; ++oy)
        for (int64_t ox = rw.begin; ox < rw.end; ++ox)
          acc += gp[oy * g.s2 + ox * g.s3] /
                 static_cast<double>(avg_pool_divisor(avg_pool_window(oy, g.kh, g.sh, g.ph, h),
                                                      avg_pool_window(ox, g.kw, g.sw, g.pw, w), g.count_include_pad));
    } else {
      const Range rh = adaptive_windows_containing(y, h, g.oh), rw = adaptive_windows_containing(x, w, g.ow);
      for (int64_t oy = rh.begin; oy < rh.end; ++oy)
        for (int64_t ox = rw.begin; ox < rw.end; ++ox)
          acc += gp[oy * g.s2 + ox * g.s3] /
                 static_cast<double>((adaptive_end(oy, h, g.oh) - adaptive_start(oy, h, g.oh)) *
                                     (adaptive_end(ox, w, g.ow) - adaptive_start(ox, w, g.ow)));
    }
    out[e] = acc;
  }
  return gi;
}

}  // namespace

TEST_CASE("nn plan: the gather backwards (emulated on the host) equal the CPU's scatter kernels bit for bit") {
  manual_seed(7);
  struct G {
    int64_t h, w, kh, kw, sh, sw, ph, pw, dh, dw;
    bool ceil, incl;
  };
  for (const G& c : {G{9, 8, 3, 3, 2, 2, 1, 1, 1, 1, false, true}, G{9, 8, 3, 2, 2, 1, 1, 1, 1, 2, true, false},
                     G{7, 10, 2, 4, 1, 3, 1, 2, 2, 1, true, true}, G{5, 5, 5, 5, 1, 1, 2, 2, 1, 1, false, false},
                     G{11, 6, 4, 3, 3, 2, 2, 0, 1, 1, true, false}}) {
    CAPTURE(c.h);
    CAPTURE(c.w);
    CAPTURE(c.kh);
    CAPTURE(c.kw);
    Tensor x = randn({2, 3, c.h, c.w}, {.dtype = kF64});
    auto [out, idx] = max_pool2d_with_indices(x, {c.kh, c.kw}, {c.sh, c.sw}, {c.ph, c.pw}, {c.dh, c.dw}, c.ceil);
    Pool2dParams p{{c.kh, c.kw}, {c.sh, c.sw}, {c.ph, c.pw}, {c.dh, c.dw}, c.incl};
    // grad_out strided (transposed planes) as the kernels allow.
    Tensor go = randn({2, 3, out.size(3), out.size(2)}, {.dtype = kF64}).transpose(2, 3);
    Tensor want = zeros(x.shape(), {.dtype = kF64});
    kernels::max_pool2d_backward(want, go, idx, p);
    CHECK(equal(gather_backward(go, idx, c.h, c.w, p, 0), want));

    Pool2dParams pa = p;
    pa.dilation[0] = pa.dilation[1] = 1;
    Tensor avg = ember::avg_pool2d(x, {c.kh, c.kw}, {c.sh, c.sw}, {c.ph, c.pw}, c.ceil, c.incl);
    Tensor ga = randn(avg.shape(), {.dtype = kF64});
    kernels::avg_pool2d_backward(want, ga, pa);
    CHECK(equal(gather_backward(ga, Tensor(), c.h, c.w, pa, 1), want));

    for (std::array<int64_t, 2> os : {std::array<int64_t, 2>{3, 4}, {c.h + 2, 1}, {2, c.w}}) {
      Tensor gd = randn({2, 3, os[0], os[1]}, {.dtype = kF64});
      kernels::adaptive_avg_pool2d_backward(want, gd);
      CHECK(equal(gather_backward(gd, Tensor(), c.h, c.w, Pool2dParams{}, 2), want));
    }
  }
}

namespace {

// kernels/cuda/norm.cu's layer_norm of one row in f32, emulated: `lanes` threads (a multiple of 32)
// stride over the row, their partial sums combined as warp_reduce/block_reduce do, the mean split by
// shifted_mean.
std::vector<double> emulate_row_f32(const std::vector<double>& row, int lanes, float eps) {
  std::vector<float> x(row.begin(), row.end());
  const auto n = static_cast<int64_t>(x.size());
  // An xor butterfly over 32 lanes (warp_reduce), then over the warps' sums (block_reduce).
  auto butterfly = [](std::vector<float> v) {
    for (int o = 16; o > 0; o /= 2) {
      std::vector<float> next = v;
      for (int l = 0; l < 32; ++l) next[size_t(l)] = v[size_t(l)] + v[size_t(l ^ o)];
      v = next;
    }
    return v[0];
  };
  auto group_sum = [&](auto f) {
    std::vector<float> part(static_cast<size_t>(lanes), 0.0f);
    for (int64_t j = 0; j < n; ++j) part[static_cast<size_t>(j % lanes)] += f(j);
    std::vector<float> warps(32, 0.0f);
    for (int w = 0; w < lanes / 32; ++w)
      warps[size_t(w)] = butterfly(std::vector<float>(part.begin() + w * 32, part.begin() + w * 32 + 32));
    return lanes == 32 ? warps[0] : butterfly(warps);
  };
  const float k = x[0];
  const auto [hi_, lo_] = shifted_mean(k, group_sum([&](int64_t j) { return x[size_t(j)] - k; }), n);
  // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
  const auto& hi = hi_;
  const auto& lo = lo_;
  const float var = group_sum([&](int64_t j) {
                      const float d = (x[size_t(j)] - hi) - lo;
                      return d * d;
                    }) /
                    static_cast<float>(n);
  const float rstd = 1.0f / std::sqrt(var + eps);
  std::vector<double> y;
  for (float v : x) y.push_back(normalize_value(v, hi, lo, rstd));
  return y;
}

}  // namespace

TEST_CASE("nn plan: the CUDA row statistics (emulated in f32) keep their precision under a large mean") {
  manual_seed(4);
  for (auto [cols_, lanes_, mean, spread] : {std::tuple<int64_t, int, double, double>{257, 32, 1000.0, 0.01},
                                             {4000, 512, 1000.0, 0.01},
                                             {1500, 192, -300.0, 1.0},
                                             {5, 32, 0.0, 2.0}}) {
    // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
    const auto& cols = cols_;
    const auto& lanes = lanes_;
    CAPTURE(cols);
    CAPTURE(lanes);
    auto x = (randn({cols}, {.dtype = kF64}) * spread + mean).to(kF32).to_vector<double>();
    double m = 0, v = 0;
    for (double e : x) m += e / static_cast<double>(cols);
    for (double e : x) v += (e - m) * (e - m) / static_cast<double>(cols);
    const std::vector<double> got = emulate_row_f32(x, lanes, 1e-5f);
    double worst = 0;
    for (size_t j = 0; j < x.size(); ++j) worst = std::max(worst, std::abs(got[j] - (x[j] - m) / std::sqrt(v + 1e-5)));
    CHECK(worst < 2e-4);
  }
}

TEST_CASE("nn plan: Welford merges in chunks equal the two-pass statistics") {
  manual_seed(3);
  auto v = (randn({1000}, {.dtype = kF64}) * 3.0 + 50.0).to_vector<double>();
  double mean = 0, m2 = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  for (double x : v) m2 += (x - mean) * (x - mean);
  for (size_t chunk : {1, 7, 64, 333, 1000}) {
    Welford<double> total;
    for (size_t b = 0; b < v.size(); b += chunk) {
      Welford<double> part;
      for (size_t i = b; i < std::min(v.size(), b + chunk); ++i) part = welford_add(part, v[i]);
      total = welford_merge(total, part);
    }
    CAPTURE(chunk);
    CHECK(total.n == 1000.0);
    CHECK(std::abs(total.mean - mean) < 1e-12 * 50);
    CHECK(std::abs(total.m2 - m2) < 1e-9 * m2);
  }
  // Empty partials are identities on both sides.
  Welford<double> a = welford_add(Welford<double>{}, 2.0), e{};
  CHECK(welford_merge(a, e).mean == 2.0);
  CHECK(welford_merge(e, a).mean == 2.0);
  CHECK(welford_merge(e, e).n == 0.0);
}

TEST_CASE("nn plan: batch_norm gradient coefficients") {
  // Training: dx sums to zero over the channel and is orthogonal to x - mean (the batch statistics'
  // two constraints); evaluation: only the scale term.
  const std::vector<double> x = {0.5, -1.0, 2.0, 3.5, 0.0}, g = {1.0, 2.0, -0.5, 0.25, 3.0};
  double mean = 0, var = 0, sg = 0, sgx = 0;
  for (double e : x) mean += e / 5;
  for (double e : x) var += (e - mean) * (e - mean) / 5;
  for (size_t i = 0; i < 5; ++i) sg += g[i], sgx += g[i] * (x[i] - mean);
  const double rstd = 1 / std::sqrt(var + 1e-5);
  const BnGradCoeffs f = bn_grad_coeffs(1.5, rstd, mean, sg, sgx, 5, true);
  double sum_dx = 0, dot = 0;
  for (size_t i = 0; i < 5; ++i) {
    const double dx = f.k * g[i] + f.bx * x[i] + f.d;
    sum_dx += dx;
    dot += dx * (x[i] - mean);
  }
  CHECK(std::abs(sum_dx) < 1e-12);
  CHECK(std::abs(dot) < 1e-4);  // zero up to eps's share of the variance
  const BnGradCoeffs e = bn_grad_coeffs(1.5, rstd, mean, sg, sgx, 5, false);
  CHECK(e.k == 1.5 * rstd);
  CHECK(e.bx == 0.0);
  CHECK(e.d == 0.0);
}

TEST_CASE("nn plan: row plans cover every row within the launch limits") {
  for (int64_t rows : std::initializer_list<int64_t>{1, 7, 8, 9, 1000, int64_t{1} << 33})
    for (int64_t cols : {1, 31, 32, 1024, 1025, 4096, 100000}) {
      CAPTURE(rows);
      CAPTURE(cols);
      const RowPlan p = plan_rows(rows, cols);
      CHECK(p.block_per_row == (cols > kWarpRowMaxCols));
      CHECK(p.threads % 32 == 0);
      CHECK(p.threads >= 32);
      CHECK(p.threads <= (p.block_per_row ? kRowMaxThreads : kRowWarpThreads));  // the kernels' launch bounds
      CHECK(p.threads <= 1024);
      CHECK(p.rows_per_block == (p.block_per_row ? 1 : p.threads / 32));
      CHECK(p.blocks >= 1);
      CHECK(p.blocks <= kNnMaxGridX);
      // Grid-stride: either one pass covers every row or the grid is at its cap.
      CHECK((p.blocks * p.rows_per_block >= rows || p.blocks == kNnMaxGridX));
      CHECK(p.blocks * p.rows_per_block < rows + p.rows_per_block);  // no block without a row
      if (p.block_per_row) CHECK(int64_t{p.threads} * 8 >= std::min<int64_t>(cols, 8192));
    }
}

TEST_CASE("nn plan: layer_norm's parameter-gradient plans take every row once, in non-empty chunks") {
  for (int64_t rows : std::initializer_list<int64_t>{1, 7, 33, 8192, 100000, int64_t{1} << 33})
    for (int64_t cols : {1, 31, 32, 768, 1025, 100000}) {
      CAPTURE(rows);
      CAPTURE(cols);
      const LayerNormParamPlan p = plan_layer_norm_params(rows, cols);
      CHECK(p.tiles * kParamTileCols >= cols);
      CHECK((p.tiles - 1) * kParamTileCols < cols);
      CHECK(p.chunks >= 1);
      CHECK(p.chunks <= kNnMaxGridY);
      CHECK(p.chunks * p.chunk_rows >= rows);
      CHECK((p.chunks - 1) * p.chunk_rows < rows);  // the last chunk has a row
      CHECK(p.workspace == p.chunks * 2 * cols);
      // Enough blocks to fill a GPU where there are enough rows, each thread with a few rows.
      if (rows >= 4 * kParamTileRows * 1024) CHECK(p.tiles * p.chunks >= 960);
      if (p.chunks > 1) CHECK(p.chunk_rows >= 4 * kParamTileRows);
    }
}

TEST_CASE("nn plan: channel plans cut each channel into non-empty chunks the workspace holds") {
  for (int64_t c : {1, 3, 64, 1000, 70000})
    for (int64_t count : std::initializer_list<int64_t>{0, 1, 2, 255, 1024, 65536, 802816, int64_t{1} << 26})
      for (int width : {2, 3}) {
        CAPTURE(c);
        CAPTURE(count);
        CAPTURE(width);
        const ChannelPlan p = plan_channels(c, count, width);
        CHECK(p.chunks >= 1);
        CHECK(p.chunk_len <= kChannelMaxChunkLen);
        CHECK(p.chunks * p.chunk_len >= count);                             // every value in some chunk
        CHECK((p.chunks - 1) * p.chunk_len < std::max<int64_t>(count, 1));  // the last chunk is not empty
        CHECK(p.grid_x == p.chunks);
        CHECK(p.grid_x <= kNnMaxGridX);
        CHECK(p.grid_y >= 1);
        CHECK(p.grid_y <= kNnMaxGridY);
        CHECK(p.threads % 32 == 0);
        CHECK(p.workspace == c * p.chunks * width);
        // The highest partial the kernels write, ((c - 1) * chunks + chunks - 1) * width + width - 1.
        CHECK(((c - 1) * p.chunks + p.chunks - 1) * width + width - 1 < p.workspace);
        if (count >= 4 * 256) CHECK(p.chunk_len >= 4 * 256);  // at least four values a thread
      }
  // Small cases: each value of a channel lands in exactly one chunk.
  for (int64_t count = 0; count < 3000; count += 37) {
    const ChannelPlan p = plan_channels(2, count, 3);
    std::vector<int> seen(static_cast<size_t>(count), 0);
    for (int64_t k = 0; k < p.chunks; ++k)
      for (int64_t e = k * p.chunk_len; e < std::min((k + 1) * p.chunk_len, count); ++e) ++seen[size_t(e)];
    CHECK(std::all_of(seen.begin(), seen.end(), [](int s) { return s == 1; }));
  }
}

TEST_CASE("nn plan: flat plans and pool geometry") {
  for (int64_t n : std::initializer_list<int64_t>{1, 255, 256, 257, int64_t{1} << 40}) {
    const FlatPlan f = plan_flat(n);
    CHECK(f.blocks >= 1);
    CHECK(f.blocks <= kNnMaxGridX);
    CHECK((f.blocks * f.threads >= n || f.blocks == kNnMaxGridX));
  }
  Tensor x = zeros({2, 3, 5, 7}).transpose(2, 3);  // [2, 3, 7, 5] with strides (105, 35, 1, 7)
  Pool2dParams p{{3, 2}, {2, 1}, {1, 1}, {1, 2}, false};
  const PoolGeom g = make_pool_geom(x, 7, 5, 4, 3, p);
  CHECK(g.planes() == 6);
  CHECK((g.s0 == 105 && g.s1 == 35 && g.s2 == 1 && g.s3 == 7));
  CHECK((g.kh == 3 && g.kw == 2 && g.sh == 2 && g.sw == 1 && g.ph == 1 && g.pw == 1 && g.dh == 1 && g.dw == 2));
  CHECK((g.h == 7 && g.w == 5 && g.oh == 4 && g.ow == 3));
  CHECK_FALSE(g.count_include_pad);
}
