// Convolutions: PyTorch fixtures for conv1d/conv2d (stride, padding, dilation, groups, bias), a naive-loop
// reference over dtypes and both parallel strategies, unbatched and non-contiguous inputs, zero sizes, errors.
#include <doctest/doctest.h>

#include <array>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace ember;
using ember::testing::allclose;
using ember::testing::tol;

namespace {
using Pair = std::array<int64_t, 2>;

Tensor operand(const Shape& s, DType dt) {
  if (is_floating(dt)) return randn(s).to(dt);
  return randint(-3, 4, s).to(dt);
}

// Direct definition of a 2-d convolution (cross-correlation), in double.
Tensor naive_conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, Pair s, Pair p, Pair d, int64_t groups) {
  const int64_t n = x.shape()[0], c = x.shape()[1], h = x.shape()[2], wd = x.shape()[3];
  const int64_t o = w.shape()[0], cg = w.shape()[1], kh = w.shape()[2], kw = w.shape()[3], og = o / groups;
  const int64_t oh = (h + 2 * p[0] - d[0] * (kh - 1) - 1) / s[0] + 1;
  const int64_t ow = (wd + 2 * p[1] - d[1] * (kw - 1) - 1) / s[1] + 1;
  auto vx = x.contiguous().to_vector<double>(), vw = w.contiguous().to_vector<double>();
  std::vector<double> vb = bias.defined() ? bias.to_vector<double>() : std::vector<double>(size_t(o), 0.0);
  std::vector<double> out(size_t(n * o * oh * ow));
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oc = 0; oc < o; ++oc)
      for (int64_t y = 0; y < oh; ++y)
        for (int64_t z = 0; z < ow; ++z) {
          double acc = vb[oc];
          const int64_t g = oc / og;
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                int64_t iy = y * s[0] - p[0] + i * d[0], ix = z * s[1] - p[1] + j * d[1];
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                acc += vx[((b * c + g * cg + ci) * h + iy) * wd + ix] * vw[((oc * cg + ci) * kh + i) * kw + j];
              }
          out[((b * o + oc) * oh + y) * ow + z] = acc;
        }
  return tensor(out, {n, o, oh, ow}, {.dtype = kF64});
}
}  // namespace

TEST_CASE("conv1d and conv2d match PyTorch with stride, padding, dilation, groups and bias") {
  auto fx = ember::testing::fixtures("linalg");
  // The parameters of fixtures_linalg.py's CONV1D and CONV2D tables, in the same order.
  struct C1 {
    int64_t s, p, d, g;
  };
  std::vector<C1> c1 = {{1, 0, 1, 1}, {2, 1, 1, 2}, {1, 2, 3, 1}, {1, 1, 1, 4}};
  struct C2 {
    Pair s, p, d;
    int64_t g;
  };
  std::vector<C2> c2 = {{{1, 1}, {0, 0}, {1, 1}, 1}, {{2, 1}, {1, 2}, {1, 1}, 1}, {{1, 2}, {2, 1}, {2, 3}, 2},
                        {{2, 2}, {1, 1}, {1, 1}, 6}, {{1, 1}, {0, 0}, {1, 1}, 1}, {{2, 2}, {0, 0}, {1, 1}, 2},
                        {{1, 1}, {1, 1}, {1, 1}, 1}};
  for (DType dt : {kF64, kF32, kF16, kBF16}) {
    CAPTURE(dt);
    auto get = [&](const std::string& k) { return fx.count(k) ? fx.at(k).to(dt) : Tensor(); };
    for (size_t i = 0; i < c1.size(); ++i) {
      const std::string key = "conv1d." + std::to_string(i);
      CAPTURE(key);
      Tensor x = get(key + ".x"), w = get(key + ".w"), b = get(key + ".bias");
      Tensor got = conv1d(x, w, b, c1[i].s, c1[i].p, c1[i].d, c1[i].g);
      CHECK(got.dtype() == dt);
      Tensor expect = fx.at(key + ".out");
      if (dt == kF64) CHECK(allclose(got, expect, 1e-12, 1e-12));
      // Low precision: against the f64 result of the rounded inputs (checked against PyTorch above).
      Tensor ref = conv1d(x.to(kF64), w.to(kF64), b.defined() ? b.to(kF64) : b, c1[i].s, c1[i].p, c1[i].d, c1[i].g);
      CHECK(allclose(got.to(kF64), ref, tol(dt), tol(dt)));
    }
    for (size_t i = 0; i < c2.size(); ++i) {
      const std::string key = "conv2d." + std::to_string(i);
      CAPTURE(key);
      Tensor x = get(key + ".x"), w = get(key + ".w"), b = get(key + ".bias");
      Tensor got = conv2d(x, w, b, c2[i].s, c2[i].p, c2[i].d, c2[i].g);
      CHECK(got.dtype() == dt);
      Tensor expect = fx.at(key + ".out");
      CHECK(got.shape() == expect.shape());
      if (dt == kF64) CHECK(allclose(got, expect, 1e-12, 1e-12));
      Tensor ref = conv2d(x.to(kF64), w.to(kF64), b.defined() ? b.to(kF64) : b, c2[i].s, c2[i].p, c2[i].d, c2[i].g);
      CHECK(allclose(got.to(kF64), ref, tol(dt), tol(dt)));
    }
  }
}

TEST_CASE("conv2d against a naive loop in every dtype, on both parallel strategies") {
  manual_seed(3);
  struct Case {
    const char* name;
    Shape x, w;
    Pair s, p, d;
    int64_t g;
    bool bias;
  };
  std::vector<Case> cases = {
      {"3x3", {2, 3, 6, 7}, {4, 3, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},
      {"strided dilated padded", {2, 4, 9, 8}, {6, 2, 3, 2}, {2, 3}, {2, 1}, {2, 2}, 2, true},
      {"1x1 direct", {3, 5, 4, 6}, {7, 5, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, true},
      {"1x1 grouped direct", {2, 6, 4, 3}, {4, 3, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 2, false},
      {"1x1 padded", {2, 3, 4, 4}, {2, 3, 1, 1}, {1, 1}, {1, 0}, {1, 1}, 1, false},
      {"depthwise", {2, 4, 7, 7}, {8, 1, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 4, true},
      {"stride larger than kernel", {1, 2, 9, 9}, {3, 2, 2, 2}, {4, 3}, {0, 1}, {1, 1}, 1, true},
      {"padding wider than the kernel reach", {1, 1, 3, 3}, {2, 1, 2, 2}, {1, 1}, {3, 2}, {1, 1}, 1, false},
      {"same width, dilated, rows all padding", {1, 2, 3, 6}, {3, 2, 2, 3}, {1, 1}, {5, 2}, {1, 2}, 1, true},
      {"same width, outer taps all padding", {1, 2, 4, 2}, {3, 2, 3, 3}, {1, 1}, {1, 2}, {1, 2}, 1, false},
      {"one sample, parallel im2col", {1, 8, 33, 32}, {5, 8, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},
      {"many samples, batch-parallel", {8, 4, 16, 16}, {6, 4, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},
  };
  for (DType dt : {kF32, kF64, kF16, kBF16, kI64, kI32}) {
    CAPTURE(dt);
    for (auto& c : cases) {
      CAPTURE(c.name);
      Tensor x = operand(c.x, dt), w = operand(c.w, dt);
      Tensor b = c.bias ? operand({c.w[0]}, dt) : Tensor();
      Tensor got = conv2d(x, w, b, c.s, c.p, c.d, c.g);
      CHECK(got.dtype() == dt);
      CHECK(allclose(got.to(kF64), naive_conv2d(x, w, b, c.s, c.p, c.d, c.g), tol(dt), tol(dt)));
    }
  }
}

TEST_CASE("conv accepts unbatched and non-contiguous inputs") {
  manual_seed(4);
  Tensor x = randn({2, 3, 6, 5}), w = randn({4, 3, 3, 2}), b = randn({4});
  Tensor batched = conv2d(x, w, b, {1, 2}, {1, 1});
  Tensor single = conv2d(x[1], w, b, {1, 2}, {1, 1});
  CHECK(single.shape() == Shape{4, 6, 3});
  CHECK(allclose(single, batched[1], 0, 0));
  // Transposed spatial dims, a channel-sliced input and a transposed weight.
  Tensor xt = randn({2, 3, 5, 6}).transpose(2, 3);
  CHECK(allclose(conv2d(xt, w, b), conv2d(xt.contiguous(), w, b), 0, 0));
  Tensor xs = randn({2, 6, 6, 5}).slice(1, 0, {}, 2);
  CHECK(allclose(conv2d(xs, w), naive_conv2d(xs, w, {}, {1, 1}, {0, 0}, {1, 1}, 1).to(kF32), 1e-5, 1e-5));
  Tensor wt = randn({4, 3, 2, 3}).transpose(2, 3);
  CHECK(allclose(conv2d(x, wt), conv2d(x, wt.contiguous()), 0, 0));

  Tensor x1 = randn({2, 3, 10}), w1 = randn({4, 3, 3});
  Tensor one = conv1d(x1, w1, {}, 2, 1, 2);
  CHECK(one.shape() == Shape{2, 4, 4});
  CHECK(allclose(conv1d(x1[0], w1, {}, 2, 1, 2), one[0], 0, 0));
  // conv1d is conv2d over a height of 1
  CHECK(allclose(one, conv2d(x1.unsqueeze(2), w1.unsqueeze(2), {}, {1, 2}, {0, 1}, {1, 2}).squeeze(2), 0, 0));
}

TEST_CASE("conv of zero-size inputs") {
  CHECK(conv2d(zeros({0, 3, 5, 5}), ones({2, 3, 3, 3})).shape() == Shape{0, 2, 3, 3});
  CHECK(conv2d(zeros({2, 3, 5, 5}), ones({0, 3, 3, 3})).shape() == Shape{2, 0, 3, 3});
  // No input channels: every output is the bias (a sum over nothing plus bias).
  Tensor bias = tensor<float>({1.5f, -2.0f});
  Tensor out = conv2d(zeros({2, 0, 5, 5}), ones({2, 0, 3, 3}), bias);
  CHECK(out.shape() == Shape{2, 2, 3, 3});
  CHECK(allclose(out, bias.view({1, 2, 1, 1}).expand({2, 2, 3, 3}).contiguous(), 0, 0));
  CHECK(conv1d(zeros({0, 2, 7}), ones({3, 2, 3})).shape() == Shape{0, 3, 5});
}

TEST_CASE("conv errors name the op and the operands") {
  Tensor x = ones({1, 3, 5, 5}), w = ones({2, 3, 3, 3});
  auto message = [](auto f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "no exception";
  };
  CHECK_THROWS_AS(conv2d(x, ones({2, 3, 3})), ShapeError);
  CHECK_THROWS_AS(conv2d(ones({3, 5}), w), ShapeError);
  CHECK_THROWS_AS(conv2d(ones({1, 1, 3, 5, 5}), w), ShapeError);
  CHECK_THROWS_AS(conv2d(x, ones({2, 2, 3, 3})), ShapeError);
  CHECK(message([&] { conv2d(x, ones({2, 2, 3, 3})); }).find("[conv2d] input [1, 3, 5, 5]") == 0);
  CHECK_THROWS_AS(conv2d(ones({1, 4, 5, 5}), ones({3, 2, 3, 3}), {}, {1, 1}, {0, 0}, {1, 1}, 2), ShapeError);
  CHECK_THROWS_AS(conv2d(ones({1, 3, 5, 5}), ones({4, 1, 3, 3}), {}, {1, 1}, {0, 0}, {1, 1}, 2), ShapeError);
  CHECK_THROWS_AS(conv2d(ones({1, 3, 2, 2}), w), ShapeError);  // kernel larger than the input
  CHECK(message([&] { conv2d(ones({1, 3, 2, 2}), w); }).find("smaller than the dilated kernel") != std::string::npos);
  CHECK_THROWS_AS(conv2d(x, w, {}, {1, 1}, {0, 0}, {3, 3}), ShapeError);  // dilated kernel spans 7 > 5
  CHECK_NOTHROW(conv2d(ones({1, 3, 2, 2}), w, {}, {1, 1}, {1, 1}));       // padding makes it fit
  CHECK_THROWS_AS(conv2d(x, w, {}, {0, 1}), ValueError);
  CHECK_THROWS_AS(conv2d(x, w, {}, {1, 1}, {-1, 0}), ValueError);
  CHECK_THROWS_AS(conv2d(x, w, {}, {1, 1}, {0, 0}, {1, 0}), ValueError);
  CHECK_THROWS_AS(conv2d(x, w, {}, {1, 1}, {0, 0}, {1, 1}, 0), ValueError);
  CHECK_THROWS_AS(conv2d(x, w.to(kF64)), DTypeError);
  CHECK_THROWS_AS(conv2d(x, w, ones({2}, {.dtype = kF64})), DTypeError);
  CHECK_THROWS_AS(conv2d(x, w, ones({3})), ShapeError);
  CHECK_THROWS_AS(conv2d(x.to(kBool), w.to(kBool)), DTypeError);
  CHECK_THROWS_AS(conv1d(ones({1, 3, 5}), ones({2, 3, 3, 3})), ShapeError);
  CHECK_THROWS_AS(conv1d(ones({1, 3, 2}), ones({2, 3, 3})), ShapeError);
  CHECK_THROWS_AS(conv1d(ones({1, 3, 5}), ones({2, 3, 3}), {}, 0), ValueError);
}
