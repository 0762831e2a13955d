// Gradient checks for the elementwise ops: every unary, binary and ternary row on contiguous,
// non-contiguous, broadcast and 0-dim inputs, second derivatives, tie rules, and the in-place forms.
#include <doctest/doctest.h>

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

using Unary = std::function<Tensor(const Tensor&)>;
// Maps standard-normal draws into the op's smooth domain (away from poles and kinks).
using Domain = std::function<Tensor(const Tensor&)>;

Tensor any_value(const Tensor& x) { return x; }
Tensor positive(const Tensor& x) { return x.abs() + 0.5; }
Tensor away_from_zero(const Tensor& x) { return where(x >= 0, x + 0.3, x - 0.3); }
Tensor small(const Tensor& x) { return x * 0.4; }  // tan stays far from pi/2
Tensor non_integer(const Tensor& x) { return x.floor() + 0.25 + (x - x.floor()) * 0.5; }

struct UnaryRow {
  const char* name;
  Unary f;
  Domain domain;
};

const std::vector<UnaryRow>& unary_rows() {
  static const std::vector<UnaryRow> rows = {
      {"neg", [](const Tensor& x) { return -x; }, any_value},
      {"abs", [](const Tensor& x) { return abs(x); }, away_from_zero},
      {"sign", [](const Tensor& x) { return sign(x) * 1.0; }, away_from_zero},
      {"exp", [](const Tensor& x) { return exp(x); }, any_value},
      {"exp2", [](const Tensor& x) { return exp2(x); }, any_value},
      {"log", [](const Tensor& x) { return log(x); }, positive},
      {"log2", [](const Tensor& x) { return log2(x); }, positive},
      {"log1p", [](const Tensor& x) { return log1p(x); }, positive},
      {"expm1", [](const Tensor& x) { return expm1(x); }, any_value},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, positive},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, positive},
      {"reciprocal", [](const Tensor& x) { return reciprocal(x); }, away_from_zero},
      {"sin", [](const Tensor& x) { return sin(x); }, any_value},
      {"cos", [](const Tensor& x) { return cos(x); }, any_value},
      {"tan", [](const Tensor& x) { return tan(x); }, small},
      {"tanh", [](const Tensor& x) { return tanh(x); }, any_value},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, any_value},
      {"relu", [](const Tensor& x) { return relu(x); }, away_from_zero},
      {"leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.2); }, away_from_zero},
      {"gelu", [](const Tensor& x) { return gelu(x); }, any_value},
      {"gelu_tanh", [](const Tensor& x) { return gelu(x, "tanh"); }, any_value},
      {"silu", [](const Tensor& x) { return silu(x); }, any_value},
      {"softplus", [](const Tensor& x) { return softplus(x, 2.0, 1.5); }, away_from_zero},
      {"erf", [](const Tensor& x) { return erf(x); }, any_value},
      {"floor", [](const Tensor& x) { return floor(x); }, non_integer},
      {"ceil", [](const Tensor& x) { return ceil(x); }, non_integer},
      {"round", [](const Tensor& x) { return round(x); }, non_integer},
      {"trunc", [](const Tensor& x) { return trunc(x); }, non_integer},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.7); },
       [](const Tensor& x) { return where(abs(x + 0.5) < 0.05, x + 0.1, where(abs(x - 0.7) < 0.05, x + 0.1, x)); }},
      {"clamp_min", [](const Tensor& x) { return clamp(x, 0.1); }, away_from_zero},
      {"nan_to_num", [](const Tensor& x) { return nan_to_num(x); }, any_value},
      {"pow_scalar", [](const Tensor& x) { return pow(x, 3); }, any_value},
      {"pow_negative", [](const Tensor& x) { return pow(x, -1.5); }, positive},
      {"pow_zero", [](const Tensor& x) { return pow(x, 0) + x; }, any_value},
  };
  return rows;
}

Tensor draw(const Shape& s, const Domain& domain) {
  return domain(randn(s, {.dtype = kF64})).detach().requires_grad_();
}

}  // namespace

TEST_CASE("gradcheck: every unary elementwise op on contiguous, non-contiguous and 0-dim inputs") {
  manual_seed(11);
  for (const UnaryRow& row : unary_rows()) {
    CAPTURE(std::string(row.name));
    testing::GradFn f = [&](const std::vector<Tensor>& x) { return row.f(x[0]); };
    Tensor x = draw({2, 3}, row.domain);
    CHECK(gradcheck(f, {x}));
    CHECK(gradcheck(f, {noncontiguous(x)}));
    CHECK(gradcheck(f, {draw({}, row.domain)}));
  }
}

TEST_CASE("gradgradcheck: every unary elementwise op") {
  manual_seed(12);
  for (const UnaryRow& row : unary_rows()) {
    CAPTURE(std::string(row.name));
    testing::GradFn f = [&](const std::vector<Tensor>& x) { return row.f(x[0]); };
    CHECK(gradgradcheck(f, {draw({3}, row.domain)}));
  }
}

namespace {
using Binary = std::function<Tensor(const Tensor&, const Tensor&)>;
struct BinaryRow {
  const char* name;
  Binary f;
  Domain da, db;
};
const std::vector<BinaryRow>& binary_rows() {
  static const std::vector<BinaryRow> rows = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b, 2.5); }, any_value, any_value},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b, 0.5); }, any_value, any_value},
      {"mul", [](const Tensor& a, const Tensor& b) { return a * b; }, any_value, any_value},
      {"div", [](const Tensor& a, const Tensor& b) { return a / b; }, any_value, away_from_zero},
      {"div_floor", [](const Tensor& a, const Tensor& b) { return div(a, b, "floor") + a; }, any_value, positive},
      {"remainder", [](const Tensor& a, const Tensor& b) { return remainder(a, b); },
       [](const Tensor& x) { return x * 0.2 + 0.55; }, [](const Tensor& x) { return x.abs() * 0.1 + 1.3; }},
      {"pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); }, positive, any_value},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }, any_value,
       [](const Tensor& x) { return x + 0.05; }},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }, any_value,
       [](const Tensor& x) { return x + 0.05; }},
      {"lerp_scalar", [](const Tensor& a, const Tensor& b) { return lerp(a, b, 0.3); }, any_value, any_value},
      {"clamp_tensor", [](const Tensor& a, const Tensor& b) { return clamp(a, b - 0.2, b + 0.3); }, any_value,
       [](const Tensor& x) { return x + 0.07; }},
  };
  return rows;
}
}  // namespace

TEST_CASE("gradcheck: binary ops with broadcasting, 0-dim and wrapped-scalar operands, and second derivatives") {
  manual_seed(13);
  const std::vector<std::pair<Shape, Shape>> shapes = {{{2, 3}, {2, 3}}, {{2, 3}, {3}}, {{2, 1}, {1, 3}}, {{}, {2, 2}}};
  for (const BinaryRow& row : binary_rows()) {
    CAPTURE(std::string(row.name));
    testing::GradFn f = [&](const std::vector<Tensor>& x) { return row.f(x[0], x[1]); };
    for (const auto& [sa_, sb_] : shapes) {
      // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
      const auto& sa = sa_;
      const auto& sb = sb_;
      CAPTURE(sa);
      CAPTURE(sb);
      CHECK(gradcheck(f, {draw(sa, row.da), draw(sb, row.db)}));
    }
    Tensor a = draw({3, 2}, row.da), b = draw({3, 2}, row.db);
    CHECK(gradcheck(f, {noncontiguous(a), b}));
    CHECK(gradcheck(f, {a, b.detach()}));  // only one side requires grad
    CHECK(gradgradcheck(f, {draw({2, 2}, row.da), draw({2}, row.db)}));
  }
  // A wrapped C++ scalar on either side.
  Tensor x = draw({2, 3}, positive);
  CHECK(gradcheck([](const std::vector<Tensor>& v) { return 2.5 / v[0] - v[0] * 3.0; }, {x}));
  CHECK(gradcheck([](const std::vector<Tensor>& v) { return pow(2.0, v[0]); }, {x}));
}

TEST_CASE("gradcheck: ternary ops (where, lerp, addcmul, addcdiv) with broadcast operands") {
  manual_seed(14);
  Tensor cond = testing::dev(randn({2, 1}) > 0);
  testing::GradFn w = [&](const std::vector<Tensor>& x) { return where(cond, x[0], x[1]); };
  CHECK(gradcheck(w, {draw({2, 3}, any_value), draw({3}, any_value)}));
  CHECK(gradgradcheck(w, {draw({2, 3}, any_value), draw({2, 3}, any_value)}));
  testing::GradFn l = [](const std::vector<Tensor>& x) { return lerp(x[0], x[1], x[2]); };
  CHECK(gradcheck(l, {draw({2, 3}, any_value), draw({2, 3}, any_value), draw({3}, any_value)}));
  CHECK(gradgradcheck(l, {draw({2}, any_value), draw({2}, any_value), draw({2}, any_value)}));
  testing::GradFn m = [](const std::vector<Tensor>& x) { return addcmul(x[0], x[1], x[2], 0.7); };
  CHECK(gradcheck(m, {draw({3}, any_value), draw({2, 3}, any_value), draw({2, 1}, any_value)}));
  CHECK(gradgradcheck(m, {draw({2}, any_value), draw({2}, any_value), draw({2}, any_value)}));
  testing::GradFn d = [](const std::vector<Tensor>& x) { return addcdiv(x[0], x[1], x[2], -1.5); };
  CHECK(gradcheck(d, {draw({2, 3}, any_value), draw({2, 3}, any_value), draw({3}, away_from_zero)}));
  CHECK(gradgradcheck(d, {draw({2}, any_value), draw({2}, any_value), draw({2}, away_from_zero)}));
}

TEST_CASE("tie and kink rules match PyTorch: maximum/minimum split ties, relu and abs give 0 at 0, clamp 0 at bounds") {
  Tensor a = tensor(std::vector<double>{1, 2, 3}, {3}, {.dtype = kF64}).requires_grad_();
  Tensor b = tensor(std::vector<double>{1, 5, 0}, {3}, {.dtype = kF64}).requires_grad_();
  maximum(a, b).sum().backward();
  CHECK(allclose(a.grad(), tensor(std::vector<double>{0.5, 0, 1}, {3}, {.dtype = kF64})));
  CHECK(allclose(b.grad(), tensor(std::vector<double>{0.5, 1, 0}, {3}, {.dtype = kF64})));
  Tensor z = zeros({2}, {.dtype = kF64, .requires_grad = true});
  (relu(z) + abs(z)).sum().backward();
  CHECK(allclose(z.grad(), zeros({2}, {.dtype = kF64})));
  Tensor c = tensor(std::vector<double>{-1, 0, 0.5, 1, 2}, {5}, {.dtype = kF64}).requires_grad_();
  clamp(c, 0.0, 1.0).sum().backward();  // no gradient at either bound, as torch 2.x's clamp
  CHECK(allclose(c.grad(), tensor(std::vector<double>{0, 0, 1, 0, 0}, {5}, {.dtype = kF64})));
}

TEST_CASE("gradcheck: in-place elementwise ops on non-leaves, including through a view") {
  manual_seed(15);
  testing::GradFn f = [](const std::vector<Tensor>& x) {
    Tensor y = x[0] * 1.5;
    y.exp_();
    y.mul_(x[1]);
    y.add_(x[0], 2.0);
    y.narrow(0, 0, 1).tanh_();
    y.select(1, 1).sub_(x[1].select(1, 0));
    return y;
  };
  CHECK(gradcheck(f, {draw({2, 3}, small), draw({2, 3}, any_value)}));
  CHECK(gradgradcheck(f, {draw({2, 3}, small), draw({2, 3}, any_value)}));
}

TEST_CASE("f32, f16 and bf16 inputs: gradients keep the input dtype and match the f64 gradient") {
  manual_seed(16);
  Tensor x64 = randn({4, 5}, {.dtype = kF64});
  Tensor ref = x64.detach().requires_grad_();
  (gelu(ref) * sigmoid(ref)).sum().backward();
  for (DType dt : {kF32, kF16, kBF16}) {
    CAPTURE(dt);
    Tensor x = x64.to(dt).requires_grad_();
    (gelu(x) * sigmoid(x)).sum().backward();
    CHECK(x.grad().dtype() == dt);
    double tol = dt == kF32 ? 1e-5 : dt == kF16 ? 1e-2 : 5e-2;
    CHECK(allclose(x.grad().to(kF64), ref.grad(), tol, tol));
  }
}
