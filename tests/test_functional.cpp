// nn::functional forms: PyTorch reference values and gradients (tests/reference/fixtures_functional.py)
// for linear, bilinear, group_norm, scaled_dot_product_attention, pad and normalize; gradcheck and
// gradgradcheck in f64; the thin wrappers' PyTorch conventions; errors for bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "test_util.hpp"

using namespace ember;
namespace F = ember::nn::functional;
using ember::testing::allclose;
using ember::testing::gradcheck;
using ember::testing::gradgradcheck;

namespace {

using Spec = std::map<std::string, std::string>;

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep)) parts.push_back(item);
  return parts;
}

Spec parse_spec(const std::string& s) {
  Spec spec;
  for (const std::string& item : split(s, ';')) {
    auto eq = item.find('=');
    spec[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return spec;
}

double num(const Spec& s, const std::string& k, double dflt) { return s.count(k) ? std::stod(s.at(k)) : dflt; }

// Replays one fixture case with its named arguments.
Tensor call_form(const Spec& s, const std::map<std::string, Tensor>& a) {
  auto arg = [&](const char* k) { return a.count(k) ? a.at(k) : Tensor(); };
  const std::string& fn = s.at("fn");
  if (fn == "linear") return F::linear(arg("x"), arg("w"), arg("b"));
  if (fn == "bilinear") return F::bilinear(arg("x1"), arg("x2"), arg("w"), arg("b"));
  if (fn == "group_norm")
    return F::group_norm(arg("x"), static_cast<int64_t>(num(s, "num_groups", 1)), arg("w"), arg("b"),
                         num(s, "eps", 1e-5));
  if (fn == "sdpa") {
    std::optional<double> scale;
    if (s.count("scale")) scale = num(s, "scale", 0);
    return F::scaled_dot_product_attention(arg("q"), arg("k"), arg("v"), arg("mask"), 0.0, num(s, "is_causal", 0) != 0,
                                           scale);
  }
  if (fn == "pad") {
    std::vector<int64_t> p;
    for (const std::string& v : split(s.at("pad"), ',')) p.push_back(std::stoll(v));
    return F::pad(arg("x"), p, s.at("mode"), num(s, "value", 0.0));
  }
  if (fn == "normalize")
    return F::normalize(arg("x"), num(s, "p", 2), static_cast<int64_t>(num(s, "dim", 1)), num(s, "eps", 1e-12));
  FAIL("unknown form " << fn);
  return {};
}

Tensor rnd(const Shape& s) { return randn(s, {.dtype = kF64, .requires_grad = true}); }

template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

bool has_text(const std::string& s, const std::string& part) {
  INFO(s);
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("functional: PyTorch reference values and gradients") {
  Metadata meta;
  TensorMap fx = load(std::string(EMBER_TEST_DIR) + "/reference/functional.safetensors", &meta);
  REQUIRE(meta.size() >= 30);
  for (const auto& [name_, text_] : meta) {
    // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
    const auto& name = name_;
    const auto& text = text_;
    CAPTURE(name);
    CAPTURE(text);
    const Spec s = parse_spec(text);
    std::map<std::string, Tensor> args;
    std::vector<std::string> diff_names;
    std::vector<Tensor> diff;
    for (const std::string& k : split(s.at("args"), ',')) {
      Tensor v = fx.at(s.at(k)).clone();
      if (v.is_floating_point()) {
        v.requires_grad_();
        diff_names.push_back(k);
        diff.push_back(v);
      }
      args[k] = v;
    }
    Tensor out = call_form(s, args);
    CHECK(allclose(out, fx.at(name + ".out"), 1e-10, 1e-12));
    auto grads = autograd::grad({out}, diff, {fx.at(name + ".gy")}, {}, false, true);
    for (size_t i = 0; i < diff.size(); ++i) {
      CAPTURE(diff_names[i]);
      Tensor want = fx.at(name + ".g" + diff_names[i]);
      Tensor got = grads[i].defined() ? grads[i] : zeros_like(want);
      CHECK(allclose(got, want, 1e-9, 1e-10));
    }
  }
}

TEST_CASE("functional: gradcheck of linear, bilinear, group_norm, pad and normalize") {
  manual_seed(21);
  CHECK(gradcheck([](const std::vector<Tensor>& a) { return F::linear(a[0], a[1], a[2]); },
                  {rnd({2, 2, 3}), rnd({4, 3}), rnd({4})}));
  CHECK(gradcheck([](const std::vector<Tensor>& a) { return F::linear(a[0], a[1]); },
                  {testing::noncontiguous(randn({3, 3}, {.dtype = kF64})), rnd({2, 3})}));
  CHECK(gradcheck([](const std::vector<Tensor>& a) { return F::bilinear(a[0], a[1], a[2], a[3]); },
                  {rnd({2, 3}), rnd({2, 4}), rnd({2, 3, 4}), rnd({2})}));
  CHECK(gradgradcheck([](const std::vector<Tensor>& a) { return F::bilinear(a[0], a[1], a[2]); },
                      {rnd({2, 2}), rnd({2, 3}), rnd({2, 2, 3})}));
  auto gn = [](int64_t g) {
    return [g](const std::vector<Tensor>& a) { return F::group_norm(a[0], g, a[1], a[2], 1e-5); };
  };
  CHECK(gradcheck(gn(2), {rnd({2, 4, 3}), rnd({4}), rnd({4})}));
  CHECK(gradcheck(gn(3), {rnd({1, 3, 2, 2}), rnd({3}), rnd({3})}));
  CHECK(gradcheck([](const std::vector<Tensor>& a) { return F::group_norm(a[0], 1); }, {rnd({2, 2, 3})}));
  CHECK(gradgradcheck(gn(2), {rnd({2, 4, 2}), rnd({4}), rnd({4})}));
  for (const char* mode : {"reflect", "replicate", "circular"}) {
    CAPTURE(mode);
    CHECK(gradcheck(
        [mode](const std::vector<Tensor>& a) {
          return F::pad(a[0], {1, 2, 2, 1}, mode);
        },
        {rnd({1, 1, 3, 4})}));
  }
  CHECK(gradcheck([](const std::vector<Tensor>& a) { return F::normalize(a[0], 2.0, 1); }, {rnd({2, 3, 2})}));
  CHECK(gradcheck([](const std::vector<Tensor>& a) { return F::normalize(a[0], 3.0, -1); }, {rnd({2, 3})}));
}

TEST_CASE("functional: scaled_dot_product_attention gradcheck, gradgradcheck and the explicit formula") {
  manual_seed(22);
  auto sdpa = [](Tensor mask, bool causal, std::optional<double> scale = {}) {
    return [mask, causal, scale](const std::vector<Tensor>& a) {
      return F::scaled_dot_product_attention(a[0], a[1], a[2], mask, 0.0, causal, scale);
    };
  };
  Tensor bmask =
      testing::dev(tensor<bool>({{true, false, true, true}, {true, true, false, false}, {false, false, false, false}}));
  Tensor fmask = testing::dev(randn({1, 3, 4}, {.dtype = kF64}));
  CHECK(gradcheck(sdpa({}, false), {rnd({2, 3, 2}), rnd({2, 4, 2}), rnd({2, 4, 3})}));
  CHECK(gradcheck(sdpa(bmask, false), {rnd({2, 3, 2}), rnd({2, 4, 2}), rnd({2, 4, 3})}));
  CHECK(gradcheck(sdpa(fmask, false, 0.7), {rnd({2, 3, 2}), rnd({2, 4, 2}), rnd({2, 4, 3})}));
  CHECK(gradcheck(sdpa({}, true), {rnd({1, 2, 3, 2}), rnd({2, 1, 4, 2}), rnd({2, 1, 4, 2})}));
  CHECK(gradgradcheck(sdpa(bmask, false), {rnd({1, 3, 2}), rnd({1, 4, 2}), rnd({1, 4, 2})}));
  CHECK(gradgradcheck(sdpa({}, true), {rnd({3, 2}), rnd({3, 2}), rnd({3, 2})}));
  // The float mask takes a gradient too (it is added to the scores).
  Tensor fm = rnd({3, 4});
  CHECK(gradcheck([](const std::vector<Tensor>& a) { return F::scaled_dot_product_attention(a[0], a[1], a[2], a[3]); },
                  {rnd({3, 2}), rnd({4, 2}), rnd({4, 2}), fm}));

  // Against the formula written out, f32, with a boolean causal mask given explicitly.
  Tensor q = randn({2, 2, 5, 4}), k = randn({2, 2, 5, 4}), v = randn({2, 2, 5, 3});
  Tensor causal = arange(5).unsqueeze(1) >= arange(5).unsqueeze(0);
  Tensor scores = matmul(q, k.mT()) / 2.0;
  Tensor want = matmul(softmax(where(causal, scores, -INFINITY), -1), v);
  CHECK(allclose(F::scaled_dot_product_attention(q, k, v, {}, 0.0, true), want, 1e-5, 1e-6));
  CHECK(allclose(F::scaled_dot_product_attention(q, k, v, causal), want, 1e-5, 1e-6));
  // A 0-dim mask broadcasts like any other; a false one masks every row (zeros, as PyTorch).
  CHECK(allclose(F::scaled_dot_product_attention(q, k, v, scalar_tensor(true, {.dtype = kBool})),
                 F::scaled_dot_product_attention(q, k, v), 1e-6, 1e-7));
  CHECK(F::scaled_dot_product_attention(q, k, v, scalar_tensor(false, {.dtype = kBool})).abs().sum().item<float>() ==
        0.0f);
  // Dropout: p = 1 zeroes everything; a fixed generator seed reproduces the result.
  CHECK(F::scaled_dot_product_attention(q, k, v, {}, 1.0).abs().sum().item<float>() == 0.0f);
  Generator g1(3), g2(3);
  CHECK(allclose(F::scaled_dot_product_attention(q, k, v, {}, 0.5, false, {}, &g1),
                 F::scaled_dot_product_attention(q, k, v, {}, 0.5, false, {}, &g2)));
}

TEST_CASE("functional: thin wrappers keep PyTorch's conventions") {
  manual_seed(23);
  Tensor x = randn({2, 3, 6, 6});
  // stride defaults to the kernel (PyTorch's stride=None).
  CHECK(F::max_pool2d(x, {2, 2}).shape() == Shape{2, 3, 3, 3});
  CHECK(allclose(F::avg_pool2d(x, {3, 3}), avg_pool2d(x, {3, 3}, {3, 3})));
  auto [vals, idx] = F::max_pool2d_with_indices(x, {2, 2}, std::array<int64_t, 2>{1, 1});
  CHECK(vals.shape() == Shape{2, 3, 5, 5});
  CHECK(idx.dtype() == kI64);
  CHECK(F::adaptive_avg_pool2d(x, {1, 1}).shape() == Shape{2, 3, 1, 1});
  // linear's 2-D fast path is one addmm on the transposed weight view; N-D input flattens to it.
  Tensor lw = randn({4, 6}, {.requires_grad = true}), lb = randn({4}, {.requires_grad = true});
  Tensor lx = randn({3, 6});
  REQUIRE(F::linear(lx, lw, lb).grad_fn());
  CHECK(std::string(F::linear(lx, lw, lb).grad_fn()->name()) == "addmm");
  CHECK(allclose(F::linear(lx.unsqueeze(0).expand({2, 3, 6}), lw, lb)[1], F::linear(lx, lw, lb)));
  // embedding takes (indices, weight), PyTorch's order; a negative padding_idx counts from the end.
  Tensor w = randn({5, 3}, {.requires_grad = true});
  Tensor ids = tensor<int64_t>({{4, 1}, {4, 0}});
  Tensor e = F::embedding(ids, w, -1);
  CHECK(e.shape() == Shape{2, 2, 3});
  e.sum().backward();
  CHECK(w.grad()[4].abs().sum().item<float>() == 0.0f);
  CHECK(w.grad()[1].sum().item<float>() == 3.0f);
  CHECK(F::one_hot(tensor<int64_t>({2, 0})).shape() == Shape{2, 3});
  // dropout: identity in evaluation, and p must be a probability.
  CHECK(F::dropout(x, 0.5, false).is_same(x));
  CHECK_THROWS_AS(F::dropout(x, 1.5), ValueError);
  // Activations and normalisations forward to the core ops.
  Tensor y = randn({4, 5});
  CHECK(allclose(F::gelu(y, "tanh"), gelu(y, "tanh")));
  CHECK(allclose(F::leaky_relu(y, 0.2), where(y > 0, y, y * 0.2)));
  CHECK(allclose(F::softmax(y, 0).sum({0}), ones({5}), 1e-5, 1e-6));
  CHECK(allclose(F::log_softmax(y, 1).exp().sum({1}), ones({4}), 1e-5, 1e-6));
  CHECK(allclose(F::silu(y), y * F::sigmoid(y), 1e-5, 1e-6));
  CHECK(allclose(F::relu(y), clamp(y, Scalar(0.0))));
  CHECK(allclose(F::tanh(y), tanh(y)));
  CHECK(allclose(F::layer_norm(y, {5}), F::group_norm(y.unsqueeze(-1), 1).squeeze(-1), 1e-5, 1e-5));
  Tensor rm = zeros({3}), rv = ones({3});
  CHECK(allclose(F::batch_norm(x, rm, rv), x / std::sqrt(1 + 1e-5), 1e-5, 1e-6));  // evaluation by default
  CHECK(F::rms_norm(y, {5}).shape() == y.shape());
  CHECK(F::conv2d(x, randn({4, 3, 3, 3}), {}, {1, 1}, {1, 1}).shape() == Shape{2, 4, 6, 6});
  CHECK(F::conv1d(randn({2, 3, 7}), randn({4, 3, 3})).shape() == Shape{2, 4, 5});
  CHECK(F::conv_transpose2d(x, randn({3, 2, 2, 2}), {}, {2, 2}).shape() == Shape{2, 2, 12, 12});
}

TEST_CASE("functional: bad input raises clear errors") {
  Tensor x = randn({2, 3});
  CHECK(has_text(error_of([&] { F::linear(x, randn({4, 5})); }), "[linear] input [2, 3]"));
  CHECK_THROWS_AS(F::linear(x, randn({4, 3}), randn({3})), ShapeError);
  CHECK_THROWS_AS(F::linear(x, randn({4, 3}, {.dtype = kF64})), DTypeError);
  CHECK_THROWS_AS(F::bilinear(x, randn({3, 4}), randn({2, 3, 4})), ShapeError);
  CHECK_THROWS_AS(F::bilinear(x, randn({2, 4}), randn({2, 3, 5})), ShapeError);
  CHECK(has_text(error_of([&] { F::group_norm(randn({2, 6, 3}), 4); }), "divisible by num_groups = 4"));
  CHECK_THROWS_AS(F::group_norm(randn({2, 6, 3}), 3, ones({3})), ShapeError);
  CHECK_THROWS_AS(F::group_norm(randn({6}), 3), ShapeError);
  CHECK_THROWS_AS(F::pad(x, {1, 1}, "mirror"), ValueError);
  CHECK(has_text(error_of([&] { F::pad(randn({1, 2, 3}), {3, 0}, "reflect"); }), "must be below its size 3"));
  CHECK_THROWS_AS(F::pad(randn({1, 2, 3}), {1, 1, 1, 1, 1, 1}, "replicate"), ShapeError);
  Tensor q = randn({2, 3, 4}), k = randn({2, 5, 4}), v = randn({2, 5, 6});
  const char* sdpa = "[scaled_dot_product_attention]";
  CHECK(has_text(error_of([&] {
                   F::scaled_dot_product_attention(q, k, v, ones({3, 5}, {.dtype = kBool}), 0.0, true);
                 }),
                 "is_causal"));
  CHECK(has_text(error_of([&] { F::scaled_dot_product_attention(q, randn({2, 5, 3}), v); }), sdpa));
  CHECK_THROWS_AS(F::scaled_dot_product_attention(q, k, randn({2, 4, 6})), ShapeError);
  CHECK_THROWS_AS(F::scaled_dot_product_attention(q, randn({3, 5, 4}), randn({3, 5, 6})), ShapeError);
  CHECK_THROWS_AS(F::scaled_dot_product_attention(q, k, v, ones({4, 5})), ShapeError);  // L is 3
  CHECK_THROWS_AS(F::scaled_dot_product_attention(q, k, v, ones({3, 5}, {.dtype = kI64})), DTypeError);
  CHECK_THROWS_AS(F::scaled_dot_product_attention(q, k.to(kF64), v), DTypeError);
  CHECK_THROWS_AS(F::scaled_dot_product_attention(q, k, v, {}, 1.5), ValueError);
}
