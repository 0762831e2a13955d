// Gradient checks for the nn ops (gradcheck, gradgradcheck, PyTorch reference gradients): matrix
// products in all their forms, conv1d/conv2d and their transposes, max/avg/adaptive-avg pooling.
#include <doctest/doctest.h>

#include <array>
#include <functional>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "test_util.hpp"

using namespace ember;
using ember::testing::allclose;
using ember::testing::gradcheck;
using ember::testing::gradgradcheck;
using ember::testing::noncontiguous;

namespace {

using Pair = std::array<int64_t, 2>;

Tensor rnd(const Shape& s) { return randn(s, {.dtype = kF64, .requires_grad = true}); }

// <a, b> summed over every element.
double inner(const Tensor& a, const Tensor& b) { return (a * b).sum().item<double>(); }

// Gradients of <fn(inputs), gy> w.r.t. inputs, by backward.
std::vector<Tensor> grads_of(const testing::GradFn& fn, const std::vector<Tensor>& inputs, const Tensor& gy) {
  return autograd::grad({fn(inputs)}, inputs, {gy});
}

struct ConvCase {
  const char* name;
  Shape x, w;
  Pair stride, padding, dilation;
  int64_t groups;
  bool bias;
};

}  // namespace

// ------------------------------------------------------------------------------------------ matmul

TEST_CASE("grad matmul: every operand rank combination, batch broadcasting, non-contiguous operands") {
  manual_seed(1);
  struct Case {
    Shape a, b;
  };
  const std::vector<Case> cases = {
      {{3}, {3}},
      {{3}, {3, 2}},
      {{2, 3}, {3}},
      {{2, 3}, {3, 4}},
      {{2, 2, 3}, {3, 4}},
      {{2, 2, 3}, {3}},
      {{3}, {2, 3, 4}},
      {{2, 3}, {2, 3, 2}},
      {{2, 3, 4}, {2, 4, 2}},
      {{2, 1, 2, 3}, {3, 3, 2}},
      {{1, 2, 3}, {2, 3, 2}},
      {{2, 2, 1, 3}, {3, 2}},
  };
  auto f = [](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); };
  for (const Case& c : cases) {
    CAPTURE(c.a);
    CAPTURE(c.b);
    Tensor a = rnd(c.a), b = rnd(c.b);
    CHECK(gradcheck(f, {a, b}));
    CHECK(gradcheck(f, {noncontiguous(a), noncontiguous(b)}));
    // Only one operand requiring grad.
    CHECK(gradcheck(f, {a, b.detach()}));
    CHECK(gradcheck(f, {a.detach(), b}));
  }
  // Transposed views (the layout a Linear layer's weight.t() has).
  Tensor a = rnd({3, 4}), w = rnd({5, 4});
  CHECK(gradcheck([](const std::vector<Tensor>& x) { return matmul(x[0], x[1].t()); }, {a, w}));
  CHECK(gradcheck([](const std::vector<Tensor>& x) { return matmul(x[0].t(), x[1]); }, {rnd({4, 3}), rnd({4, 2})}));
  CHECK(gradgradcheck(f, {rnd({2, 2, 3}), rnd({3, 2})}));
  CHECK(gradgradcheck(f, {rnd({3}), rnd({2, 3, 2})}));
  CHECK(gradgradcheck(f, {rnd({3}), rnd({3})}));
}

TEST_CASE("grad matmul: batched-by-unbatched gradient folds the batch and matches the per-sample sum") {
  manual_seed(2);
  Tensor a = rnd({3, 2, 4}), b = rnd({4, 5}), gy = randn({3, 2, 5}, {.dtype = kF64});
  auto g = autograd::grad({matmul(a, b)}, {a, b}, {gy});
  Tensor expect_b = zeros({4, 5}, {.dtype = kF64}), expect_a = zeros({3, 2, 4}, {.dtype = kF64});
  {
    autograd::NoGradGuard no_grad;
    for (int64_t i = 0; i < 3; ++i) {
      expect_b = expect_b + mm(a.select(0, i).t(), gy.select(0, i));
      expect_a.select(0, i).copy_(mm(gy.select(0, i), b.t()));
    }
  }
  CHECK(allclose(g[0], expect_a, 1e-12, 1e-12));
  CHECK(allclose(g[1], expect_b, 1e-12, 1e-12));
  CHECK(g[1].shape() == Shape{4, 5});
}

TEST_CASE("grad matmul, mm, addmm: a weight used as w.t() (as Linear does) gets a contiguous gradient") {
  manual_seed(15);
  Tensor w = rnd({5, 4}), bias = rnd({5});
  for (int k = 0; k < 4; ++k) {  // matmul 2-d, matmul 3-d, mm, addmm
    CAPTURE(k);
    Tensor x = rnd(k == 1 ? Shape{2, 3, 4} : Shape{3, 4});
    Tensor y = k < 2 ? matmul(x, w.t()) : k == 2 ? mm(x, w.t()) : addmm(bias, x, w.t());
    Tensor g = autograd::grad({y.sum()}, {w})[0];
    CHECK(g.is_contiguous());
    CHECK(g.shape() == Shape{5, 4});
  }
  // And a transposed first operand gets a transposed gradient.
  Tensor a = rnd({4, 3});
  Tensor ga = autograd::grad({mm(a.t(), rnd({4, 2})).sum()}, {a})[0];
  CHECK(ga.is_contiguous());
}

TEST_CASE("grad mm, bmm, addmm, baddbmm (beta, alpha, broadcast input), outer, dot") {
  manual_seed(3);
  auto f_mm = [](const std::vector<Tensor>& x) { return mm(x[0], x[1]); };
  auto f_bmm = [](const std::vector<Tensor>& x) { return bmm(x[0], x[1]); };
  auto f_addmm = [](const std::vector<Tensor>& x) { return addmm(x[0], x[1], x[2], 0.5, 2.0); };
  auto f_addmm_default = [](const std::vector<Tensor>& x) { return addmm(x[0], x[1], x[2]); };
  auto f_addmm_beta0 = [](const std::vector<Tensor>& x) { return addmm(x[0], x[1], x[2], 0.0, -1.5); };
  auto f_baddbmm = [](const std::vector<Tensor>& x) { return baddbmm(x[0], x[1], x[2], -0.7, 1.3); };
  auto f_outer = [](const std::vector<Tensor>& x) { return outer(x[0], x[1]); };
  auto f_dot = [](const std::vector<Tensor>& x) { return dot(x[0], x[1]); };

  CHECK(gradcheck(f_mm, {rnd({2, 3}), rnd({3, 4})}));
  CHECK(gradcheck(f_mm, {noncontiguous(rnd({2, 3})), noncontiguous(rnd({3, 4}))}));
  CHECK(gradcheck(f_bmm, {rnd({2, 2, 3}), rnd({2, 3, 2})}));
  CHECK(gradcheck(f_bmm, {noncontiguous(rnd({2, 2, 3})), rnd({2, 2, 3}).transpose(1, 2).detach().requires_grad_()}));
  for (const Shape& in : {Shape{2, 4}, Shape{4}, Shape{2, 1}, Shape{}}) {
    CAPTURE(in);
    CHECK(gradcheck(f_addmm, {rnd(in), rnd({2, 3}), rnd({3, 4})}));
  }
  CHECK(gradcheck(f_addmm_default, {noncontiguous(rnd({2, 4})), noncontiguous(rnd({2, 3})), rnd({3, 4})}));
  CHECK(gradcheck(f_addmm_beta0, {rnd({2, 4}), rnd({2, 3}), rnd({3, 4})}));
  for (const Shape& in : {Shape{2, 2, 4}, Shape{2, 1, 4}, Shape{4}}) {
    CAPTURE(in);
    CHECK(gradcheck(f_baddbmm, {rnd(in), rnd({2, 2, 3}), rnd({2, 3, 4})}));
  }
  CHECK(gradcheck(f_outer, {rnd({3}), noncontiguous(rnd({2}))}));
  CHECK(gradcheck(f_dot, {rnd({4}), noncontiguous(rnd({4}))}));

  CHECK(gradgradcheck(f_mm, {rnd({2, 3}), rnd({3, 2})}));
  CHECK(gradgradcheck(f_bmm, {rnd({2, 2, 2}), rnd({2, 2, 3})}));
  CHECK(gradgradcheck(f_addmm, {rnd({2}), rnd({2, 2}), rnd({2, 2})}));
  CHECK(gradgradcheck(f_baddbmm, {rnd({2, 1, 2}), rnd({2, 2, 2}), rnd({2, 2, 2})}));
  CHECK(gradgradcheck(f_outer, {rnd({2}), rnd({3})}));
  CHECK(gradgradcheck(f_dot, {rnd({3}), rnd({3})}));

  // addmm with beta = 0: the input gets a zero gradient (PyTorch multiplies by beta), not none.
  Tensor in = rnd({2, 4});
  auto g = autograd::grad({addmm(in, rnd({2, 3}), rnd({3, 4}), 0.0, 1.0).sum()}, {in});
  CHECK(allclose(g[0], zeros({2, 4}, {.dtype = kF64})));
}

TEST_CASE("grad matmul in f32: gradients close to the f64 ones") {
  manual_seed(4);
  Tensor a = rnd({2, 3, 4}), b = rnd({4, 5}), gy = randn({2, 3, 5}, {.dtype = kF64});
  auto g64 = autograd::grad({matmul(a, b)}, {a, b}, {gy});
  Tensor a32 = a.detach().to(kF32).requires_grad_(), b32 = b.detach().to(kF32).requires_grad_();
  auto g32 = autograd::grad({matmul(a32, b32)}, {a32, b32}, {gy.to(kF32)});
  CHECK(g32[0].dtype() == kF32);
  CHECK(allclose(g32[0].to(kF64), g64[0], 1e-4, 1e-5));
  CHECK(allclose(g32[1].to(kF64), g64[1], 1e-4, 1e-5));
}

// -------------------------------------------------------------------------------------------- conv

TEST_CASE("grad conv2d: stride, padding, dilation, groups, bias, 1x1, unbatched, non-contiguous") {
  manual_seed(5);
  const std::vector<ConvCase> cases = {
      {"plain", {1, 2, 4, 4}, {3, 2, 2, 2}, {1, 1}, {0, 0}, {1, 1}, 1, true},
      {"groups2_s2_p1_d2", {2, 4, 5, 5}, {4, 2, 3, 3}, {2, 2}, {1, 1}, {2, 2}, 2, true},
      {"asymmetric", {1, 3, 5, 6}, {2, 3, 2, 3}, {2, 1}, {0, 1}, {1, 2}, 1, false},
      {"stride_remainder", {1, 1, 7, 8}, {2, 1, 2, 3}, {3, 2}, {1, 0}, {1, 1}, 1, true},
      {"1x1", {2, 3, 3, 3}, {4, 3, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, true},
      {"1x1_stride2", {1, 2, 4, 3}, {2, 1, 1, 1}, {2, 2}, {0, 0}, {1, 1}, 2, false},
      {"depthwise", {1, 3, 4, 4}, {3, 1, 2, 2}, {1, 1}, {1, 1}, {1, 1}, 3, true},
      {"unbatched", {2, 4, 5}, {3, 2, 2, 2}, {1, 2}, {1, 0}, {1, 1}, 1, true},
  };
  for (const ConvCase& c : cases) {
    CAPTURE(c.name);
    auto f = [&c](const std::vector<Tensor>& x) {
      return conv2d(x[0], x[1], c.bias ? x[2] : Tensor(), c.stride, c.padding, c.dilation, c.groups);
    };
    Tensor x = rnd(c.x), w = rnd(c.w), b = rnd({c.w[0]});
    CHECK(gradcheck(f, {x, w, b}));
  }
  const ConvCase& c = cases[1];
  auto f = [&c](const std::vector<Tensor>& x) {
    return conv2d(x[0], x[1], x[2], c.stride, c.padding, c.dilation, c.groups);
  };
  CHECK(gradcheck(f, {noncontiguous(rnd(c.x)), noncontiguous(rnd(c.w)), noncontiguous(rnd({c.w[0]}))}));
  // Channels-last-like permuted input, and a gradient w.r.t. the input alone.
  CHECK(gradcheck(
      f, {rnd({2, 5, 5, 4}).permute({0, 3, 1, 2}).detach().requires_grad_(), rnd(c.w).detach(), rnd({4}).detach()}));
  auto small = [](const std::vector<Tensor>& x) { return conv2d(x[0], x[1], x[2], {2, 1}, {1, 1}, {1, 2}, 2); };
  CHECK(gradgradcheck(small, {rnd({1, 2, 3, 4}), rnd({2, 1, 2, 2}), rnd({2})}));
}

TEST_CASE("grad conv1d: groups, stride, padding, dilation, unbatched; second derivatives") {
  manual_seed(6);
  auto f = [](const std::vector<Tensor>& x) { return conv1d(x[0], x[1], x[2], 2, 1, 2, 2); };
  CHECK(gradcheck(f, {rnd({2, 4, 7}), rnd({4, 2, 3}), rnd({4})}));
  CHECK(gradcheck(f, {noncontiguous(rnd({2, 4, 7})), noncontiguous(rnd({4, 2, 3})), rnd({4})}));
  auto unbatched = [](const std::vector<Tensor>& x) { return conv1d(x[0], x[1], Tensor(), 1, 0, 1, 1); };
  CHECK(gradcheck(unbatched, {rnd({3, 6}), rnd({2, 3, 2})}));
  CHECK(gradgradcheck(f, {rnd({1, 4, 5}), rnd({2, 2, 2}), rnd({2})}));
}

TEST_CASE("conv_transpose2d is the adjoint of conv2d: <conv2d(x, w), y> == <x, conv_transpose2d(y, w)>") {
  manual_seed(7);
  autograd::NoGradGuard no_grad;
  const std::vector<ConvCase> cases = {
      {"groups2_s2_p1_d2", {2, 4, 7, 6}, {6, 2, 3, 3}, {2, 2}, {1, 1}, {2, 2}, 2, false},
      {"stride_remainder", {1, 3, 8, 9}, {2, 3, 2, 3}, {3, 2}, {1, 0}, {1, 2}, 1, false},
      {"1x1", {2, 3, 3, 3}, {4, 3, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, false},
  };
  for (const ConvCase& c : cases) {
    CAPTURE(c.name);
    Tensor x = randn(c.x, {.dtype = kF64}), w = randn(c.w, {.dtype = kF64});
    Tensor y = conv2d(x, w, {}, c.stride, c.padding, c.dilation, c.groups);
    Tensor v = randn(y.shape(), {.dtype = kF64});
    Pair op{};
    for (int i = 0; i < 2; ++i)
      op[i] =
          c.x[2 + i] - ((y.size(2 + i) - 1) * c.stride[i] - 2 * c.padding[i] + c.dilation[i] * (c.w[2 + i] - 1) + 1);
    Tensor xt = conv_transpose2d(v, w, {}, c.stride, c.padding, op, c.groups, c.dilation);
    CHECK(xt.shape() == x.shape());
    CHECK(std::abs(inner(y, v) - inner(x, xt)) < 1e-10 * (1 + std::abs(inner(y, v))));
  }
}

TEST_CASE("grad conv_transpose2d / conv_transpose1d: output padding, groups, dilation, unbatched") {
  manual_seed(8);
  struct Case {
    const char* name;
    Shape x, w;
    Pair stride, padding, output_padding, dilation;
    int64_t groups;
  };
  const std::vector<Case> cases = {
      {"groups2_s2_p1_op1", {2, 4, 3, 3}, {4, 2, 3, 2}, {2, 2}, {1, 0}, {1, 1}, {1, 1}, 2},
      {"dilation_op_above_stride", {1, 2, 3, 3}, {2, 3, 2, 2}, {1, 1}, {1, 0}, {1, 0}, {2, 1}, 1},
      {"stride3_d2", {1, 1, 2, 3}, {1, 2, 2, 2}, {3, 2}, {0, 1}, {2, 1}, {2, 1}, 1},
      {"1x1", {2, 3, 2, 2}, {3, 2, 1, 1}, {1, 1}, {0, 0}, {0, 0}, {1, 1}, 1},
      {"unbatched", {2, 3, 3}, {2, 2, 2, 2}, {2, 1}, {0, 0}, {0, 0}, {1, 1}, 1},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const int64_t c_out = c.w[1] * c.groups;
    auto f = [&c](const std::vector<Tensor>& x) {
      return conv_transpose2d(x[0], x[1], x[2], c.stride, c.padding, c.output_padding, c.groups, c.dilation);
    };
    CHECK(gradcheck(f, {rnd(c.x), rnd(c.w), rnd({c_out})}));
  }
  const Case& c = cases[0];
  auto f = [&c](const std::vector<Tensor>& x) {
    return conv_transpose2d(x[0], x[1], x[2], c.stride, c.padding, c.output_padding, c.groups, c.dilation);
  };
  CHECK(gradcheck(f, {noncontiguous(rnd(c.x)), noncontiguous(rnd(c.w)), noncontiguous(rnd({4}))}));
  auto small = [](const std::vector<Tensor>& x) {
    return conv_transpose2d(x[0], x[1], x[2], {2, 1}, {1, 0}, {1, 0}, 1, {1, 2});
  };
  CHECK(gradgradcheck(small, {rnd({1, 2, 2, 2}), rnd({2, 1, 2, 2}), rnd({1})}));

  auto f1 = [](const std::vector<Tensor>& x) { return conv_transpose1d(x[0], x[1], x[2], 3, 1, 2, 2, 1); };
  CHECK(gradcheck(f1, {rnd({2, 4, 3}), rnd({4, 1, 3}), rnd({2})}));
  auto f1u = [](const std::vector<Tensor>& x) { return conv_transpose1d(x[0], x[1], Tensor(), 1, 0, 0, 1, 2); };
  CHECK(gradcheck(f1u, {rnd({2, 4}), rnd({2, 3, 2})}));
  CHECK(gradgradcheck(f1u, {rnd({2, 3}), rnd({2, 1, 2})}));
}

TEST_CASE("conv_transpose2d: argument errors, and the f32/f16/bf16 forwards against f64") {
  manual_seed(9);
  Tensor x = randn({1, 4, 3, 3}), w = randn({4, 2, 3, 3});
  CHECK_THROWS_AS(conv_transpose2d(x, w, {}, {2, 2}, {0, 0}, {2, 0}), ValueError);  // op >= stride and dilation
  CHECK_THROWS_AS(conv_transpose2d(x, w, {}, {1, 1}, {0, 0}, {1, 1}), ValueError);
  CHECK_THROWS_AS(conv_transpose2d(x, randn({3, 2, 3, 3})), ShapeError);               // channels
  CHECK_THROWS_AS(conv_transpose2d(x, w, {}, {1, 1}, {0, 0}, {0, 0}, 3), ShapeError);  // 4 % 3
  CHECK_THROWS_AS(conv_transpose2d(x, w, randn({3})), ShapeError);                     // bias size
  CHECK_THROWS_AS(conv_transpose2d(x, w, {}, {1, 1}, {3, 3}), ShapeError);             // output size <= 0
  CHECK_THROWS_AS(conv_transpose2d(x, randn({4, 2, 3})), ShapeError);
  CHECK_THROWS_AS(conv_transpose2d(x.to(kI64), w.to(kI64)), DTypeError);
  CHECK_THROWS_AS(conv_transpose2d(x, w.to(kF64)), DTypeError);
  CHECK_THROWS_AS(conv_transpose1d(randn({4, 3}), randn({4, 2, 2}), {}, 2, 0, 2), ValueError);

  Tensor b = randn({4});
  Tensor ref = conv_transpose2d(x.to(kF64), w.to(kF64), b.to(kF64), {2, 1}, {1, 1}, {1, 0}, 2, {1, 2});
  CHECK(ref.shape() == Shape{1, 4, 6, 5});
  for (DType dt : {kF32, kF16, kBF16}) {
    CAPTURE(dt);
    Tensor out = conv_transpose2d(x.to(dt), w.to(dt), b.to(dt), {2, 1}, {1, 1}, {1, 0}, 2, {1, 2});
    CHECK(out.dtype() == dt);
    const double tol = dt == kF32 ? 1e-5 : dt == kF16 ? 2e-2 : 8e-2;
    CHECK(allclose(out.to(kF64), ref, tol, tol));
  }
}

TEST_CASE("conv2d stride 1 in f32 (the padded-image kernels on AVX2): forward and all gradients close to f64") {
  // Output channels and taps that split into every tile height from 1 to 6 (balanced panels), rows of
  // 16-wide strips and a partial one, dilation, padding wider than the kernel, groups, and one sample.
  struct Case {
    Shape x, w;
    Pair p, d;
    int64_t g;
  };
  manual_seed(11);
  for (const Case& c : std::vector<Case>{{{3, 7, 9, 21}, {13, 7, 3, 3}, {1, 1}, {1, 1}, 1},
                                         {{2, 4, 8, 17}, {10, 2, 3, 2}, {2, 3}, {2, 1}, 2},
                                         {{1, 3, 5, 6}, {1, 3, 1, 3}, {0, 4}, {1, 1}, 1},
                                         {{2, 2, 4, 4}, {34, 2, 5, 5}, {2, 2}, {1, 1}, 1},
                                         {{4, 1, 12, 12}, {2, 1, 1, 1}, {1, 0}, {1, 1}, 1}}) {
    CAPTURE(c.w);
    Tensor x = rnd(c.x), w = rnd(c.w), b = rnd({c.w[0]});
    auto f = [&](const Tensor& x, const Tensor& w, const Tensor& b) { return conv2d(x, w, b, {1, 1}, c.p, c.d, c.g); };
    Tensor y = f(x, w, b), gy = randn(y.shape(), {.dtype = kF64});
    auto g64 = autograd::grad({y}, {x, w, b}, {gy});
    Tensor xl = x.detach().to(kF32).requires_grad_(), wl = w.detach().to(kF32).requires_grad_(),
           bl = b.detach().to(kF32).requires_grad_();
    Tensor yl = f(xl, wl, bl);
    CHECK(allclose(yl.to(kF64), y, 1e-5, 1e-5));
    auto gl = autograd::grad({yl}, {xl, wl, bl}, {gy.to(kF32)});
    for (int i = 0; i < 3; ++i) CHECK(allclose(gl[i].to(kF64), g64[i], 1e-4, 1e-4));
  }
}

TEST_CASE("grad conv2d in f32 and bf16: input, weight and bias gradients close to f64") {
  manual_seed(10);
  Tensor x = rnd({2, 4, 6, 5}), w = rnd({6, 2, 3, 3}), b = rnd({6});
  auto f = [](const Tensor& x, const Tensor& w, const Tensor& b) { return conv2d(x, w, b, {2, 1}, {1, 1}, {1, 2}, 2); };
  Tensor y = f(x, w, b);
  CHECK(y.shape() == Shape{2, 6, 3, 3});
  Tensor gy = randn(y.shape(), {.dtype = kF64});
  auto g64 = autograd::grad({y}, {x, w, b}, {gy});
  for (DType dt : {kF32, kBF16}) {
    CAPTURE(dt);
    Tensor xl = x.detach().to(dt).requires_grad_(), wl = w.detach().to(dt).requires_grad_(),
           bl = b.detach().to(dt).requires_grad_();
    auto gl = autograd::grad({f(xl, wl, bl)}, {xl, wl, bl}, {gy.to(dt)});
    const double tol = dt == kF32 ? 1e-4 : 1e-1;
    for (int i = 0; i < 3; ++i) {
      CHECK(gl[i].dtype() == dt);
      CHECK(allclose(gl[i].to(kF64), g64[i], tol, tol));
    }
  }
}

// -------------------------------------------------------------------------------------------- pool

TEST_CASE("grad max_pool2d: windows, padding, dilation, ceil_mode, unbatched, non-contiguous; with indices") {
  manual_seed(11);
  struct Case {
    const char* name;
    Shape x;
    Pair kernel, stride, padding, dilation;
    bool ceil;
  };
  const std::vector<Case> cases = {
      {"k3s2p1", {1, 2, 5, 5}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, false},
      {"overlap_dil_ceil", {2, 1, 5, 6}, {2, 3}, {1, 2}, {1, 1}, {2, 1}, true},
      {"default_stride_ceil", {1, 2, 5, 5}, {2, 2}, {0, 0}, {0, 0}, {1, 1}, true},
      {"unbatched", {2, 4, 5}, {2, 2}, {1, 2}, {0, 1}, {1, 1}, false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    auto f = [&c](const std::vector<Tensor>& x) {
      return max_pool2d(x[0], c.kernel, c.stride, c.padding, c.dilation, c.ceil);
    };
    CHECK(gradcheck(f, {rnd(c.x)}));
    CHECK(gradcheck(f, {noncontiguous(rnd(c.x))}));
    auto fi = [&c](const std::vector<Tensor>& x) {
      auto [v, i] = max_pool2d_with_indices(x[0], c.kernel, c.stride, c.padding, c.dilation, c.ceil);
      CHECK_FALSE(i.requires_grad());
      return v;
    };
    CHECK(gradcheck(fi, {rnd(c.x)}));
  }
  auto f = [](const std::vector<Tensor>& x) { return max_pool2d(x[0], {2, 2}, {1, 1}); };
  CHECK(gradgradcheck(f, {rnd({1, 2, 3, 3})}));
  // Overlapping windows sharing a maximum: its gradient is the sum over the windows that picked it.
  const TensorOptions f64{.dtype = kF64};
  Tensor x = tensor(std::vector<double>{0, 1, 0, 0, 9, 0, 0, 2, 0}, Shape{1, 1, 3, 3}, f64).requires_grad_();
  max_pool2d(x, {2, 2}, {1, 1}).sum().backward();
  CHECK(allclose(x.grad(), tensor(std::vector<double>{0, 0, 0, 0, 4, 0, 0, 0, 0}, Shape{1, 1, 3, 3}, f64)));
}

TEST_CASE("grad avg_pool2d: count_include_pad, ceil_mode, padding, unbatched, non-contiguous") {
  manual_seed(12);
  struct Case {
    const char* name;
    Shape x;
    Pair kernel, stride, padding;
    bool ceil, include_pad;
  };
  const std::vector<Case> cases = {
      {"k2", {1, 2, 4, 4}, {2, 2}, {0, 0}, {0, 0}, false, true},
      {"k3s2p1_include", {1, 2, 5, 6}, {3, 3}, {2, 2}, {1, 1}, false, true},
      {"k3s2p1_exclude_ceil", {1, 2, 5, 6}, {3, 3}, {2, 2}, {1, 1}, true, false},
      {"rect_ceil_include", {2, 1, 5, 5}, {3, 2}, {2, 3}, {1, 1}, true, true},
      {"unbatched_overlap", {2, 4, 4}, {3, 2}, {1, 1}, {1, 0}, false, false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    auto f = [&c](const std::vector<Tensor>& x) {
      return avg_pool2d(x[0], c.kernel, c.stride, c.padding, c.ceil, c.include_pad);
    };
    CHECK(gradcheck(f, {rnd(c.x)}));
    CHECK(gradcheck(f, {noncontiguous(rnd(c.x))}));
  }
  auto f = [](const std::vector<Tensor>& x) { return avg_pool2d(x[0], {3, 3}, {2, 2}, {1, 1}, true, false); };
  CHECK(gradgradcheck(f, {rnd({1, 1, 4, 5})}));
}

TEST_CASE("grad adaptive_avg_pool2d: shrinking, overlapping bins, global, unbatched, non-contiguous") {
  manual_seed(13);
  struct Case {
    Shape x;
    Pair out;
  };
  const std::vector<Case> cases = {
      {{1, 2, 5, 7}, {2, 3}}, {{2, 1, 3, 4}, {5, 6}}, {{1, 2, 3, 3}, {1, 1}}, {{2, 5, 4}, {3, 2}}};
  for (const Case& c : cases) {
    CAPTURE(c.x);
    auto f = [&c](const std::vector<Tensor>& x) { return adaptive_avg_pool2d(x[0], c.out); };
    CHECK(gradcheck(f, {rnd(c.x)}));
    CHECK(gradcheck(f, {noncontiguous(rnd(c.x))}));
  }
  auto f = [](const std::vector<Tensor>& x) { return adaptive_avg_pool2d(x[0], {2, 3}); };
  CHECK(gradgradcheck(f, {rnd({1, 1, 3, 4})}));
}

TEST_CASE("grad pools in f32, f16 and bf16: close to the f64 gradients") {
  manual_seed(14);
  // Distinct values exact in every dtype (multiples of 1/16 below 8), so the argmax is the same in all.
  Tensor x = ((randperm(252).to(kF64) - 126.0) / 16.0).reshape({2, 3, 6, 7}).requires_grad_();
  const std::vector<std::function<Tensor(const Tensor&)>> pools = {
      [](const Tensor& t) {
        return max_pool2d(t, {3, 2}, {2, 2}, {1, 1});
      },
      [](const Tensor& t) {
        return avg_pool2d(t, {3, 3}, {2, 2}, {1, 1}, true, false);
      },
      [](const Tensor& t) {
        return adaptive_avg_pool2d(t, {4, 3});
      },
  };
  for (size_t k = 0; k < pools.size(); ++k) {
    CAPTURE(k);
    Tensor y = pools[k](x);
    Tensor gy = randn(y.shape(), {.dtype = kF64});
    Tensor g64 = autograd::grad({y}, {x}, {gy})[0];
    for (DType dt : {kF32, kF16, kBF16}) {
      CAPTURE(dt);
      Tensor xl = x.detach().to(dt).requires_grad_();
      Tensor gl = autograd::grad({pools[k](xl)}, {xl}, {gy.to(dt)})[0];
      CHECK(gl.dtype() == dt);
      const double tol = dt == kF32 ? 1e-5 : dt == kF16 ? 1e-2 : 5e-2;
      CHECK(allclose(gl.to(kF64), g64, tol, tol));
    }
  }
}

TEST_CASE("grad conv and pools with empty batches or outputs: zero gradients of the right shapes") {
  manual_seed(16);
  Tensor x = rnd({0, 2, 4, 4}), w = rnd({3, 2, 2, 2}), b = rnd({3});
  auto g = autograd::grad({conv2d(x, w, b).sum()}, {x, w, b});
  CHECK(g[0].shape() == x.shape());
  CHECK(allclose(g[1], zeros({3, 2, 2, 2}, {.dtype = kF64})));
  CHECK(allclose(g[2], zeros({3}, {.dtype = kF64})));
  Tensor wt = rnd({2, 3, 2, 2});
  auto gt = autograd::grad({conv_transpose2d(x, wt).sum()}, {x, wt});
  CHECK(allclose(gt[1], zeros({2, 3, 2, 2}, {.dtype = kF64})));
  Tensor p = rnd({1, 2, 3, 3});
  CHECK(allclose(autograd::grad({adaptive_avg_pool2d(p, {0, 2}).sum()}, {p})[0], zeros({1, 2, 3, 3}, {.dtype = kF64})));
  Tensor e = rnd({0, 2, 4, 4});
  CHECK(autograd::grad({max_pool2d(e, {2, 2}).sum()}, {e})[0].shape() == e.shape());
  CHECK(autograd::grad({avg_pool2d(e, {2, 2}).sum()}, {e})[0].shape() == e.shape());
}

// ---------------------------------------------------------------------------------------- PyTorch

TEST_CASE("grad nn ops against PyTorch: conv, conv_transpose (forward too), matmul, addmm, pools") {
  const TensorMap t = testing::fixtures("grad_nn");
  auto check = [&](const std::string& name, const std::vector<std::string>& inputs, const testing::GradFn& fn) {
    CAPTURE(name);
    std::vector<Tensor> in;
    for (const std::string& k : inputs) in.push_back(t.at(name + "." + k).clone().requires_grad_());
    CHECK(allclose(fn(in), t.at(name + ".out"), 1e-10, 1e-10));
    auto g = grads_of(fn, in, t.at(name + ".gy"));
    for (size_t i = 0; i < inputs.size(); ++i) {
      CAPTURE(inputs[i]);
      CHECK(allclose(g[i], t.at(name + ".g" + inputs[i]), 1e-10, 1e-10));
    }
  };
  check("conv2d", {"x", "w", "b"}, [](const std::vector<Tensor>& x) {
    return conv2d(x[0], x[1], x[2], {2, 2}, {1, 1}, {2, 2}, 2);
  });
  check("conv2d_asym", {"x", "w"}, [](const std::vector<Tensor>& x) {
    return conv2d(x[0], x[1], {}, {3, 2}, {1, 0}, {1, 2}, 1);
  });
  check("conv1d", {"x", "w", "b"}, [](const std::vector<Tensor>& x) { return conv1d(x[0], x[1], x[2], 2, 2, 1, 2); });
  check("conv_transpose2d", {"x", "w", "b"}, [](const std::vector<Tensor>& x) {
    return conv_transpose2d(x[0], x[1], x[2], {2, 1}, {1, 0}, {1, 0}, 2, {1, 2});
  });
  check("conv_transpose2d_dil", {"x", "w"}, [](const std::vector<Tensor>& x) {
    return conv_transpose2d(x[0], x[1], {}, {1, 1}, {1, 1}, {1, 1}, 1, {2, 2});
  });
  check("conv_transpose1d", {"x", "w", "b"},
        [](const std::vector<Tensor>& x) { return conv_transpose1d(x[0], x[1], x[2], 3, 1, 2); });
  auto mat = [](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); };
  check("matmul_bcast", {"a", "b"}, mat);
  check("matmul_mv", {"a", "b"}, mat);
  check("matmul_vm", {"a", "b"}, mat);
  check("addmm", {"c", "a", "b"}, [](const std::vector<Tensor>& x) { return addmm(x[0], x[1], x[2], 0.5, 2.0); });
  check("max_pool2d", {"x"}, [](const std::vector<Tensor>& x) {
    return max_pool2d(x[0], {3, 2}, {2, 3}, {1, 1}, {1, 2}, true);
  });
  check("avg_pool2d", {"x"}, [](const std::vector<Tensor>& x) {
    return avg_pool2d(x[0], {3, 2}, {2, 2}, {1, 1}, true);
  });
  check("avg_pool2d_nopad", {"x"}, [](const std::vector<Tensor>& x) {
    return avg_pool2d(x[0], {3, 3}, {2, 3}, {1, 1}, true, false);
  });
  check("adaptive_avg_pool2d", {"x"}, [](const std::vector<Tensor>& x) { return adaptive_avg_pool2d(x[0], {3, 4}); });
  check("adaptive_avg_pool2d_up", {"x"}, [](const std::vector<Tensor>& x) {
    return adaptive_avg_pool2d(x[0], {5, 11});
  });
}
