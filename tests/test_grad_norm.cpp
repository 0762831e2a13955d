// Gradient checks for layer_norm, rms_norm, batch_norm (training and evaluation) and dropout:
// gradcheck, gradgradcheck, and PyTorch's gradients from tests/reference/grad_norm.safetensors.
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "gradcheck.hpp"
#include "test_util.hpp"

using namespace ember;
using ember::testing::allclose;
using ember::testing::gradcheck;
using ember::testing::gradgradcheck;
using ember::testing::noncontiguous;

namespace {
Tensor leaf(const Shape& s) { return randn(s, {.dtype = kF64, .requires_grad = true}); }
}  // namespace

TEST_CASE("gradcheck: layer_norm and rms_norm with and without affine parameters, over one and two dims") {
  manual_seed(21);
  testing::GradFn ln = [](const std::vector<Tensor>& x) { return layer_norm(x[0], {4}, x[1], x[2]); };
  CHECK(gradcheck(ln, {leaf({3, 4}), leaf({4}), leaf({4})}));
  CHECK(gradcheck(ln, {noncontiguous(leaf({2, 4})), leaf({4}), Tensor()}));
  CHECK(gradgradcheck(ln, {leaf({2, 4}), leaf({4}), leaf({4})}));
  testing::GradFn ln2 = [](const std::vector<Tensor>& x) { return layer_norm(x[0], {2, 3}, x[1], {}); };
  CHECK(gradcheck(ln2, {leaf({2, 2, 3}), leaf({2, 3})}));
  testing::GradFn plain = [](const std::vector<Tensor>& x) { return layer_norm(x[0], {5}); };
  CHECK(gradcheck(plain, {leaf({2, 5})}));
  testing::GradFn rms = [](const std::vector<Tensor>& x) { return rms_norm(x[0], {4}, x[1], 1e-6); };
  CHECK(gradcheck(rms, {leaf({3, 4}), leaf({4})}));
  CHECK(gradcheck(rms, {noncontiguous(leaf({2, 4})), Tensor()}));
  CHECK(gradgradcheck(rms, {leaf({2, 4}), leaf({4})}));
}

TEST_CASE("gradcheck: batch_norm in training (through the batch statistics) and evaluation") {
  manual_seed(22);
  Tensor rm = zeros({3}, {.dtype = kF64}), rv = ones({3}, {.dtype = kF64});
  testing::GradFn train = [&](const std::vector<Tensor>& x) {
    return batch_norm(x[0], Tensor(), Tensor(), x[1], x[2], true);
  };
  CHECK(gradcheck(train, {leaf({4, 3}), leaf({3}), leaf({3})}));
  CHECK(gradcheck(train, {leaf({2, 3, 2, 2}), leaf({3}), leaf({3})}));
  CHECK(gradgradcheck(train, {leaf({3, 3}), leaf({3}), leaf({3})}));
  Tensor mean = testing::dev(randn({3}, {.dtype = kF64})), var = testing::dev(rand({3}, {.dtype = kF64}) + 0.5);
  testing::GradFn eval = [&](const std::vector<Tensor>& x) { return batch_norm(x[0], mean, var, x[1], x[2], false); };
  CHECK(gradcheck(eval, {leaf({4, 3, 2}), leaf({3}), leaf({3})}));
  CHECK(gradgradcheck(eval, {leaf({2, 3}), leaf({3}), Tensor()}));
  // Running statistics are updated in training and never receive gradients.
  Tensor x = leaf({4, 3});
  batch_norm(x, rm, rv, {}, {}, true).sum().backward();
  CHECK_FALSE(rm.requires_grad());
  CHECK_FALSE(allclose(rm, zeros({3}, {.dtype = kF64})));
}

TEST_CASE("normalisation gradients match PyTorch (tests/reference/grad_norm.safetensors)") {
  auto ref = load(std::string(EMBER_TEST_DIR) + "/reference/grad_norm.safetensors");
  auto in = [&](const std::string& k) { return ref.at(k).detach().clone().requires_grad_(); };
  auto check = [&](const std::string& name, const Tensor& out, const std::map<std::string, Tensor>& inputs) {
    CAPTURE(name);
    CHECK(allclose(out, ref.at(name + ".out"), 1e-10, 1e-10));
    std::vector<Tensor> xs;
    for (const auto& [k, v] : inputs) xs.push_back(v);
    auto grads = autograd::grad({out}, xs, {ref.at(name + ".g")});
    size_t i = 0;
    for (const auto& [k_, v] : inputs) {
      // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
      const auto& k = k_;
      CAPTURE(k);
      CHECK(allclose(grads[i++], ref.at(name + ".grad_" + k), 1e-9, 1e-10));
    }
  };
  {
    Tensor x = in("layer_norm1.x"), w = in("layer_norm1.w"), b = in("layer_norm1.b");
    check("layer_norm1", layer_norm(x, {5}, w, b), {{"x", x}, {"w", w}, {"b", b}});
  }
  {
    Tensor x = in("layer_norm2.x"), w = in("layer_norm2.w"), b = in("layer_norm2.b");
    check("layer_norm2", layer_norm(x, {3, 4}, w, b), {{"x", x}, {"w", w}, {"b", b}});
  }
  {
    Tensor x = in("rms_norm.x"), w = in("rms_norm.w");
    check("rms_norm", rms_norm(x, {6}, w, 1e-6), {{"x", x}, {"w", w}});
  }
  {
    Tensor x = in("batch_norm_train.x"), w = in("batch_norm_train.w"), b = in("batch_norm_train.b");
    Tensor rm = zeros({3}, {.dtype = kF64}), rv = ones({3}, {.dtype = kF64});
    check("batch_norm_train", batch_norm(x, rm, rv, w, b, true), {{"x", x}, {"w", w}, {"b", b}});
  }
  {
    Tensor x = in("batch_norm_eval.x"), w = in("batch_norm_eval.w"), b = in("batch_norm_eval.b");
    check("batch_norm_eval", batch_norm(x, ref.at("batch_norm_eval.rm"), ref.at("batch_norm_eval.rv"), w, b, false),
          {{"x", x}, {"w", w}, {"b", b}});
  }
  {
    Tensor x = in("chain.x"), w1 = in("chain.w1"), b1 = in("chain.b1"), w2 = in("chain.w2"), b2 = in("chain.b2");
    Tensor y = batch_norm(gelu(layer_norm(x, {6}, w1, b1)), {}, {}, w2, b2, true);
    check("chain", y, {{"x", x}, {"w1", w1}, {"b1", b1}, {"w2", w2}, {"b2", b2}});
  }
}

TEST_CASE("layer_norm's fused backward sums the weight's and bias's gradients over row chunks as the composite") {
  // 2100 rows of 40: the CPU kernel cuts them into several chunks, the CUDA one (EMBER_TEST_DEVICE=cuda)
  // into row chunks and column tiles, whose partial sums each adds in a fixed order.
  const Device d = testing::test_device();
  manual_seed(24);
  for (DType dt : {kF64, kF32}) {
    CAPTURE(dt);
    Tensor x = (randn({300, 7, 40}, {.dtype = dt}) * 3 + 5).to(d).requires_grad_();
    Tensor w = randn({40}, {.dtype = dt}).to(d).requires_grad_(), b = randn({40}, {.dtype = dt}).to(d).requires_grad_();
    Tensor gy = randn({300, 7, 40}, {.dtype = dt}).to(d);
    std::vector<Tensor> fused = autograd::grad({layer_norm(x, {40}, w, b)}, {x, w, b}, {gy});
    std::vector<Tensor> again = autograd::grad({layer_norm(x, {40}, w, b)}, {x, w, b}, {gy});
    std::vector<Tensor> comp = autograd::grad({layer_norm(x, {40}, w, b)}, {x, w, b}, {gy}, true, true);
    REQUIRE(comp[1].requires_grad());  // the composite formula, not the fused kernel
    const double tol = dt == kF64 ? 1e-10 : 2e-4;
    for (size_t i = 0; i < 3; ++i) {
      CAPTURE(i);
      CHECK(fused[i].shape() == comp[i].shape());
      CHECK(allclose(fused[i], comp[i].detach(), tol, tol));
      CHECK(testing::equal(fused[i], again[i]));  // deterministic
    }
    CHECK(allclose(fused[2], gy.sum({0, 1}), tol, tol));
  }
  // No rows: zero gradients for the parameters.
  Tensor e = randn({0, 5}).to(d).requires_grad_();
  Tensor w = randn({5}).to(d).requires_grad_(), b = randn({5}).to(d).requires_grad_();
  layer_norm(e, {5}, w, b).sum().backward();
  CHECK(testing::equal(w.grad().cpu(), zeros({5})));
  CHECK(testing::equal(b.grad().cpu(), zeros({5})));
}

TEST_CASE("f32 and bf16 normalisations: gradients in the input's dtype, close to f64") {
  manual_seed(23);
  Tensor x64 = randn({4, 8}, {.dtype = kF64}), w64 = randn({8}, {.dtype = kF64});
  Tensor x = x64.detach().requires_grad_(), w = w64.detach().requires_grad_();
  (layer_norm(x, {8}, w, {}) * x64.cos()).sum().backward();
  for (DType dt : {kF32, kBF16}) {
    CAPTURE(dt);
    Tensor xl = x64.to(dt).requires_grad_(), wl = w64.to(dt).requires_grad_();
    (layer_norm(xl, {8}, wl, {}) * x64.cos().to(dt)).sum().backward();
    CHECK(xl.grad().dtype() == dt);
    double tol = dt == kF32 ? 1e-4 : 6e-2;
    CHECK(allclose(xl.grad().to(kF64), x.grad(), tol, tol));
    CHECK(allclose(wl.grad().to(kF64), w.grad(), tol, tol));
  }
}

TEST_CASE("dropout: the gradient is the scaled keep-mask; evaluation and p = 0 pass it through") {
  manual_seed(24);
  Tensor x = (rand({1000}, {.dtype = kF64}) + 1).requires_grad_();
  Tensor y = dropout(x, 0.25, true);
  y.sum().backward();
  Tensor kept = y.detach() != 0;
  CHECK(allclose(x.grad(), kept.to(kF64) / 0.75));
  double frac = kept.to(kF64).mean().item<double>();
  CHECK(frac > 0.7);
  CHECK(frac < 0.8);
  Tensor z = leaf({5});
  dropout(z, 0.5, false).sum().backward();
  CHECK(allclose(z.grad(), ones({5}, {.dtype = kF64})));
  Tensor all = leaf({3});
  dropout(all, 1.0, true).sum().backward();
  CHECK(allclose(all.grad(), zeros({3}, {.dtype = kF64})));
  manual_seed(25);
  testing::GradFn f = [](const std::vector<Tensor>& v) {
    manual_seed(7);  // the same mask on every evaluation
    return dropout(v[0], 0.4, true);
  };
  CHECK(gradcheck(f, {leaf({3, 4})}));
  CHECK(gradgradcheck(f, {leaf({4})}));
}
