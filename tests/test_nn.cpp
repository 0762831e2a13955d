// Pooling and normalisation forwards: PyTorch fixtures in every float dtype, independent naive loops
// (in long double) on random, strided and large inputs, zero-size inputs and error cases.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace ember;
using ember::testing::allclose;
using ember::testing::equal;

namespace {

const std::vector<DType> kFloat = {kF32, kF64, kF16, kBF16};
const char* dname(DType dt) { return dt == kF32 ? "f32" : dt == kF64 ? "f64" : dt == kF16 ? "f16" : "bf16"; }
double tol(DType dt) { return dt == kF64 ? 1e-10 : dt == kF32 ? 2e-5 : dt == kF16 ? 2e-3 : 1.6e-2; }
using V = std::vector<double>;
using LD = long double;

template <class E, class F>
void check_throws_mentioning(F&& f, const std::string& needle) {
  bool thrown = false;
  try {
    f();
  } catch (const E& e) {
    thrown = true;
    CHECK_MESSAGE(std::string(e.what()).find(needle) != std::string::npos, e.what());
  }
  CHECK_MESSAGE(thrown, "expected an exception mentioning ", needle);
}

// ---- naive references over [N, C, H, W] values in logical (row-major) order ----

struct Win {
  int64_t kh, kw, sh, sw, ph, pw, dh = 1, dw = 1;
  bool ceil = false;
};

// Output size by the documented formula, ceil_mode dropping a window that starts in the right padding.
int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil) {
  double span = static_cast<double>(in + 2 * p - d * (k - 1) - 1) / static_cast<double>(s);
  auto o = static_cast<int64_t>(ceil ? std::ceil(span) : std::floor(span)) + 1;
  if (ceil && (o - 1) * s >= in + p) --o;
  return o;
}

struct NaiveMax {
  V out;
  std::vector<int64_t> idx;
};
NaiveMax naive_max_pool(const V& x, int64_t planes, int64_t h, int64_t w, const Win& p) {
  int64_t oh = out_size(h, p.kh, p.sh, p.ph, p.dh, p.ceil), ow = out_size(w, p.kw, p.sw, p.pw, p.dw, p.ceil);
  NaiveMax r;
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        double best = -std::numeric_limits<double>::infinity();
        int64_t bi = -1;
        for (int64_t a = 0; a < p.kh; ++a)
          for (int64_t b = 0; b < p.kw; ++b) {
            int64_t y = i * p.sh - p.ph + a * p.dh, z = j * p.sw - p.pw + b * p.dw;
            if (y < 0 || y >= h || z < 0 || z >= w) continue;
            double v = x[(pl * h + y) * w + z];
            if (bi < 0 || v > best || std::isnan(v)) {
              best = v;
              bi = y * w + z;
            }
          }
        r.out.push_back(best);
        r.idx.push_back(bi);
      }
  return r;
}

V naive_avg_pool(const V& x, int64_t planes, int64_t h, int64_t w, const Win& p, bool include_pad) {
  int64_t oh = out_size(h, p.kh, p.sh, p.ph, 1, p.ceil), ow = out_size(w, p.kw, p.sw, p.pw, 1, p.ceil);
  V out;
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        LD sum = 0;
        int64_t inside = 0, padded = 0;
        for (int64_t a = 0; a < p.kh; ++a)
          for (int64_t b = 0; b < p.kw; ++b) {
            int64_t y = i * p.sh - p.ph + a, z = j * p.sw - p.pw + b;
            if (y >= -p.ph && y < h + p.ph && z >= -p.pw && z < w + p.pw) ++padded;
            if (y < 0 || y >= h || z < 0 || z >= w) continue;
            sum += x[(pl * h + y) * w + z];
            ++inside;
          }
        out.push_back(static_cast<double>(sum / static_cast<LD>(include_pad ? padded : inside)));
      }
  return out;
}

V naive_adaptive(const V& x, int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow) {
  V out;
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        auto y0 = static_cast<int64_t>(std::floor(static_cast<double>(i * h) / oh));
        auto y1 = static_cast<int64_t>(std::ceil(static_cast<double>((i + 1) * h) / oh));
        auto z0 = static_cast<int64_t>(std::floor(static_cast<double>(j * w) / ow));
        auto z1 = static_cast<int64_t>(std::ceil(static_cast<double>((j + 1) * w) / ow));
        LD sum = 0;
        for (int64_t y = y0; y < y1; ++y)
          for (int64_t z = z0; z < z1; ++z) sum += x[(pl * h + y) * w + z];
        out.push_back(static_cast<double>(sum / static_cast<LD>((y1 - y0) * (z1 - z0))));
      }
  return out;
}

// Per row of `cols`: two-pass mean and biased variance.
V naive_layer_norm(const V& x, int64_t cols, const V& w, const V& b, double eps) {
  V out(x.size());
  for (size_t r = 0; r * cols < x.size(); ++r) {
    LD mean = 0, var = 0;
    for (int64_t j = 0; j < cols; ++j) mean += x[r * cols + j];
    mean /= cols;
    for (int64_t j = 0; j < cols; ++j) var += (x[r * cols + j] - mean) * (x[r * cols + j] - mean);
    var /= cols;
    for (int64_t j = 0; j < cols; ++j) {
      LD y = (x[r * cols + j] - mean) / std::sqrt(var + eps);
      out[r * cols + j] = static_cast<double>(y * (w.empty() ? 1 : w[j]) + (b.empty() ? 0 : b[j]));
    }
  }
  return out;
}

V naive_rms_norm(const V& x, int64_t cols, const V& w, double eps) {
  V out(x.size());
  for (size_t r = 0; r * cols < x.size(); ++r) {
    LD ms = 0;
    for (int64_t j = 0; j < cols; ++j) ms += static_cast<LD>(x[r * cols + j]) * x[r * cols + j];
    ms /= cols;
    for (int64_t j = 0; j < cols; ++j)
      out[r * cols + j] = static_cast<double>(x[r * cols + j] / std::sqrt(ms + eps) * (w.empty() ? 1 : w[j]));
  }
  return out;
}

struct NaiveBN {
  V out, rm, rv;
};
// x in [N, C, S] order.
NaiveBN naive_batch_norm(const V& x, int64_t n, int64_t c, int64_t s, V rm, V rv, const V& w, const V& b, bool training,
                         double momentum, double eps) {
  NaiveBN r{V(x.size()), rm, rv};
  for (int64_t ch = 0; ch < c; ++ch) {
    LD mean = rm[ch], var = rv[ch];
    if (training) {
      LD sum = 0, sq = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t k = 0; k < s; ++k) sum += x[(i * c + ch) * s + k];
      mean = sum / (n * s);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t k = 0; k < s; ++k) sq += (x[(i * c + ch) * s + k] - mean) * (x[(i * c + ch) * s + k] - mean);
      var = sq / (n * s);
      r.rm[ch] = static_cast<double>((1 - momentum) * rm[ch] + momentum * mean);
      r.rv[ch] = static_cast<double>((1 - momentum) * rv[ch] + momentum * sq / (n * s - 1));
    }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < s; ++k) {
        LD y = (x[(i * c + ch) * s + k] - mean) / std::sqrt(var + eps);
        r.out[(i * c + ch) * s + k] = static_cast<double>(y * (w.empty() ? 1 : w[ch]) + (b.empty() ? 0 : b[ch]));
      }
  }
  return r;
}

Tensor from(const V& v, const Shape& shape, DType dt = kF64) { return tensor(v, shape, {.dtype = kF64}).to(dt); }
// A channels-last (NHWC memory) view with NCHW shape: non-contiguous in every dim.
Tensor channels_last(const Tensor& x) { return x.permute({0, 2, 3, 1}).contiguous().permute({0, 3, 1, 2}); }

}  // namespace

// ------------------------------------------------------------------ pooling

TEST_CASE("max_pool2d matches PyTorch (values and indices) with padding, dilation and ceil_mode") {
  auto fx = ember::testing::fixtures("nn");
  Tensor x = fx.at("pool.x");
  for (const char* name : {"k3s2p1", "dil_ceil", "default_stride_ceil", "mixed", "k1"}) {
    auto pr = fx.at(std::string("max_pool2d.") + name + ".params").to_vector<int64_t>();
    std::array<int64_t, 2> k{pr[0], pr[1]}, s{pr[2], pr[3]}, p{pr[4], pr[5]}, d{pr[6], pr[7]};
    for (DType dt : kFloat) {
      CAPTURE(name);
      CAPTURE(dt);
      std::string key = std::string("max_pool2d.") + name + "." + dname(dt);
      auto [out, idx] = max_pool2d_with_indices(x.to(dt), k, s, p, d, pr[8] != 0);
      CHECK(out.dtype() == dt);
      CHECK(idx.dtype() == kI64);
      CHECK(equal(out, fx.at(key + ".out")));
      CHECK(equal(idx, fx.at(key + ".idx")));
      CHECK(equal(max_pool2d(x.to(dt), k, s, p, d, pr[8] != 0), out));
      // A channels-last (non-contiguous) input gives the same result.
      auto [out_cl, idx_cl] = max_pool2d_with_indices(channels_last(x.to(dt)), k, s, p, d, pr[8] != 0);
      CHECK(equal(out_cl, out));
      CHECK(equal(idx_cl, idx));
    }
  }
  auto [out, idx] = max_pool2d_with_indices(fx.at("max_pool2d.int.x"), {3, 2}, {2, 2}, {1, 1}, {1, 1}, true);
  CHECK(out.dtype() == kI64);
  CHECK(equal(out, fx.at("max_pool2d.int.out")));
  CHECK(equal(idx, fx.at("max_pool2d.int.idx")));
}

TEST_CASE("max_pool2d agrees with a naive loop on random, strided, unbatched and large inputs") {
  manual_seed(1);
  const std::vector<Win> wins = {{3, 3, 1, 1, 1, 1, 1, 1, false},
                                 {2, 3, 2, 2, 1, 1, 2, 2, true},
                                 {5, 2, 3, 1, 2, 0, 1, 3, true},
                                 {3, 3, 3, 3, 0, 1, 1, 1, true},
                                 // unpadded windows inside the input: the row-vectorised path
                                 {2, 2, 2, 2, 0, 0, 1, 1, false},
                                 {3, 2, 1, 2, 0, 0, 2, 1, false},
                                 {2, 2, 2, 2, 0, 0, 1, 1, true}};  // ceil: the last row overhangs
  for (const Win& p : wins) {
    for (DType dt : {kF32, kF64}) {
      Tensor x = randn({2, 3, 9, 8}, {.dtype = dt});
      auto ref = naive_max_pool(x.to_vector<double>(), 6, 9, 8, p);
      auto [out, idx] = max_pool2d_with_indices(x, {p.kh, p.kw}, {p.sh, p.sw}, {p.ph, p.pw}, {p.dh, p.dw}, p.ceil);
      CHECK(out.to_vector<double>() == ref.out);
      CHECK(idx.to_vector<int64_t>() == ref.idx);
      // Transposed H/W: pooling the transpose with swapped parameters is the transpose of the result.
      Tensor xt = x.transpose(2, 3);
      auto [out_t, idx_t] = max_pool2d_with_indices(xt, {p.kw, p.kh}, {p.sw, p.sh}, {p.pw, p.ph}, {p.dw, p.dh}, p.ceil);
      CHECK(equal(out_t, out.transpose(2, 3)));
      // Unbatched [C, H, W] gives plane results of the batched call.
      Tensor out3 = max_pool2d(x.select(0, 1), {p.kh, p.kw}, {p.sh, p.sw}, {p.ph, p.pw}, {p.dh, p.dw}, p.ceil);
      CHECK(out3.dim() == 3);
      CHECK(equal(out3, out.select(0, 1)));
    }
  }
  // Integer inputs: max commutes with the exact conversion from small integers.
  Tensor xi = (randn({2, 3, 7, 6}) * 20.0).abs().to(kI32);
  for (DType dt : {kI32, kU8, kI64}) {
    CAPTURE(dt);
    auto [oi, ii] = max_pool2d_with_indices(xi.to(dt), {3, 2}, {2, 1}, {1, 1}, {1, 2}, true);
    auto [of, ifl] = max_pool2d_with_indices(xi.to(kF64), {3, 2}, {2, 1}, {1, 1}, {1, 2}, true);
    CHECK(oi.dtype() == dt);
    CHECK(equal(oi, of));
    CHECK(equal(ii, ifl));
    auto [ou, iu] = max_pool2d_with_indices(xi.to(dt), {2, 2});  // unpadded: many ties among small integers
    auto [ofu, ifu] = max_pool2d_with_indices(xi.to(kF64), {2, 2});
    CHECK(equal(ou, ofu));
    CHECK(equal(iu, ifu));
  }
  // Large enough to run in parallel chunks.
  Tensor big = randn({2, 8, 48, 40});
  Win p{3, 3, 2, 2, 1, 1, 1, 1, true};
  auto ref = naive_max_pool(big.to_vector<double>(), 16, 48, 40, p);
  auto [out, idx] = max_pool2d_with_indices(big, {3, 3}, {2, 2}, {1, 1}, {1, 1}, true);
  CHECK(out.to_vector<double>() == ref.out);
  CHECK(idx.to_vector<int64_t>() == ref.idx);
}

TEST_CASE("max_pool2d: NaN wins, ties keep the first position, stride defaults to the kernel") {
  const double nan = std::nan("");
  Tensor x = from({1, nan, nan, 4, 5, 6, nan, 7, 2, 7, 0, 7}, {1, 1, 2, 6});
  auto [out, idx] = max_pool2d_with_indices(x, {2, 3});
  CHECK(out.shape() == Shape{1, 1, 1, 2});
  auto o = out.to_vector<double>();
  CHECK(std::isnan(o[0]));
  CHECK(o[1] == 7);
  CHECK(idx.to_vector<int64_t>() == std::vector<int64_t>{6, 9});  // the last NaN; the first 7
  // All windows hold -inf: the value is -inf at the first in-bounds position.
  const double inf = std::numeric_limits<double>::infinity();
  auto [o2, i2] = max_pool2d_with_indices(from({-inf, -inf, -inf, -inf}, {1, 2, 2}), {2, 2}, {1, 1}, {1, 1});
  CHECK(o2.shape() == Shape{1, 3, 3});
  CHECK(i2.to_vector<int64_t>() == std::vector<int64_t>{0, 0, 1, 0, 0, 1, 2, 2, 3});
}

TEST_CASE("avg_pool2d matches PyTorch with count_include_pad and ceil_mode") {
  auto fx = ember::testing::fixtures("nn");
  Tensor x = fx.at("pool.x");
  for (const char* name : {"k3s2p1_incl", "k3s2p1_excl", "ceil_incl", "ceil_excl", "rect_ceil", "default_stride"}) {
    auto pr = fx.at(std::string("avg_pool2d.") + name + ".params").to_vector<int64_t>();
    for (DType dt : kFloat) {
      CAPTURE(name);
      CAPTURE(dt);
      Tensor got = avg_pool2d(x.to(dt), {pr[0], pr[1]}, {pr[2], pr[3]}, {pr[4], pr[5]}, pr[6] != 0, pr[7] != 0);
      CHECK(got.dtype() == dt);
      Tensor expect = fx.at(std::string("avg_pool2d.") + name + "." + dname(dt) + ".out");
      CHECK(allclose(got, expect, tol(dt), tol(dt)));
      Tensor got_cl =
          avg_pool2d(channels_last(x.to(dt)), {pr[0], pr[1]}, {pr[2], pr[3]}, {pr[4], pr[5]}, pr[6] != 0, pr[7] != 0);
      CHECK(allclose(got_cl, got, tol(dt), tol(dt)));
    }
  }
}

TEST_CASE("avg_pool2d agrees with a naive loop, including unbatched and large inputs") {
  manual_seed(2);
  const std::vector<Win> wins = {
      {3, 3, 2, 2, 1, 1, 1, 1, true}, {2, 4, 1, 3, 1, 2, 1, 1, true}, {4, 4, 3, 2, 2, 1, 1, 1, false}};
  for (const Win& p : wins) {
    for (bool incl : {true, false}) {
      Tensor x = randn({3, 10, 11}, {.dtype = kF64});  // unbatched
      V ref = naive_avg_pool(x.to_vector<double>(), 3, 10, 11, p, incl);
      Tensor got = avg_pool2d(x, {p.kh, p.kw}, {p.sh, p.sw}, {p.ph, p.pw}, p.ceil, incl);
      CHECK(got.dim() == 3);
      CHECK(allclose(got, from(ref, got.shape()), 1e-12, 1e-12));
    }
  }
  Tensor big = randn({4, 6, 40, 36});
  Win p{3, 2, 2, 2, 1, 1, 1, 1, true};
  V ref = naive_avg_pool(big.to_vector<double>(), 24, 40, 36, p, false);
  Tensor got = avg_pool2d(big.transpose(0, 1).contiguous().transpose(0, 1), {3, 2}, {2, 2}, {1, 1}, true, false);
  CHECK(allclose(got, from(ref, got.shape()), 1e-5, 1e-6));
}

TEST_CASE("adaptive_avg_pool2d matches PyTorch and a naive loop for non-divisible sizes") {
  auto fx = ember::testing::fixtures("nn");
  Tensor x = fx.at("adaptive.x");
  for (const char* name : {"3x4", "5x5", "1x1", "7x9", "10x4"}) {
    auto pr = fx.at(std::string("adaptive_avg_pool2d.") + name + ".params").to_vector<int64_t>();
    for (DType dt : kFloat) {
      CAPTURE(name);
      CAPTURE(dt);
      Tensor got = adaptive_avg_pool2d(x.to(dt), {pr[0], pr[1]});
      CHECK(allclose(got, fx.at(std::string("adaptive_avg_pool2d.") + name + "." + dname(dt) + ".out"), tol(dt),
                     tol(dt)));
    }
    V ref = naive_adaptive(x.to_vector<double>(), 6, 7, 9, pr[0], pr[1]);
    Tensor got = adaptive_avg_pool2d(channels_last(x.to(kF64)).select(0, 0), {pr[0], pr[1]});
    CHECK(allclose(got, from(V(ref.begin(), ref.begin() + 3 * pr[0] * pr[1]), got.shape()), 1e-12, 1e-12));
  }
  manual_seed(3);
  Tensor big = randn({3, 16, 37, 29});
  V ref = naive_adaptive(big.to_vector<double>(), 48, 37, 29, 6, 5);
  Tensor got = adaptive_avg_pool2d(big, {6, 5});
  CHECK(allclose(got, from(ref, got.shape()), 1e-5, 1e-6));
}

TEST_CASE("pooling: zero-size batches and channels give empty outputs") {
  Tensor x = zeros({0, 3, 6, 6});
  CHECK(max_pool2d(x, {2, 2}).shape() == Shape{0, 3, 3, 3});
  auto [o, i] = max_pool2d_with_indices(zeros({2, 0, 6, 6}), {3, 3}, {1, 1});
  CHECK(o.shape() == Shape{2, 0, 4, 4});
  CHECK(i.shape() == Shape{2, 0, 4, 4});
  CHECK(avg_pool2d(x, {2, 2}).shape() == Shape{0, 3, 3, 3});
  CHECK(adaptive_avg_pool2d(x, {4, 5}).shape() == Shape{0, 3, 4, 5});
  CHECK(adaptive_avg_pool2d(ones({1, 2, 3, 3}), {0, 2}).shape() == Shape{1, 2, 0, 2});
}

TEST_CASE("pooling errors name the op and the problem") {
  Tensor x = randn({1, 2, 5, 5});
  check_throws_mentioning<ShapeError>([&] { max_pool2d(randn({5, 5}), {2, 2}); }, "[max_pool2d]");
  check_throws_mentioning<ShapeError>([&] { avg_pool2d(randn({1, 1, 1, 2, 2}), {2, 2}); }, "[avg_pool2d]");
  check_throws_mentioning<ShapeError>([&] { max_pool2d(zeros({1, 2, 0, 5}), {1, 1}); }, "height and width");
  check_throws_mentioning<ValueError>([&] { max_pool2d(x, {0, 2}); }, "kernel size");
  check_throws_mentioning<ValueError>([&] { max_pool2d(x, {2, 2}, {-1, 1}); }, "stride");
  check_throws_mentioning<ValueError>([&] { max_pool2d(x, {2, 2}, {1, 1}, {0, 0}, {0, 1}); }, "dilation");
  check_throws_mentioning<ValueError>([&] { max_pool2d(x, {3, 3}, {1, 1}, {2, 1}); }, "half of the kernel");
  check_throws_mentioning<ValueError>([&] { avg_pool2d(x, {3, 2}, {1, 1}, {1, 2}); }, "half of the kernel");
  check_throws_mentioning<ValueError>([&] { avg_pool2d(x, {3, 2}, {1, 1}, {-1, 0}); }, "non-negative");
  check_throws_mentioning<ShapeError>([&] { max_pool2d(randn({1, 1, 1, 1}), {2, 2}); }, "too small");
  check_throws_mentioning<ShapeError>([&] { max_pool2d(x, {3, 3}, {1, 1}, {0, 0}, {3, 3}); }, "too small");
  check_throws_mentioning<DTypeError>([&] { max_pool2d(ones({1, 4, 4}, {.dtype = kBool}), {2, 2}); }, "bool");
  check_throws_mentioning<DTypeError>([&] { avg_pool2d(ones({1, 4, 4}, {.dtype = kI64}), {2, 2}); }, "floating");
  check_throws_mentioning<DTypeError>(
      [&] {
        adaptive_avg_pool2d(ones({1, 4, 4}, {.dtype = kI32}), {2, 2});
      },
      "[adaptive_avg_pool2d]");
  check_throws_mentioning<ValueError>([&] { adaptive_avg_pool2d(x, {-1, 2}); }, "non-negative");
}

// ------------------------------------------------------------------ normalisation

TEST_CASE("layer_norm matches PyTorch over one and two trailing dims, with and without affine") {
  auto fx = ember::testing::fixtures("nn");
  Tensor x = fx.at("norm.x");
  for (const char* name : {"d1_affine", "d2_affine", "d1_weight", "d2_plain", "d1_bias"}) {
    auto pr = fx.at(std::string("layer_norm.") + name + ".params").to_vector<double>();
    const int nd = static_cast<int>(pr[0]), aff = static_cast<int>(pr[1]);
    Shape ns = nd == 1 ? Shape{6} : Shape{5, 6};
    Tensor w = fx.at(nd == 1 ? "norm.w1" : "norm.w2"), b = fx.at(nd == 1 ? "norm.b1" : "norm.b2");
    for (DType dt : kFloat) {
      CAPTURE(name);
      CAPTURE(dt);
      Tensor wd = aff == 1 || aff == 2 ? w.to(dt) : Tensor(), bd = aff >= 2 ? b.to(dt) : Tensor();
      Tensor got = layer_norm(x.to(dt), ns, wd, bd, pr[2]);
      CHECK(got.dtype() == dt);
      CHECK(allclose(got, fx.at(std::string("layer_norm.") + name + "." + dname(dt) + ".out"), tol(dt), tol(dt)));
      // Non-contiguous input: the transposed copy transposed back.
      Tensor xt = x.to(dt).transpose(0, 2).contiguous().transpose(0, 2);
      CHECK(!xt.is_contiguous());
      CHECK(equal(layer_norm(xt, ns, wd, bd, pr[2]), got));
    }
  }
  for (DType dt : {kF16, kBF16}) {  // f32 parameters beside a low-precision input, as PyTorch allows
    Tensor got = layer_norm(x.to(dt), {6}, fx.at("norm.w1"), fx.at("norm.b1"));
    CHECK(got.dtype() == dt);
    CHECK(allclose(got, fx.at(std::string("layer_norm.mixed.") + dname(dt) + ".out"), tol(dt), tol(dt)));
  }
}

TEST_CASE("layer_norm agrees with a naive two-pass loop, large mean, many rows") {
  manual_seed(4);
  Tensor x = randn({300, 257}, {.dtype = kF64}) * 0.01 + 1000.0;  // variance tiny against the mean
  Tensor w = randn({257}, {.dtype = kF64}), b = randn({257}, {.dtype = kF64});
  V ref = naive_layer_norm(x.to_vector<double>(), 257, w.to_vector<double>(), b.to_vector<double>(), 1e-5);
  CHECK(allclose(layer_norm(x, {257}, w, b), from(ref, x.shape()), 1e-8, 1e-8));
  Tensor xf = x.to(kF32);
  V reff = naive_layer_norm(xf.to_vector<double>(), 257, {}, {}, 1e-5);
  CHECK(allclose(layer_norm(xf, {257}), from(reff, x.shape()), 1e-3, 1e-3));
  // Zero rows and zero-size normalised dims give empty outputs.
  CHECK(layer_norm(zeros({0, 4}), {4}).shape() == Shape{0, 4});
  CHECK(layer_norm(zeros({3, 0}), {0}).shape() == Shape{3, 0});
  // A constant row normalises to zero (plus bias).
  CHECK(equal(layer_norm(full({2, 5}, 7.0, {.dtype = kF64}), {5}, Tensor(), ones({5}, {.dtype = kF64})),
              ones({2, 5}, {.dtype = kF64})));
}

TEST_CASE("rms_norm matches PyTorch, default eps is the computation type's machine epsilon") {
  auto fx = ember::testing::fixtures("nn");
  Tensor x = fx.at("rms.x");
  for (const char* name : {"d1_weight_default_eps", "d2_plain", "d1_plain_default_eps"}) {
    auto pr = fx.at(std::string("rms_norm.") + name + ".params").to_vector<double>();
    const int nd = static_cast<int>(pr[0]);
    Shape ns = nd == 1 ? Shape{6} : Shape{5, 6};
    Tensor w = pr[1] != 0 ? fx.at(nd == 1 ? "norm.w1" : "norm.w2") : Tensor();
    std::optional<double> eps = pr[2] < 0 ? std::nullopt : std::optional<double>(pr[2]);
    for (DType dt : kFloat) {
      CAPTURE(name);
      CAPTURE(dt);
      Tensor got = rms_norm(x.to(dt), ns, w.defined() ? w.to(dt) : w, eps);
      CHECK(got.dtype() == dt);
      // PyTorch rounds x * rsqrt(...) to f16/bf16 before the weight multiply; Ember rounds once.
      double t = w.defined() ? 2 * tol(dt) : tol(dt);
      CHECK(allclose(got, fx.at(std::string("rms_norm.") + name + "." + dname(dt) + ".out"), t, t));
      CHECK(equal(rms_norm(x.to(dt).transpose(0, 1).contiguous().transpose(0, 1), ns, w.defined() ? w.to(dt) : w, eps),
                  got));
    }
  }
  manual_seed(5);
  Tensor xr = randn({64, 33}, {.dtype = kF64});
  Tensor w = randn({33});  // an f32 weight beside an f64 input is accepted, as PyTorch
  V ref = naive_rms_norm(xr.to_vector<double>(), 33, w.to_vector<double>(), std::numeric_limits<double>::epsilon());
  CHECK(allclose(rms_norm(xr, {33}, w), from(ref, xr.shape()), 1e-12, 1e-12));
  // With tiny inputs the default eps decides the result: f32 epsilon for f16 input, not f16's own.
  Tensor tiny = full({1, 4}, 1e-3, {.dtype = kF16});
  double v = rms_norm(tiny, {4}).to_vector<double>()[0];
  CHECK(v == doctest::Approx(0.9453).epsilon(2e-3));
}

TEST_CASE("batch_norm training and eval match PyTorch, running stats updated in place") {
  auto fx = ember::testing::fixtures("nn");
  for (const char* key : {"x4", "x2"}) {
    Tensor x = fx.at(std::string("bn.") + key);
    std::string base = std::string("batch_norm.") + key;
    Tensor rm0 = fx.at(std::string("bn.") + key + ".rm0"), rv0 = fx.at(std::string("bn.") + key + ".rv0");
    Tensor w = fx.at(std::string("bn.") + key + ".w"), b = fx.at(std::string("bn.") + key + ".b");
    for (DType dt : kFloat) {
      for (int affine : {0, 1}) {
        CAPTURE(key);
        CAPTURE(dt);
        CAPTURE(affine);
        Tensor wd = affine ? w.to(dt) : Tensor(), bd = affine ? b.to(dt) : Tensor();
        std::string k = base + ".train" + std::to_string(affine) + "." + dname(dt);
        Tensor rm = rm0.to(dt, true), rv = rv0.to(dt, true);
        Tensor got = batch_norm(x.to(dt), rm, rv, wd, bd, true, 0.2, 1e-5);
        CHECK(got.dtype() == dt);
        CHECK(allclose(got, fx.at(k + ".out"), tol(dt), tol(dt)));
        CHECK(allclose(rm, fx.at(k + ".rm"), tol(dt), tol(dt)));
        CHECK(allclose(rv, fx.at(k + ".rv"), tol(dt), tol(dt)));
        std::string ke = base + ".eval" + std::to_string(affine) + "." + dname(dt);
        Tensor rme = rm0.to(dt, true), rve = rv0.to(dt, true);
        Tensor ev = batch_norm(x.to(dt), rme, rve, wd, bd, false, 0.1, 1e-3);
        CHECK(allclose(ev, fx.at(ke + ".out"), tol(dt), tol(dt)));
        CHECK(equal(rme, rm0.to(dt)));  // eval leaves the running stats alone
        CHECK(equal(rve, rv0.to(dt)));
      }
    }
    // bf16 input with f32 running stats and parameters.
    Tensor rm = rm0.clone(), rv = rv0.clone();
    Tensor got = batch_norm(x.to(kBF16), rm, rv, w, b, true, 0.1, 1e-5);
    CHECK(got.dtype() == kBF16);
    CHECK(allclose(got, fx.at(base + ".mixed.out"), tol(kBF16), tol(kBF16)));
    CHECK(allclose(rm, fx.at(base + ".mixed.rm"), 1e-5, 1e-6));
    CHECK(allclose(rv, fx.at(base + ".mixed.rv"), 1e-5, 1e-6));
  }
}

TEST_CASE("batch_norm agrees with a naive loop on strided input and strided running stats") {
  manual_seed(6);
  const int64_t n = 7, c = 5, h = 4, wd = 3;
  Tensor x = channels_last(randn({n, c, h, wd}, {.dtype = kF64}) * 3.0 + 2.0);
  Tensor stats = randn({2, c}, {.dtype = kF64});
  Tensor rm = stats.select(0, 0), rv = stats.select(0, 1).abs() + 0.5;
  Tensor rv_buf = zeros({c, 2}, {.dtype = kF64});
  Tensor rv_view = rv_buf.select(1, 1);  // stride 2
  rv_view.copy_(rv);
  Tensor w = randn({c}, {.dtype = kF64}), b = randn({c}, {.dtype = kF64});
  NaiveBN ref = naive_batch_norm(x.contiguous().to_vector<double>(), n, c, h * wd, rm.to_vector<double>(),
                                 rv.to_vector<double>(), w.to_vector<double>(), b.to_vector<double>(), true, 0.3, 1e-4);
  Tensor got = batch_norm(x, rm, rv_view, w, b, true, 0.3, 1e-4);
  CHECK(allclose(got, from(ref.out, x.shape()), 1e-10, 1e-10));
  CHECK(allclose(rm, from(ref.rm, {c}), 1e-12, 1e-12));
  CHECK(allclose(stats.select(0, 0), from(ref.rm, {c}), 1e-12, 1e-12));  // updated through the view
  CHECK(allclose(rv_buf.select(1, 1), from(ref.rv, {c}), 1e-12, 1e-12));
  CHECK(equal(rv_buf.select(1, 0), zeros({c}, {.dtype = kF64})));
  // Without running stats, training still normalises with batch statistics.
  Tensor plain = batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true);
  NaiveBN ref2 =
      naive_batch_norm(x.contiguous().to_vector<double>(), n, c, h * wd, V(c, 0), V(c, 1), {}, {}, true, 0.1, 1e-5);
  CHECK(allclose(plain, from(ref2.out, x.shape()), 1e-10, 1e-10));
  // Large: 3-d input [N, C, L] through the parallel paths, f32.
  Tensor big = randn({16, 24, 200});
  NaiveBN ref3 = naive_batch_norm(big.to_vector<double>(), 16, 24, 200, V(24, 0), V(24, 1), {}, {}, true, 0.1, 1e-5);
  Tensor rm3 = zeros({24}), rv3 = ones({24});
  CHECK(allclose(batch_norm(big, rm3, rv3, Tensor(), Tensor(), true), from(ref3.out, big.shape()), 1e-4, 1e-5));
  CHECK(allclose(rv3, from(ref3.rv, {24}), 1e-5, 1e-6));
  // An empty batch gives an empty output and leaves the running stats untouched, as PyTorch.
  Tensor rm4 = zeros({3}), rv4 = ones({3});
  CHECK(batch_norm(zeros({0, 3}), rm4, rv4, Tensor(), Tensor(), true).shape() == Shape{0, 3});
  CHECK(equal(rm4, zeros({3})));
  CHECK(equal(rv4, ones({3})));
}

TEST_CASE("normalisation errors name the op and the problem") {
  Tensor x = randn({4, 3});
  check_throws_mentioning<ShapeError>([&] { layer_norm(x, {2}); }, "normalized_shape=[2]");
  check_throws_mentioning<ShapeError>([&] { layer_norm(x, {4, 4, 3}); }, "[layer_norm]");
  check_throws_mentioning<ShapeError>([&] { layer_norm(x, {}); }, "at least one dim");
  check_throws_mentioning<ShapeError>([&] { layer_norm(x, {3}, ones({2})); }, "weight shape must equal");
  check_throws_mentioning<ShapeError>([&] { layer_norm(x, {3}, ones({3}), ones({1, 3})); }, "bias shape");
  check_throws_mentioning<DTypeError>([&] { layer_norm(ones({2, 3}, {.dtype = kI64}), {3}); }, "floating");
  check_throws_mentioning<DTypeError>([&] { layer_norm(x, {3}, ones({3}, {.dtype = kF64})); }, "float64");
  check_throws_mentioning<DTypeError>([&] { layer_norm(x.to(kF16), {3}, ones({3}, {.dtype = kF64})); }, "or float32");
  check_throws_mentioning<ShapeError>([&] { rms_norm(x, {3}, ones({4})); }, "[rms_norm]");
  check_throws_mentioning<ShapeError>([&] { rms_norm(x, {5}); }, "[rms_norm]");
  check_throws_mentioning<DTypeError>([&] { rms_norm(x, {3}, ones({3}, {.dtype = kI32})); }, "weight");
  check_throws_mentioning<DTypeError>([&] { rms_norm(ones({2, 3}, {.dtype = kI32}), {3}); }, "floating");
  Tensor rm = zeros({3}), rv = ones({3});
  check_throws_mentioning<ValueError>([&] { batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), false); },
                                      "evaluation mode");
  check_throws_mentioning<ValueError>([&] { batch_norm(x, rm, Tensor(), Tensor(), Tensor(), true); }, "together");
  check_throws_mentioning<ValueError>(
      [&] {
        batch_norm(randn({1, 3}), rm, rv, Tensor(), Tensor(), true);
      },
      "more than 1 value per channel");
  check_throws_mentioning<ValueError>(
      [&] {
        batch_norm(randn({1, 3, 1}), rm, rv, Tensor(), Tensor(), true);
      },
      "more than 1 value per channel");
  check_throws_mentioning<ShapeError>([&] { batch_norm(x, zeros({4}), rv, Tensor(), Tensor(), true); },
                                      "running_mean should contain 3 elements");
  check_throws_mentioning<ShapeError>([&] { batch_norm(x, rm, rv, ones({2}), Tensor(), true); }, "weight");
  check_throws_mentioning<ShapeError>([&] { batch_norm(randn({4}), rm, rv, Tensor(), Tensor(), true); },
                                      "at least 2 dims");
  check_throws_mentioning<DTypeError>(
      [&] { batch_norm(x, zeros({3}, {.dtype = kF64}), ones({3}, {.dtype = kF64}), Tensor(), Tensor(), true); },
      "running_mean");
  check_throws_mentioning<DTypeError>(
      [&] {
        batch_norm(ones({2, 3}, {.dtype = kI64}), rm, rv, {}, {}, false);
      },
      "floating");
  // Eval with a single value per channel is fine (running statistics are used).
  CHECK(batch_norm(randn({1, 3}), rm, rv, Tensor(), Tensor(), false).shape() == Shape{1, 3});
}
