// nn::functional losses: PyTorch reference values and gradients for every loss over its options
// (tests/reference/fixtures_loss.py), gradcheck / gradgradcheck in f64, the fused cross entropy
// against its composition, and the errors for bad input.
#include <doctest/doctest.h>

#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/ops/loss.hpp"
#include "gradcheck.hpp"
#include "test_util.hpp"

using namespace ember;
namespace F = ember::nn::functional;
using ember::testing::allclose;
using ember::testing::gradcheck;
using ember::testing::gradgradcheck;

namespace {

using Spec = std::map<std::string, std::string>;

// "fn=cross_entropy;reduction=mean;..." -> {fn: cross_entropy, reduction: mean, ...}
Spec parse_spec(const std::string& s) {
  Spec spec;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ';')) {
    auto eq = item.find('=');
    spec[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return spec;
}

double num(const Spec& s, const std::string& k, double dflt) { return s.count(k) ? std::stod(s.at(k)) : dflt; }

// Replays one fixture case: the loss of (input, target) with the options of its spec.
Tensor call_loss(const Spec& s, const Tensor& input, const Tensor& target, const TensorMap& fx) {
  const std::string& fn = s.at("fn");
  const std::string r = s.at("reduction");
  Tensor w = s.count("weight") ? fx.at(s.at("weight")) : Tensor();
  Tensor pw = s.count("pos_weight") ? fx.at(s.at("pos_weight")) : Tensor();
  const auto ignore = static_cast<int64_t>(num(s, "ignore_index", -100));
  if (fn == "mse_loss") return F::mse_loss(input, target, r);
  if (fn == "l1_loss") return F::l1_loss(input, target, r);
  if (fn == "smooth_l1_loss") return F::smooth_l1_loss(input, target, r, num(s, "beta", 1.0));
  if (fn == "huber_loss") return F::huber_loss(input, target, r, num(s, "delta", 1.0));
  if (fn == "cross_entropy") return F::cross_entropy(input, target, w, ignore, r, num(s, "label_smoothing", 0.0));
  if (fn == "nll_loss") return F::nll_loss(input, target, w, ignore, r);
  if (fn == "binary_cross_entropy") return F::binary_cross_entropy(input, target, w, r);
  if (fn == "binary_cross_entropy_with_logits") return F::binary_cross_entropy_with_logits(input, target, w, r, pw);
  if (fn == "kl_div") return F::kl_div(input, target, r, num(s, "log_target", 0) != 0);
  FAIL("unknown loss " << fn);
  return {};
}

Tensor rnd(const Shape& s) { return randn(s, {.dtype = kF64, .requires_grad = true}); }

// Probabilities in (0.05, 0.95) as a leaf requiring grad.
Tensor probs(const Shape& s) { return (rand(s, {.dtype = kF64}) * 0.9 + 0.05).requires_grad_(); }

}  // namespace

TEST_CASE("loss: PyTorch reference values and input gradients for every loss and option") {
  Metadata meta;
  TensorMap fx = load(std::string(EMBER_TEST_DIR) + "/reference/loss.safetensors", &meta);
  REQUIRE(meta.size() > 150);
  int checked = 0;
  for (const auto& [name_, text_] : meta) {
    // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
    const auto& name = name_;
    const auto& text = text_;
    CAPTURE(name);
    CAPTURE(text);
    const Spec s = parse_spec(text);
    Tensor input = fx.at(s.at("input")).clone().requires_grad_();
    Tensor target = fx.at(s.at("target")).clone();
    const bool grad_target = fx.count(name + ".grad_target") > 0;
    if (grad_target) target.requires_grad_();
    const bool f32 = input.dtype() == kF32;
    const double rtol = f32 ? 1e-5 : 1e-10, atol = f32 ? 1e-6 : 1e-12;
    Tensor out = call_loss(s, input, target, fx);
    CHECK(out.dtype() == input.dtype());
    CHECK(allclose(out, fx.at(name + ".out"), rtol, atol));
    std::vector<Tensor> wrt{input};
    if (grad_target) wrt.push_back(target);
    auto grads = autograd::grad({out}, wrt, {fx.at(name + ".gy")});
    CHECK(allclose(grads[0], fx.at(name + ".grad_input"), rtol, atol));
    if (grad_target) CHECK(allclose(grads[1], fx.at(name + ".grad_target"), rtol, atol));
    ++checked;
  }
  CHECK(checked == static_cast<int>(meta.size()));
}

TEST_CASE("loss: gradcheck of the regression losses w.r.t. input and target") {
  manual_seed(11);
  for (const char* r : {"none", "mean", "sum"}) {
    CAPTURE(r);
    CHECK(gradcheck([r](const std::vector<Tensor>& a) { return F::mse_loss(a[0], a[1], r); },
                    {rnd({3, 4}), rnd({3, 4})}));
    CHECK(
        gradcheck([r](const std::vector<Tensor>& a) { return F::l1_loss(a[0], a[1], r); }, {rnd({3, 4}), rnd({3, 4})}));
    for (double beta : {1.0, 0.3})
      CHECK(gradcheck([r, beta](const std::vector<Tensor>& a) { return F::smooth_l1_loss(a[0], a[1], r, beta); },
                      {rnd({3, 4}), rnd({3, 4})}));
    for (double delta : {1.0, 0.4})
      CHECK(gradcheck([r, delta](const std::vector<Tensor>& a) { return F::huber_loss(a[0], a[1], r, delta); },
                      {rnd({3, 4}), rnd({3, 4})}));
  }
  CHECK(gradgradcheck([](const std::vector<Tensor>& a) { return F::huber_loss(a[0], a[1], "sum", 0.5); },
                      {rnd({2, 3}), rnd({2, 3})}));
}

TEST_CASE("loss: gradcheck and gradgradcheck of cross_entropy (fused kernel) and nll_loss") {
  manual_seed(12);
  Tensor w = testing::dev(rand({5}, {.dtype = kF64}) + 0.3);
  Tensor t = testing::dev(tensor<int64_t>({4, 0, -100, 2}));
  Tensor tk = testing::dev(tensor<int64_t>({{1, 4, 2}, {-100, 0, 3}}));
  for (const char* r : {"none", "mean", "sum"})
    for (double ls : {0.0, 0.2})
      for (bool weighted : {false, true}) {
        CAPTURE(r);
        CAPTURE(ls);
        CAPTURE(weighted);
        Tensor wt = weighted ? w : Tensor();
        auto ce = [&](const Tensor& tg) {
          return [&, tg](const std::vector<Tensor>& a) { return F::cross_entropy(a[0], tg, wt, -100, r, ls); };
        };
        CHECK(gradcheck(ce(t), {rnd({4, 5})}));
        CHECK(gradcheck(ce(tk), {rnd({2, 5, 3})}));
        CHECK(gradgradcheck(ce(t), {rnd({4, 5})}));
        // Class probabilities (the target takes gradients too).
        CHECK(gradcheck([&](const std::vector<Tensor>& a) { return F::cross_entropy(a[0], a[1], wt, -100, r, ls); },
                        {rnd({3, 5}), probs({3, 5})}));
        CHECK(
            gradcheck([&](const std::vector<Tensor>& a) { return F::nll_loss(a[0], t, wt, -100, r); }, {rnd({4, 5})}));
      }
  // The fused node is the one recorded (not the composition), and its double backward is exact.
  Tensor x = testing::dev(rnd({4, 5}));
  Tensor loss = F::cross_entropy(x, t);
  REQUIRE(loss.grad_fn());
  CHECK(std::string(loss.grad_fn()->name()) == "cross_entropy");
  CHECK(gradgradcheck([&](const std::vector<Tensor>& a) { return F::cross_entropy(a[0], tk, w, -100, "mean", 0.1); },
                      {rnd({2, 5, 3})}));
  CHECK(gradgradcheck([&](const std::vector<Tensor>& a) { return F::cross_entropy(a[0], a[1], {}, -100, "mean", 0.1); },
                      {rnd({3, 4}), probs({3, 4})}));
}

TEST_CASE("loss: gradcheck of the binary cross entropies and kl_div") {
  manual_seed(13);
  Tensor w = testing::dev(rand({4}, {.dtype = kF64}) + 0.5), pw = testing::dev(rand({4}, {.dtype = kF64}) * 2 + 0.2);
  for (const char* r : {"none", "mean", "sum"}) {
    CAPTURE(r);
    for (bool weighted : {false, true}) {
      Tensor wt = weighted ? w : Tensor();
      CHECK(gradcheck([&](const std::vector<Tensor>& a) { return F::binary_cross_entropy(a[0], a[1], wt, r); },
                      {probs({3, 4}), probs({3, 4})}));
      for (bool pos : {false, true})
        CHECK(gradcheck(
            [&, pos](const std::vector<Tensor>& a) {
              return F::binary_cross_entropy_with_logits(a[0], a[1], wt, r, pos ? pw : Tensor());
            },
            {rnd({3, 4}), probs({3, 4})}));
    }
  }
  for (const char* r : {"none", "mean", "sum", "batchmean"})
    for (bool log_target : {false, true}) {
      CAPTURE(r);
      CAPTURE(log_target);
      CHECK(gradcheck(
          [&](const std::vector<Tensor>& a) { return F::kl_div(a[0], log_target ? a[1].log() : a[1], r, log_target); },
          {rnd({3, 4}), probs({3, 4})}));
    }
  CHECK(gradgradcheck(
      [&](const std::vector<Tensor>& a) { return F::binary_cross_entropy(a[0], a[1], w.narrow(0, 0, 3), "mean"); },
      {probs({2, 3}), probs({2, 3})}));
  CHECK(gradgradcheck(
      [&](const std::vector<Tensor>& a) { return F::binary_cross_entropy_with_logits(a[0], a[1], w, "sum", pw); },
      {rnd({2, 4}), probs({2, 4})}));
}

TEST_CASE("loss: fused cross_entropy equals its composition (f32 and f64, every option)") {
  manual_seed(14);
  for (DType dt : {kF32, kF64}) {
    const double tol = dt == kF32 ? 2e-5 : 1e-12;
    Tensor w = rand({7}, {.dtype = dt}) + 0.1;
    Tensor x = randn({2, 7, 3, 2}, {.dtype = dt}) * 4;
    Tensor t = randint(0, 7, {2, 3, 2});
    t.view({-1}).narrow(0, 1, 2).fill_(-1);
    // A transposed (non-contiguous) view of a [N, C] input too.
    Tensor x2 = randn({7, 9}, {.dtype = dt}).t(), t2 = randint(0, 7, {9});
    for (const char* r : {"none", "mean", "sum"})
      for (double ls : {0.0, 0.3})
        for (bool weighted : {false, true}) {
          CAPTURE(dt);
          CAPTURE(r);
          CAPTURE(ls);
          CAPTURE(weighted);
          Tensor wt = weighted ? w : Tensor();
          for (auto [xi, ti] : {std::pair{x, t}, std::pair{x2, t2}}) {
            Tensor a = xi.detach().requires_grad_(), b = xi.detach().requires_grad_();
            Tensor fused = F::cross_entropy(a, ti, wt, -1, r, ls);
            Tensor comp = F::cross_entropy_composite(b, ti, wt, -1, r, ls);
            CHECK(allclose(fused, comp, tol, tol));
            Tensor gy = randn(fused.shape(), {.dtype = dt});
            fused.backward(gy);
            comp.backward(gy);
            CHECK(allclose(a.grad(), b.grad(), tol, tol));
          }
        }
  }
  // Every target ignored: NaN mean, zero gradients, on both paths (PyTorch's results).
  for (bool fused : {true, false}) {
    CAPTURE(fused);
    Tensor x = randn({3, 4}, {.dtype = kF64, .requires_grad = true});
    Tensor t = full({3}, -100, {.dtype = kI64});
    for (double ls : {0.0, 0.2}) {
      Tensor l =
          fused ? F::cross_entropy(x, t, {}, -100, "mean", ls) : F::cross_entropy_composite(x, t, {}, -100, "mean", ls);
      CHECK(std::isnan(l.item<double>()));
      CHECK(autograd::grad({l}, {x})[0].abs().sum().item<double>() == 0.0);
    }
  }
  // Half precision takes the composite path.
  Tensor xh = randn({4, 6}), th = tensor<int64_t>({5, 0, -100, 2});
  CHECK(allclose(F::cross_entropy(xh.to(kF16), th, {}, -100, "none", 0.1).to(kF32),
                 F::cross_entropy(xh, th, {}, -100, "none", 0.1), 1e-2, 1e-2));
  // The fused backward and its create_graph formula agree.
  Tensor x = randn({6, 5}, {.dtype = kF64, .requires_grad = true});
  Tensor t = tensor<int64_t>({0, 4, 4, -100, 1, 2});
  Tensor w = rand({5}, {.dtype = kF64});
  Tensor g1 = autograd::grad({F::cross_entropy(x, t, w, -100, "mean", 0.25)}, {x})[0];
  Tensor g2 = autograd::grad({F::cross_entropy(x, t, w, -100, "mean", 0.25)}, {x}, {}, true, true)[0];
  CHECK(g2.requires_grad());
  CHECK(allclose(g1, g2, 1e-12, 1e-14));
}

TEST_CASE("loss: f16 and bf16 logits with a float32 loss (autocast's cross entropy) equal the float32 logits'") {
  // The CPU kernel runs on a float32 copy, so loss and gradient are exactly the float32 logits' (the
  // gradient rounded once into the logits' dtype); the CUDA kernel reads the half logits (tests/test_amp.cpp).
  using testing::equal;
  manual_seed(21);
  Tensor t = randint(0, 9, {4, 3});
  t.view({-1}).narrow(0, 2, 2).fill_(-1);
  Tensor w = rand({9}) + 0.1;
  for (DType dt : {kBF16, kF16})
    for (LossReduction r : {LossReduction::None, LossReduction::Mean, LossReduction::Sum})
      for (double ls : {0.0, 0.2})
        for (bool weighted : {false, true}) {
          CAPTURE(dt);
          CAPTURE(static_cast<int>(r));
          CAPTURE(ls);
          CAPTURE(weighted);
          Tensor wt = weighted ? w : Tensor();
          Tensor xh = (randn({4, 9, 3}) * 4).to(dt).requires_grad_();
          Tensor xf = xh.detach().to(kF32).requires_grad_();
          Tensor lh = cross_entropy_loss(xh, t, wt, -1, r, ls, kF32);
          Tensor lf = cross_entropy_loss(xf, t, wt, -1, r, ls);
          CHECK(lh.dtype() == kF32);
          CHECK(equal(lh, lf));
          Tensor gy = randn(lf.shape());
          lh.backward(gy);
          lf.backward(gy);
          REQUIRE(xh.grad().dtype() == dt);
          CHECK(equal(xh.grad(), xf.grad().to(dt)));
          // create_graph: the formula in float32, cast back (differentiably) to the logits' dtype.
          Tensor g2 = autograd::grad({cross_entropy_loss(xh, t, wt, -1, r, ls, kF32)}, {xh}, {gy}, true, true)[0];
          CHECK(g2.requires_grad());
          CHECK(g2.dtype() == dt);
          CHECK(allclose(g2.to(kF32), xf.grad(), 1e-2, 1e-3));
        }
  Tensor xh = randn({2, 3, 1}).to(kBF16), t1 = tensor<int64_t>({0, 2}).reshape({2, 1});
  CHECK_THROWS_AS(cross_entropy_loss(xh, t1), DTypeError);  // half logits on the CPU need the float32 loss
  CHECK_THROWS_AS(cross_entropy_loss(xh, t1, {}, -100, LossReduction::Mean, 0.0, kF64), DTypeError);
  CHECK_THROWS_AS(cross_entropy_loss(xh.to(kF32), t1, {}, -100, LossReduction::Mean, 0.0, kF16), DTypeError);
}

TEST_CASE("loss: unbatched, empty and large-logit inputs") {
  // Unbatched [C] with a 0-dim target keeps a 0-dim result for every reduction.
  Tensor x = tensor<double>({1.0, 2.0, 0.5});
  for (const char* r : {"none", "mean", "sum"}) {
    Tensor l = F::cross_entropy(x, scalar_tensor(1, {.dtype = kI64}), {}, -100, r);
    CHECK(l.dim() == 0);
    CHECK(l.item<double>() == doctest::Approx(std::log(std::exp(1.0) + std::exp(2.0) + std::exp(0.5)) - 2.0));
  }
  // An empty batch: mean is NaN, sum 0 (PyTorch's results).
  Tensor e = zeros({0, 4});
  Tensor et = zeros({0}, {.dtype = kI64});
  CHECK(std::isnan(F::cross_entropy(e, et).item<float>()));
  CHECK(F::cross_entropy(e, et, {}, -100, "sum").item<float>() == 0.0f);
  CHECK(F::cross_entropy(e, et, {}, -100, "none").shape() == Shape{0});
  // Logits of 1e4 do not overflow the fused kernel.
  Tensor big = tensor<float>({{1e4f, 0.0f, -1e4f}, {0.0f, 1e4f, 0.0f}});
  Tensor l = F::cross_entropy(big, tensor<int64_t>({0, 0}), {}, -100, "none");
  CHECK(l.to_vector<float>()[0] == doctest::Approx(0.0f));
  CHECK(l.to_vector<float>()[1] == doctest::Approx(1e4f));
  // A NaN logit makes its row's loss NaN wherever it sits, a +inf among them too (PyTorch's results; the
  // row max used to skip a NaN after the first element and return the +inf). Without a NaN, +inf gives
  // inf for another target (-inf log-probability) and NaN for its own (inf - inf).
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  Tensor odd = tensor<float>({{nan, inf, 0.f}, {0.f, nan, inf}, {inf, 0.f, nan}, {0.f, inf, 1.f}, {0.f, inf, 1.f}});
  const std::vector<float> odd_loss =
      F::cross_entropy(odd, tensor<int64_t>({2, 0, 1, 2, 1}), {}, -100, "none").to_vector<float>();
  for (int i = 0; i < 3; ++i) CHECK(std::isnan(odd_loss[static_cast<size_t>(i)]));
  CHECK(odd_loss[3] == inf);
  CHECK(std::isnan(odd_loss[4]));
  // int32 targets are accepted beside int64.
  Tensor logits = randn({3, 4});
  CHECK(allclose(F::cross_entropy(logits, tensor<int32_t>({1, 3, 0})),
                 F::cross_entropy(logits, tensor<int64_t>({1, 3, 0}))));
}

TEST_CASE("loss: bad input raises clear errors naming the loss") {
  Tensor x = randn({4, 5}), t = tensor<int64_t>({0, 1, 2, 3});
  auto msg_of = [](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  auto contains = [](const std::string& s, const std::string& part) {
    INFO(s);
    return s.find(part) != std::string::npos;
  };
  // Target out of range (the fused kernel and the composite path), negative, and an all-fine ignore.
  CHECK_THROWS_AS(F::cross_entropy(x, tensor<int64_t>({0, 5, 1, 1})), IndexError);
  CHECK(contains(msg_of([&] { F::cross_entropy(x, tensor<int64_t>({0, 5, 1, 1})); }), "[cross_entropy] target 5"));
  CHECK_THROWS_AS(F::cross_entropy(x.to(kF16), tensor<int64_t>({0, 1, -3, 1})), IndexError);
  CHECK(contains(msg_of([&] { F::nll_loss(x, tensor<int64_t>({0, 1, 9, 1})); }), "[nll_loss] target 9"));
  CHECK_NOTHROW(F::cross_entropy(x, tensor<int64_t>({0, 7, 1, 1}), {}, 7));
  // Wrong target dtype, shape mismatches, weight shape.
  CHECK_THROWS_AS(F::cross_entropy(x, tensor<bool>({true, false, true, false})), DTypeError);
  CHECK_THROWS_AS(F::cross_entropy(x, zeros({4, 4})), ShapeError);
  CHECK(contains(msg_of([&] {
                   F::cross_entropy(x, tensor<int64_t>({0, 1, 2}));
                 }),
                 "[cross_entropy] expected target [4]"));
  CHECK_THROWS_AS(F::cross_entropy(x, t, ones({4})), ShapeError);
  CHECK_THROWS_AS(F::nll_loss(x, zeros({4, 5})), DTypeError);
  // Probability targets reject a non-negative ignore_index.
  CHECK(contains(msg_of([&] { F::cross_entropy(x, softmax(randn({4, 5}), 1), {}, 2); }), "ignore_index"));
  CHECK_THROWS_AS(F::cross_entropy(x, t, {}, -100, "mean", 1.5), ValueError);
  // Reductions.
  CHECK(contains(msg_of([&] { F::mse_loss(x, x, "avg"); }), "[mse_loss] reduction must be"));
  CHECK_THROWS_AS(F::cross_entropy(x, t, {}, -100, "batchmean"), ValueError);
  CHECK_NOTHROW(F::kl_div(x, x, "batchmean"));
  // Pointwise losses need one shape (PyTorch broadcasts with a warning).
  CHECK(contains(msg_of([&] { F::mse_loss(randn({4, 1}), randn({4})); }), "[mse_loss] input [4, 1]"));
  CHECK_THROWS_AS(F::l1_loss(x, t), DTypeError);
  CHECK_THROWS_AS(F::smooth_l1_loss(x, x, "mean", -1.0), ValueError);
  CHECK_THROWS_AS(F::huber_loss(x, x, "mean", 0.0), ValueError);
  // Binary cross entropies.
  CHECK(contains(msg_of([&] { F::binary_cross_entropy(x, rand({4, 5})); }), "between 0 and 1"));
  CHECK_THROWS_AS(F::binary_cross_entropy(rand({4, 5}), rand({4, 5}), ones({3})), ShapeError);
  CHECK_THROWS_AS(F::binary_cross_entropy_with_logits(x, rand({5})), ShapeError);
  CHECK_THROWS_AS(F::binary_cross_entropy_with_logits(x, rand({4, 5}), {}, "mean", ones({2, 4, 5})), ShapeError);
  CHECK_THROWS_AS(F::kl_div(x, rand({5}), "sum"), ShapeError);
}
