// Elementwise ops: PyTorch reference values, dtypes, broadcasting, strides, promotion, in-place, errors.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "test_util.hpp"

using namespace ember;
using ember::testing::allclose;
using ember::testing::equal;

namespace {
using Unary = std::function<Tensor(const Tensor&)>;
using Binary = std::function<Tensor(const Tensor&, const Tensor&)>;
const double kNaN = std::nan(""), kInf = std::numeric_limits<double>::infinity();
const std::vector<DType> kFloat = {kF32, kF64, kF16, kBF16};

double tol(DType dt) { return dt == kF64 ? 1e-12 : dt == kF32 ? 2e-6 : dt == kF16 ? 2e-3 : 1.6e-2; }
}  // namespace

TEST_CASE("unary ops match PyTorch in every float dtype, contiguous and transposed") {
  auto fx = ember::testing::fixtures("elementwise");
  std::vector<std::pair<std::string, Unary>> rows = {
      {"neg", [](auto& x) { return neg(x); }},
      {"abs", [](auto& x) { return abs(x); }},
      {"sign", [](auto& x) { return sign(x); }},
      {"exp", [](auto& x) { return exp(x); }},
      {"exp2", [](auto& x) { return exp2(x); }},
      {"expm1", [](auto& x) { return expm1(x); }},
      {"sin", [](auto& x) { return sin(x); }},
      {"cos", [](auto& x) { return cos(x); }},
      {"tan", [](auto& x) { return tan(x); }},
      {"tanh", [](auto& x) { return tanh(x); }},
      {"sigmoid", [](auto& x) { return sigmoid(x); }},
      {"relu", [](auto& x) { return relu(x); }},
      {"gelu", [](auto& x) { return gelu(x); }},
      {"gelu_tanh", [](auto& x) { return gelu(x, "tanh"); }},
      {"silu", [](auto& x) { return silu(x); }},
      {"softplus", [](auto& x) { return softplus(x); }},
      {"erf", [](auto& x) { return erf(x); }},
      {"floor", [](auto& x) { return floor(x); }},
      {"ceil", [](auto& x) { return ceil(x); }},
      {"round", [](auto& x) { return round(x); }},
      {"trunc", [](auto& x) { return trunc(x); }},
      {"leaky_relu", [](auto& x) { return leaky_relu(x, 0.2); }},
      {"clamp", [](auto& x) { return clamp(x, -1.0, 2.0); }},
  };
  for (auto& [name_, f] : rows) {
    // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
    const auto& name = name_;
    for (DType dt : kFloat) {
      CAPTURE(name);
      CAPTURE(dt);
      Tensor x = fx.at("x").to(dt);
      Tensor expect = fx.at("unary." + name);
      Tensor got = f(x);
      CHECK(got.dtype() == dt);
      // Reference computed in f64 from the f64 input; low-precision inputs were rounded first.
      Tensor ref = dt == kF64 ? expect : f(x.to(kF64)).to(dt);
      CHECK(allclose(got, ref, tol(dt), tol(dt)));
      if (dt == kF64) CHECK(allclose(got, expect, 1e-12, 1e-12));
      // Transposed (non-contiguous) input gives the transposed result.
      CHECK(allclose(f(x.t()), got.t(), 0, 0));
    }
  }
  std::vector<std::pair<std::string, Unary>> pos_rows = {
      {"log", [](auto& x) { return log(x); }},     {"log2", [](auto& x) { return log2(x); }},
      {"log1p", [](auto& x) { return log1p(x); }}, {"sqrt", [](auto& x) { return sqrt(x); }},
      {"rsqrt", [](auto& x) { return rsqrt(x); }}, {"reciprocal", [](auto& x) { return reciprocal(x); }},
  };
  for (auto& [name_, f] : pos_rows) {
    // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
    const auto& name = name_;
    CAPTURE(name);
    CHECK(allclose(f(fx.at("pos")), fx.at("pos." + name), 1e-12, 1e-12));
    CHECK(allclose(f(fx.at("pos").to(kF32)), fx.at("pos." + name), 2e-6, 1e-6));
  }
}

TEST_CASE("gelu's tanh form in float32 keeps its relative accuracy in the negative tail, forward and backward") {
  // Reference in float64 as x sigmoid(2z), which has no cancellation; 0.5 x (1 + tanh z) in float32 loses
  // the tail's digits (relative error 1e-4 near x = -5, all of them past x = -7).
  Tensor x64 = linspace(-9.0, 12.0, 20001, {.dtype = kF64}).to(kF32).to(kF64);
  Tensor z2 = (x64 + x64.pow(3) * 0.044715) * 1.5957691216057308;
  Tensor s = sigmoid(z2);
  Tensor want = x64 * s;
  Tensor x = x64.to(kF32).requires_grad_();
  Tensor y = gelu(x, "tanh");
  CHECK(allclose(y.to(kF64), want, 1e-5, 0));  // z carries |z| float roundings into exp
  y.backward(ones({20001}));
  Tensor dwant = s + x64 * s * (1.0 - s) * 2.0 * 0.7978845608028654 * (x64 * x64 * 0.134145 + 1.0);
  // Relative accuracy in the tail (x < -3); near the derivative's zero (x = -0.75) its two terms cancel.
  CHECK(allclose(x.grad().to(kF64).narrow(0, 0, 5700), dwant.narrow(0, 0, 5700), 1e-5, 1e-30));
  CHECK(allclose(x.grad().to(kF64), dwant, 1e-5, 1e-6));
  // The double-backward graph (public ops) is the same function.
  Tensor xd = x64.detach().requires_grad_();
  Tensor gd = autograd::grad({gelu(xd, "tanh")}, {xd}, {ones({20001}, {.dtype = kF64})}, true, true)[0];
  REQUIRE(gd.requires_grad());
  CHECK(allclose(gd.detach(), dwant, 1e-9, 1e-30));
  // inf and NaN as the tanh form gives them.
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  // Far in the tail (x (1 + 3 c x^2) overflows float32 from x = -1.2e13) the value and slope are 0.
  Tensor sp = tensor<float>({inf, -inf, nan, 0.0f, -1e13f, -1e19f}).requires_grad_();
  Tensor ys = gelu(sp, "tanh");
  std::vector<float> v = ys.to_vector<float>();
  CHECK(v[0] == inf);
  CHECK(std::isnan(v[1]));
  CHECK(std::isnan(v[2]));
  CHECK(v[3] == 0.0f);
  CHECK(v[4] == 0.0f);
  CHECK(v[5] == 0.0f);
  ys.backward(ones({6}));
  std::vector<float> gv = sp.grad().to_vector<float>();
  CHECK(std::isnan(gv[0]));
  CHECK(std::isnan(gv[1]));
  CHECK(std::isnan(gv[2]));
  CHECK(gv[3] == 0.5f);
  CHECK(gv[4] == 0.0f);
  CHECK(gv[5] == 0.0f);
}

TEST_CASE("low-precision results round like PyTorch") {
  auto fx = ember::testing::fixtures("elementwise");
  CHECK(allclose(exp(fx.at("f16.in")), fx.at("f16.exp"), 1e-3, 0));
  CHECK(allclose(exp(fx.at("bf16.in")), fx.at("bf16.exp"), 8e-3, 0));
}

TEST_CASE("binary ops match PyTorch with broadcasting") {
  auto fx = ember::testing::fixtures("elementwise");
  Tensor x = fx.at("x"), y = fx.at("y");
  std::vector<std::pair<std::string, Binary>> rows = {
      {"add", [](auto& a, auto& b) { return a + b; }},
      {"sub", [](auto& a, auto& b) { return a - b; }},
      {"mul", [](auto& a, auto& b) { return a * b; }},
      {"div", [](auto& a, auto& b) { return a / b; }},
      {"div_floor", [](auto& a, auto& b) { return div(a, b, "floor"); }},
      {"div_trunc", [](auto& a, auto& b) { return div(a, b, "trunc"); }},
      {"remainder", [](auto& a, auto& b) { return remainder(a, b); }},
      {"maximum", [](auto& a, auto& b) { return maximum(a, b); }},
      {"minimum", [](auto& a, auto& b) { return minimum(a, b); }},
      {"lerp", [](auto& a, auto& b) { return lerp(a, b.expand_as(a), 0.3); }},
      {"add_alpha", [](auto& a, auto& b) { return add(a, b, 2.5); }},
  };
  for (auto& [name_, f] : rows) {
    // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
    const auto& name = name_;
    CAPTURE(name);
    CHECK(allclose(f(x, y), fx.at("binary." + name), 1e-12, 1e-12));
    // b broadcast as a column-strided view: same values as contiguous
    CHECK(allclose(f(x.t().contiguous().t(), y), fx.at("binary." + name), 1e-12, 1e-12));
    CHECK(allclose(f(x.to(kF32), y.to(kF32)), fx.at("binary." + name), 1e-5, 1e-5));
  }
  CHECK(allclose(pow(fx.at("pos"), y), fx.at("binary.pow"), 1e-12, 1e-12));
  CHECK(allclose(addcmul(x, x, y, 0.5), fx.at("ternary.addcmul"), 1e-12, 1e-12));
  CHECK(allclose(addcdiv(x, x, fx.at("pos"), 0.5), fx.at("ternary.addcdiv"), 1e-12, 1e-12));
}

TEST_CASE("integer division and remainder follow Python's rules") {
  auto fx = ember::testing::fixtures("elementwise");
  Tensor a = fx.at("int.a"), b = fx.at("int.b");
  CHECK(equal(div(a, b, "floor"), fx.at("int.div_floor")));
  CHECK(equal(div(a, b, "trunc"), fx.at("int.div_trunc")));
  CHECK(equal(remainder(a, b), fx.at("int.remainder")));
  Tensor q = a / b;
  CHECK(q.dtype() == kF32);
  CHECK(allclose(q, fx.at("int.true_div"), 1e-6, 0));
  CHECK(equal(div(a.to(kI32), b.to(kI32), "floor"), fx.at("int.div_floor").to(kI32)));
  CHECK_THROWS_AS(div(a, zeros({6}, {.dtype = kI64}), "floor"), ValueError);
  CHECK_THROWS_AS(remainder(a, zeros({1}, {.dtype = kI64})), ValueError);
  CHECK_THROWS_AS(div(a, b, "round"), ValueError);
}

TEST_CASE("type promotion follows PyTorch") {
  Tensor i32 = ones({2}, {.dtype = kI32}), i64 = ones({2}, {.dtype = kI64}), u8 = ones({2}, {.dtype = kU8});
  Tensor f16 = ones({2}, {.dtype = kF16}), bf16 = ones({2}, {.dtype = kBF16}), f64 = ones({2}, {.dtype = kF64});
  Tensor b = ones({2}, {.dtype = kBool}), f32 = ones({2});
  CHECK((i32 + i64).dtype() == kI64);
  CHECK((u8 + i32).dtype() == kI32);
  CHECK((f16 + bf16).dtype() == kF32);
  CHECK((f16 + f32).dtype() == kF32);
  CHECK((i64 + f16).dtype() == kF16);
  CHECK((b + b).dtype() == kBool);
  CHECK((b + u8).dtype() == kU8);
  // wrapped numbers do not raise the dtype within a category...
  CHECK((f16 * 2.5).dtype() == kF16);
  CHECK((i32 + 1).dtype() == kI32);
  CHECK((u8 * 3).dtype() == kU8);
  // ...but do move it to a higher category, using the default dtype
  CHECK((i32 * 2.5).dtype() == kF32);
  CHECK((b + 1).dtype() == kI64);
  // 0-dim tensors are weaker than dimensioned ones in the same category
  CHECK((f16 + scalar_tensor(1.0, {.dtype = kF64})).dtype() == kF16);
  CHECK((i32 + scalar_tensor(1.5, {.dtype = kF64})).dtype() == kF64);
  CHECK((scalar_tensor(1, {.dtype = kI32}) + scalar_tensor(1.0, {.dtype = kF64})).dtype() == kF64);
  CHECK((f64 < f32).dtype() == kBool);
  CHECK(exp(i64).dtype() == kF32);
  CHECK(abs(i32).dtype() == kI32);
  CHECK((i32 + 1).to_vector<int32_t>()[0] == 2);
  // a number keeps its full precision when the tensor is f64
  CHECK((f64 * 0.1).to_vector<double>()[0] == 0.1);
  CHECK((i64 + (int64_t{1} << 53) + 1).to_vector<int64_t>()[0] == (int64_t{1} << 53) + 2);
}

TEST_CASE("arithmetic values across dtypes") {
  for (DType dt : {kF32, kF64, kF16, kBF16, kI32, kI64, kU8}) {
    CAPTURE(dt);
    Tensor a = arange(0, 12, 1, dt).reshape({3, 4});
    Tensor b = arange(1, 5, 1, dt);
    Tensor s = a + b, p = a * b, m = maximum(a, b.reshape({4}));
    auto va = a.to_vector<double>(), vb = b.to_vector<double>();
    auto vs = s.to_vector<double>(), vp = p.to_vector<double>(), vm = m.to_vector<double>();
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j) {
        double x = va[i * 4 + j], y = vb[j];
        CHECK(vs[i * 4 + j] == x + y);
        CHECK(vp[i * 4 + j] == doctest::Approx(x * y).epsilon(dt == kBF16 ? 1e-2 : 1e-6));
        CHECK(vm[i * 4 + j] == std::max(x, y));
      }
    CHECK(s.dtype() == dt);
    CHECK((a < b).dtype() == kBool);
  }
}

TEST_CASE("comparisons, logical ops and predicates") {
  Tensor a = tensor({1.0, 2.0, 3.0, kNaN});
  Tensor b = tensor({1.0, 3.0, 2.0, kNaN});
  CHECK(equal(a == b, tensor({true, false, false, false})));
  CHECK(equal(a != b, tensor({false, true, true, true})));
  CHECK(equal(a < b, tensor({false, true, false, false})));
  CHECK(equal(a >= b, tensor({true, false, true, false})));
  CHECK(equal(a > 1.5, tensor({false, true, true, false})));
  CHECK(equal(isnan(a), tensor({false, false, false, true})));
  Tensor inf = tensor({1.0, kInf, -kInf, kNaN});
  CHECK(equal(isinf(inf), tensor({false, true, true, false})));
  CHECK(equal(isfinite(inf), tensor({true, false, false, false})));
  CHECK(equal(isfinite(tensor({1, 2})), tensor({true, true})));
  Tensor t = tensor({true, true, false, false}), f = tensor({true, false, true, false});
  CHECK(equal(t & f, tensor({true, false, false, false})));
  CHECK(equal(t | f, tensor({true, true, true, false})));
  CHECK(equal(t ^ f, tensor({false, true, true, false})));
  CHECK(equal(~t, tensor({false, false, true, true})));
  CHECK(equal(logical_and(tensor({0, 2}), tensor({3.0, 0.5})), tensor({false, true})));
  CHECK_THROWS_AS(tensor({1, 2}) & tensor({1, 2}), DTypeError);
  // NaN propagates through maximum/minimum and clamp, as PyTorch
  CHECK(std::isnan(maximum(a, b).to_vector<float>()[3]));
  CHECK(std::isnan(clamp(a, 0.0, 1.0).to_vector<float>()[3]));
}

TEST_CASE("nan_to_num, where, lerp, pow") {
  Tensor x = tensor({kNaN, kInf, -kInf, 2.0});
  auto v = nan_to_num(x).to_vector<float>();
  CHECK(v[0] == 0);
  CHECK(v[1] == std::numeric_limits<float>::max());
  CHECK(v[2] == std::numeric_limits<float>::lowest());
  CHECK(v[3] == 2);
  CHECK(equal(nan_to_num(x, 1.0, 5.0, -5.0), tensor({1.0, 5.0, -5.0, 2.0})));
  CHECK(nan_to_num(x.to(kF16)).to_vector<float>()[1] == 65504.0f);
  Tensor c = tensor({true, false, true});
  CHECK(equal(where(c, tensor({1, 2, 3}), tensor({10, 20, 30})), tensor({1, 20, 3})));
  CHECK(equal(where(c, tensor({1.5, 2.5, 3.5}), 0.0), tensor({1.5, 0.0, 3.5})));
  CHECK(where(c, tensor({1, 2, 3}), 0.5).dtype() == kF32);
  CHECK_THROWS_AS(where(tensor({1.0, 0.0, 1.0}), tensor({1, 2, 3}), 0), DTypeError);
  CHECK(equal(where(tensor({true, false}).reshape({2, 1}), tensor({1, 2}), tensor({7})), tensor({{1, 2}, {7, 7}})));
  CHECK(equal(pow(tensor({2, 3, -2}), 3), tensor({8, 27, -8})));
  CHECK(pow(tensor({2, 3}), 0.5).dtype() == kF32);
  CHECK_THROWS_AS(pow(tensor({2, 3}), -1), ValueError);
  CHECK(allclose(pow(2.0, tensor({0.0, 1.0, 10.0})), tensor({1.0, 2.0, 1024.0})));
  CHECK(equal(pow(tensor({2, 3}), tensor({3, 2})), tensor({8, 9})));
  CHECK(allclose(lerp(tensor({0.0, 10.0}), tensor({10.0, 20.0}), tensor({0.5, 0.25})), tensor({5.0, 12.5})));
}

TEST_CASE("in-place ops write through views and bump the version") {
  Tensor a = zeros({3, 4});
  Tensor row = a.select(0, 1);
  uint32_t v0 = a.impl().storage->version();
  row.add_(tensor({1.0, 2.0, 3.0, 4.0}));
  CHECK(a.impl().storage->version() > v0);
  CHECK(equal(a.sum({0}), tensor({1.0, 2.0, 3.0, 4.0})));
  Tensor col = a.select(1, 2);
  col *= 10.0;
  CHECK(a.to_vector<float>()[6] == 30.0f);
  a.t().add_(ones({4, 3}));
  CHECK(a.to_vector<float>()[0] == 1.0f);
  // overlapping operand: x += x.t() must read the original x
  Tensor x = arange(0, 4, 1, kF32).reshape({2, 2});
  x.add_(x.t());
  CHECK(equal(x, tensor({{0.0, 3.0}, {3.0, 6.0}})));
  Tensor i = tensor({1, 2, 3});
  i += 2;
  CHECK(equal(i, tensor({3, 4, 5})));
  CHECK_THROWS_AS(i += 0.5, DTypeError);                       // float result into an int tensor
  CHECK_THROWS_AS(zeros({3}).add_(ones({2, 3})), ShapeError);  // result would not fit in place
  Tensor s = tensor({-1.0, 4.0});
  s.relu_().sqrt_();
  CHECK(equal(s, tensor({0.0, 2.0})));
  Tensor f16 = ones({3}, {.dtype = kF16});
  f16.mul_(2.5);
  CHECK(f16.dtype() == kF16);
  CHECK(equal(f16, full({3}, 2.5)));
}

TEST_CASE("in-place ops refuse a destination whose elements share memory") {
  Tensor base = zeros({1, 3});
  Tensor e = base.expand({4, 3});  // four rows over one row of memory
  try {
    e.add_(ones({4, 3}));
    FAIL("no error");
  } catch (const ValueError& err) {
    std::string msg = err.what();
    INFO(msg);
    CHECK(msg.rfind("[add_] the destination [4, 3] float32 cpu with strides [0, 1] has elements that share memory",
                    0) == 0);
    CHECK(msg.find("clone()") != std::string::npos);
  }
  CHECK(equal(base, zeros({1, 3})));  // refused before anything was written (was [[4, 4, 4]])
  const std::vector<std::pair<const char*, std::function<void(Tensor&)>>> writers = {
      {"[sub_]",
       [](Tensor& t) {
         t.sub_(ones({4, 3}));
       }},
      {"[mul_]", [](Tensor& t) { t.mul_(2.0); }},
      {"[div_]", [](Tensor& t) { t /= full({3}, 2.0); }},
      {"[add_]", [](Tensor& t) { t += 1; }},
      {"[add_]",
       [](Tensor& t) {
         t.add_(ones({4, 3}, {.dtype = kF64}));
       }},  // promoted: the assign path
      {"[neg_]", [](Tensor& t) { t.neg_(); }},
      {"[exp_]", [](Tensor& t) { t.exp_(); }},
      {"[relu_]", [](Tensor& t) { t.relu_(); }},
      {"[clamp_]", [](Tensor& t) { t.clamp_(0.5, 1.0); }},
      {"[pow_]", [](Tensor& t) { t.pow_(2); }},
      {"[lerp_]",
       [](Tensor& t) {
         t.lerp_(ones({4, 3}), 0.5);
       }},
      {"[addcmul_]",
       [](Tensor& t) {
         t.addcmul_(ones({4, 3}), ones({4, 3}));
       }},
      {"[addcdiv_]",
       [](Tensor& t) {
         t.addcdiv_(ones({4, 3}), ones({4, 3}));
       }},
  };
  for (const auto& [op_, write] : writers) {
    // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
    const auto& op = op_;
    INFO(op);
    Tensor view = base.expand({4, 3});
    CHECK_THROWS_WITH_AS(write(view), doctest::Contains(op), ValueError);
  }
  CHECK(equal(base, zeros({1, 3})));
  Tensor ints = zeros({3, 1}, {.dtype = kI64}).expand({3, 2});
  CHECK_THROWS_AS(ints += 1, ValueError);

  // Under autograd the write goes through autograd::assign, which refuses it too.
  Tensor w = ones({1, 3}, {.dtype = kF64, .requires_grad = true});
  Tensor y = w * 2.0;
  CHECK_THROWS_AS(y.expand({2, 3}).mul_(ones({2, 3}, {.dtype = kF64})), ValueError);

  // Overlap that as_strided makes without a zero stride: windows [0,1], [1,2], [2,3].
  Tensor flat = arange(0, 4, 1, kF32);
  Tensor windows = flat.as_strided({3, 2}, {1, 1});
  CHECK(has_internal_overlap(windows));
  CHECK_THROWS_AS(windows.add_(1.0), ValueError);
  CHECK(equal(flat, arange(0, 4, 1, kF32)));
  CHECK(has_internal_overlap(arange(0, 13, 1, kF32).as_strided({4, 3}, {2, 3})));  // (3,0) and (0,2) meet

  // Views that do not overlap stay writable: transposes, slices, strided slices, narrow, select,
  // a size-1 dim with stride 0, and interleaved strides that never meet.
  Tensor a = zeros({4, 6});
  for (const Tensor& v : {a.t(), a.slice(1, 1, 5), a.slice(1, 0, 6, 2), a.slice(0, 0, 4, 3).slice(1, 1, 6, 2),
                          a.narrow(0, 1, 2), a.select(1, 3), zeros({1, 3}).expand({1, 3}), a.as_strided({2, 2}, {3, 2}),
                          a.as_strided({3, 3}, {2, 3}), a.reshape({-1}).slice(0, 0, 24, 5)}) {
    INFO(v.shape(), " strides ", v.strides());
    CHECK_FALSE(has_internal_overlap(v));
    Tensor view = v;
    CHECK_NOTHROW(view.add_(1.0));
  }
  CHECK(a.sum().item<double>() > 0);

  // fill_ writes one value everywhere, so aliases agree: PyTorch allows it, and so does Ember.
  Tensor filled = zeros({1, 3});
  filled.expand({4, 3}).fill_(5);
  CHECK(equal(filled, full({1, 3}, 5.0)));
  Tensor g = ones({1, 3}, {.requires_grad = true}) * 1.0;
  CHECK_NOTHROW(g.expand({2, 3}).zero_());
}

TEST_CASE("broadcasting shapes, zero-size tensors and errors") {
  Tensor a = ones({2, 1, 3}), b = ones({4, 1});
  CHECK((a + b).shape() == Shape{2, 4, 3});
  Tensor e = zeros({0, 3});
  CHECK((e + ones({3})).shape() == Shape{0, 3});
  CHECK(exp(e).numel() == 0);
  CHECK((scalar_tensor(2.0) * 3.0).dim() == 0);
  try {
    (void)(ones({2, 3}) + ones({4, 5}));
    FAIL("expected ShapeError");
  } catch (const ShapeError& err) {
    CHECK(std::string(err.what()).find("[add] shapes [2, 3] and [4, 5] cannot be broadcast") != std::string::npos);
  }
  CHECK_THROWS_AS(gelu(ones({2}), "fast"), ValueError);
  CHECK_THROWS_AS(neg(ones({2}, {.dtype = kBool})), DTypeError);
  CHECK_THROWS_AS(clamp(ones({2}), std::nullopt, std::nullopt), ValueError);
  CHECK_THROWS_AS(sub(tensor({true}), tensor({false})), DTypeError);
  CHECK_THROWS_AS(Tensor().exp(), ValueError);
}

TEST_CASE("large tensors take the parallel path and agree with the serial one") {
  Tensor x = randn({300, 1000});
  Tensor y = randn({1000});
  Tensor z = x * y + 1.0;
  auto vx = x.to_vector<double>(), vy = y.to_vector<double>(), vz = z.to_vector<double>();
  bool ok = true;
  for (int i = 0; i < 300; ++i)
    for (int j = 0; j < 1000; ++j) {
      double expect = vx[i * 1000 + j] * vy[j] + 1.0;
      ok &= std::abs(vz[i * 1000 + j] - expect) <= 1e-6 * (1 + std::abs(expect));
    }
  CHECK(ok);
  Tensor zt = x.t() * 2.0;  // strided parallel walk
  CHECK(equal(zt.t(), x * 2.0));
}
