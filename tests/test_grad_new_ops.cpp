// Issue 16's new ops: elu, selu, hardtanh, relu6, mish, logsigmoid, atan2, fmod, clamp_min/max, tril,
// triu and unbind. Forward and backward against PyTorch (tests/reference/fixtures_api16.py), f64
// gradchecks away from the kinks, clamp's gradient at exactly a bound, and the matching nn layers.
#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "test_util.hpp"

using namespace ember;
namespace F = ember::nn::functional;
using ember::testing::allclose;
using ember::testing::equal;
using ember::testing::gradcheck;
using ember::testing::gradgradcheck;

namespace {

const TensorMap& fx() {
  static const TensorMap m = ember::testing::fixtures("api16");
  return m;
}
Tensor get(const std::string& k) { return fx().at(k); }
Tensor leaf(const Tensor& t) { return t.detach().clone().requires_grad_(); }

using Unary = std::function<Tensor(const Tensor&)>;
struct Row {
  const char* name;
  Unary f;
};
// One row per op: the fixture key and the call that PyTorch's reference made.
const std::vector<Row>& unary_rows() {
  static const std::vector<Row> rows = {
      {"elu", [](const Tensor& x) { return elu(x); }},
      {"elu_alpha", [](const Tensor& x) { return F::elu(x, 0.7); }},
      {"selu", [](const Tensor& x) { return selu(x); }},
      {"hardtanh", [](const Tensor& x) { return hardtanh(x); }},
      {"hardtanh_range", [](const Tensor& x) { return F::hardtanh(x, -0.5, 1.5); }},
      {"relu6", [](const Tensor& x) { return relu6(x); }},
      {"mish", [](const Tensor& x) { return mish(x); }},
      {"logsigmoid", [](const Tensor& x) { return F::logsigmoid(x); }},
      {"clamp_min", [](const Tensor& x) { return clamp_min(x, 0.3); }},
      {"clamp_max", [](const Tensor& x) { return x.clamp_max(0.3); }},
      {"fmod_scalar", [](const Tensor& x) { return x.fmod(1.5); }},
      {"tril", [](const Tensor& x) { return tril(x); }},
      {"tril_k1", [](const Tensor& x) { return x.tril(1); }},
      {"triu", [](const Tensor& x) { return triu(x); }},
      {"triu_km1", [](const Tensor& x) { return x.triu(-1); }},
  };
  return rows;
}

// Standard-normal draws kept off the kinks at 0, +-1, -0.5, 0.3, 1.5, 6 and fmod's jumps.
Tensor smooth_input(uint64_t seed) {
  Generator gen(seed);
  Tensor x = randn({3, 4}, {.dtype = kF64}, &gen) * 2;
  return x.floor() + 0.55 + (x - x.floor()) * 0.2;
}

}  // namespace

TEST_CASE("new ops: forward and backward match PyTorch") {
  Tensor x = get("x"), g = get("g");
  for (const Row& r : unary_rows()) {
    CAPTURE(r.name);
    Tensor xi = leaf(x);
    Tensor out = r.f(xi);
    out.backward(g);
    CHECK(allclose(out, get(std::string(r.name) + ".out"), 1e-12, 1e-12));
    CHECK(allclose(xi.grad(), get(std::string(r.name) + ".grad"), 1e-12, 1e-12));
  }
  for (const char* name : {"atan2", "fmod"}) {
    CAPTURE(name);
    Tensor a = leaf(get("a")), b = leaf(get("b"));
    Tensor out = std::string(name) == "atan2" ? atan2(a, b) : fmod(a, b);
    out.backward(g);
    CHECK(allclose(out, get(std::string(name) + ".out"), 1e-12, 1e-12));
    CHECK(allclose(a.grad(), get(std::string(name) + ".grad_a"), 1e-12, 1e-12));
    CHECK(allclose(b.grad(), get(std::string(name) + ".grad_b"), 1e-12, 1e-12));
  }
}

TEST_CASE("new ops: gradcheck and gradgradcheck in f64") {
  uint64_t seed = 160;
  for (const Row& r : unary_rows()) {
    CAPTURE(r.name);
    auto f = [&](const std::vector<Tensor>& v) { return r.f(v[0]); };
    CHECK(gradcheck(f, {leaf(smooth_input(seed++))}));
    CHECK(gradgradcheck(f, {leaf(smooth_input(seed++))}));
  }
  auto atan2_f = [](const std::vector<Tensor>& v) { return atan2(v[0], v[1]); };
  CHECK(gradcheck(atan2_f, {leaf(smooth_input(seed++)), leaf(smooth_input(seed++))}));
  CHECK(gradgradcheck(atan2_f, {leaf(smooth_input(seed++)), leaf(smooth_input(seed++))}));
  // fmod: a divisor of magnitude >= 1.5 and quotients kept off integers.
  Tensor b = tensor({1.5, -2.5, 3.25}, {.dtype = kF64});
  Tensor a = tensor({0.4, 1.1, -2.0, 5.0, -7.3, 2.2}, {.dtype = kF64}).view(2, 3);
  CHECK(gradcheck([](const std::vector<Tensor>& v) { return fmod(v[0], v[1]); }, {leaf(a), leaf(b)}));
  Tensor c = smooth_input(seed++);
  CHECK(gradcheck([](const std::vector<Tensor>& v) { return clamp_min(v[0], v[1]); }, {leaf(c), leaf(c * 0.5 - 0.1)}));
  CHECK(gradcheck([](const std::vector<Tensor>& v) { return clamp_max(v[0], v[1]); }, {leaf(c), leaf(c * 0.5 - 0.1)}));
  CHECK(gradcheck([](const std::vector<Tensor>& v) { return stack(unbind(v[0], 1), 0) * v[0].t(); },
                  {leaf(smooth_input(seed++))}));
  // unbind is one node: slices left unused get zeros, and second derivatives go through its stack.
  auto some_slices = [](const std::vector<Tensor>& v) {
    std::vector<Tensor> p = unbind(v[0], 0);
    return p[0] * p[2].exp();
  };
  CHECK(gradcheck(some_slices, {leaf(randn({3, 2, 4}, {.dtype = kF64}))}));
  CHECK(gradgradcheck(some_slices, {leaf(randn({3, 2, 4}, {.dtype = kF64}))}));
  // Its gradient is laid out as its input (GPT-2's q, k, v of a permuted view), so the views that made
  // the input take it back without a copy.
  Tensor x = leaf(randn({2, 3, 12}, {.dtype = kF64}));
  Tensor p = (x * 1.0).view({2, 3, 3, 2, 2}).permute({2, 0, 3, 1, 4});
  Shape seen;
  p.register_hook([&](const Tensor& g) {
    seen = g.strides();
    return Tensor();
  });
  std::vector<Tensor> qkv = p.unbind(0);
  (qkv[0] * qkv[1] + qkv[2]).sum().backward();
  CHECK(seen == p.strides());
  // The slices are views: an in-place write through one reaches the base's history.
  Tensor base = leaf(randn({2, 3}, {.dtype = kF64}));
  Tensor y = base * 1.0;
  std::vector<Tensor> rows = unbind(y, 0);
  rows[1].mul_(3.0);
  y.sum().backward();
  CHECK(allclose(base.grad(), tensor(std::vector<double>{1, 1, 1, 3, 3, 3}, {.dtype = kF64}).view(2, 3)));
  CHECK(gradcheck([](const std::vector<Tensor>& v) { return tril(v[0], -1) + triu(v[0], 2); },
                  {leaf(randn({2, 3, 4}, {.dtype = kF64}))}));
}

TEST_CASE("new ops: clamp, clamp_min, clamp_max and hardtanh give gradient 0 at exactly a bound (torch 2.x)") {
  Tensor edge = get("edge");
  auto grad = [&](const Unary& f) {
    Tensor x = leaf(edge);
    f(x).sum().backward();
    return x.grad();
  };
  Tensor want = get("edge.clamp.grad");
  CHECK(want.to_vector<double>() == std::vector<double>{0, 0, 1, 0, 0});
  CHECK(equal(grad([](const Tensor& x) { return x.clamp(1.0, 2.0); }), want));
  CHECK(equal(grad([](const Tensor& x) { return x.clamp_min(1.0); }), get("edge.clamp_min.grad")));
  CHECK(equal(grad([](const Tensor& x) { return x.clamp_max(2.0); }), get("edge.clamp_max.grad")));
  CHECK(equal(grad([](const Tensor& x) { return hardtanh(x, 1.0, 2.0); }), get("edge.hardtanh.grad")));
  Tensor y = leaf(edge);
  y.clone().clamp_(1.0, 2.0).sum().backward();
  CHECK(equal(y.grad(), want));
}

TEST_CASE("new ops: values, dtypes and errors") {
  Tensor ia = tensor({7, -7, 7, -7}, {.dtype = kI64}), ib = tensor({2, 2, -2, -2}, {.dtype = kI64});
  CHECK(fmod(ia, ib).to_vector<int64_t>() == std::vector<int64_t>{1, -1, 1, -1});  // the dividend's sign
  CHECK(remainder(ia, ib).to_vector<int64_t>() == std::vector<int64_t>{1, 1, -1, -1});
  CHECK(fmod(ia, ib).dtype() == kI64);
  CHECK_THROWS_AS(fmod(ia, tensor({0}, {.dtype = kI64})), ValueError);
  CHECK(atan2(tensor({1, 0}, {.dtype = kI64}), tensor({0, 1}, {.dtype = kI64})).dtype() == kF32);
  CHECK(atan2(tensor({1.0f}), tensor({-1.0f})).item<float>() == doctest::Approx(3 * M_PI / 4));
  CHECK_THROWS_AS(hardtanh(tensor({1.0f}), 2.0, 1.0), ValueError);
  CHECK(relu6(tensor({-1.0f, 3.0f, 7.0f})).to_vector<float>() == std::vector<float>{0, 3, 6});
  CHECK(mish(tensor({100.0f})).item<float>() == 100.0f);  // no overflow in softplus
  CHECK(logsigmoid(tensor({-200.0f})).item<float>() == -200.0f);
  Tensor h = tensor({-1.0f, 0.5f}).to(kF16);
  CHECK(elu(h).dtype() == kF16);
  Tensor m = arange(6, kF32).view(2, 3);
  CHECK(tril(m).to_vector<float>() == std::vector<float>{0, 0, 0, 3, 4, 0});
  CHECK(triu(m, 1).to_vector<float>() == std::vector<float>{0, 1, 2, 0, 0, 5});
  CHECK_THROWS_AS(tril(arange(3, kF32)), ShapeError);
  auto parts = m.unbind(1);
  REQUIRE(parts.size() == 3);
  CHECK(parts[2].to_vector<float>() == std::vector<float>{2, 5});
  CHECK(unbind(m).size() == 2);
  CHECK_THROWS_AS(unbind(m, 2), IndexError);
}

TEST_CASE("new ops: nn layers match the functional forms") {
  Tensor x = get("x");
  CHECK(allclose(nn::ELU(0.7)(x), get("elu_alpha.out"), 1e-12, 1e-12));
  CHECK(allclose(nn::SELU()(x), get("selu.out"), 1e-12, 1e-12));
  CHECK(allclose(nn::Hardtanh(-0.5, 1.5)(x), get("hardtanh_range.out"), 1e-12, 1e-12));
  CHECK(allclose(nn::ReLU6()(x), get("relu6.out"), 1e-12, 1e-12));
  CHECK(allclose(nn::Mish()(x), get("mish.out"), 1e-12, 1e-12));
  CHECK(allclose(nn::LogSigmoid()(x), get("logsigmoid.out"), 1e-12, 1e-12));
  nn::Sequential net{nn::Linear(5, 3), nn::ELU(), nn::Hardtanh(-2.0, 2.0)};
  CHECK(net(x.to(kF32)).shape() == Shape{4, 3});
  CHECK(nn::Hardtanh(-0.5, 1.5)->extra_repr() == "min_val=-0.5, max_val=1.5");
}
