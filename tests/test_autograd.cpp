// The autograd engine: backward and grad semantics, accumulation, retain_graph, hooks, in-place
// safety (version counters, leaves, views), higher-order gradients, anomaly mode, graph lifetime.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <string>

#include "gradcheck.hpp"
#include "test_util.hpp"

using namespace ember;
using ember::testing::allclose;

namespace {
Tensor f64(std::vector<double> v, Shape s) { return tensor(v, s, {.dtype = kF64}); }
Tensor leaf(std::vector<double> v, Shape s) { return f64(std::move(v), s).requires_grad_(); }
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("backward: a scalar loss fills leaf grads; leaves accumulate over calls; grad = None resets") {
  Tensor a = leaf({1, -2, 3}, {3});
  Tensor b = leaf({0.5, 4, -1}, {3});
  Tensor loss = (a * a * b).sum();
  CHECK(loss.requires_grad());
  CHECK_FALSE(loss.is_leaf());
  CHECK(a.is_leaf());
  loss.backward();
  CHECK(allclose(a.grad(), f64({1.0, -16.0, -6.0}, {3})));  // 2ab
  CHECK(allclose(b.grad(), f64({1.0, 4.0, 9.0}, {3})));     // a^2
  (a * 3).sum().backward();
  CHECK(allclose(a.grad(), f64({4.0, -13.0, -3.0}, {3})));
  a.set_grad({});
  CHECK_FALSE(a.grad().defined());
  (a * 2).sum().backward();
  CHECK(allclose(a.grad(), full({3}, 2.0, {.dtype = kF64})));
}

TEST_CASE("backward: explicit gradients, errors for non-scalars, constants and wrong shapes") {
  Tensor a = leaf({1, 2, 3, 4}, {2, 2});
  Tensor y = a * 2;
  CHECK(has(error_of([&] { y.backward(); }), "one-element"));
  y.backward(f64({1.0, 0.0, 0.5, 2.0}, {2, 2}));
  CHECK(allclose(a.grad(), f64({2.0, 0.0, 1.0, 4.0}, {2, 2})));
  CHECK(has(error_of([&] { (a * 2).backward(ones({3}, {.dtype = kF64})); }), "does not match"));
  Tensor c = ones({2});
  CHECK(has(error_of([&] { c.sum().backward(); }), "does not require grad"));
  CHECK_THROWS_AS(arange(3).requires_grad_(), DTypeError);
}

TEST_CASE("backward twice: freed saved tensors are an error unless retain_graph") {
  Tensor a = leaf({1, 2}, {2});
  Tensor loss = (a * a).sum();
  loss.backward({}, true);
  loss.backward();
  CHECK(allclose(a.grad(), f64({4.0, 8.0}, {2})));
  std::string e = error_of([&] { loss.backward(); });
  CHECK(has(e, "second time"));
  CHECK(has(e, "mul"));
}

TEST_CASE("autograd::grad returns gradients without touching .grad; allow_unused; gradients of several outputs add") {
  Tensor a = leaf({1, 2}, {2}), b = leaf({3, 4}, {2}), unused = leaf({0}, {1});
  Tensor y = (a * b).sum(), z = (a * a).sum();
  auto g = autograd::grad({y, z}, {a, b}, {}, true);
  CHECK(allclose(g[0], f64({5.0, 8.0}, {2})));  // b + 2a
  CHECK(allclose(g[1], f64({1.0, 2.0}, {2})));
  CHECK_FALSE(a.grad().defined());
  CHECK(has(error_of([&] { autograd::grad({y}, {unused}, {}, true); }), "allow_unused"));
  auto g2 = autograd::grad({y}, {unused, b}, {}, true, false, true);
  CHECK_FALSE(g2[0].defined());
  CHECK(allclose(g2[1], f64({1.0, 2.0}, {2})));
  // Gradient w.r.t. an intermediate tensor.
  Tensor h = a * 3;
  Tensor out = (h * h).sum();
  auto gh = autograd::grad({out}, {h});
  CHECK(allclose(gh[0], f64({6.0, 12.0}, {2})));
}

TEST_CASE("detach, NoGradGuard and EnableGradGuard cut or restore recording") {
  Tensor a = leaf({1, 2}, {2});
  Tensor d = a.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.data_ptr<double>() == a.data_ptr<double>());
  {
    autograd::NoGradGuard g;
    CHECK_FALSE((a * 2).requires_grad());
    {
      autograd::EnableGradGuard e;
      CHECK((a * 2).requires_grad());
    }
  }
  CHECK(autograd::is_grad_enabled());
  Tensor y = (a * a.detach()).sum();  // the detached factor is a constant
  y.backward();
  CHECK(allclose(a.grad(), f64({1.0, 2.0}, {2})));
}

TEST_CASE("dtype conversions and broadcasting: gradients come back in each input's dtype and shape") {
  Tensor a = ones({2, 3}, {.requires_grad = true});                   // f32
  Tensor b = full({3}, 2.0, {.dtype = kF64, .requires_grad = true});  // f64, broadcast
  Tensor y = (a * b).sum();
  CHECK(y.dtype() == kF64);
  y.backward();
  CHECK(a.grad().dtype() == kF32);
  CHECK(a.grad().shape() == Shape{2, 3});
  CHECK(allclose(a.grad(), full({2, 3}, 2.0)));
  CHECK(b.grad().shape() == Shape{3});
  CHECK(allclose(b.grad(), full({3}, 2.0, {.dtype = kF64})));
  Tensor c = ones({2}, {.requires_grad = true});
  (c.to(kF64) * 3).sum().backward();
  CHECK(c.grad().dtype() == kF32);
  CHECK(allclose(c.grad(), full({2}, 3.0)));
}

TEST_CASE("hooks: tensor hooks see and may replace gradients; handles remove them; post-accumulate hooks") {
  Tensor a = leaf({1, 2}, {2});
  Tensor h = a * 2;
  int seen = 0;
  HookHandle hh = h.register_hook([&](const Tensor& g) {
    ++seen;
    return g * 10;
  });
  HookHandle ha = a.register_hook([&](const Tensor&) {
    ++seen;
    return Tensor();  // keep
  });
  Tensor last_leaf;
  HookHandle hp = a.register_post_accumulate_grad_hook([&](const Tensor& t) { last_leaf = t; });
  h.sum().backward({}, true);
  CHECK(seen == 2);
  CHECK(allclose(a.grad(), full({2}, 20.0, {.dtype = kF64})));
  CHECK(last_leaf.is_same(a));
  hh.remove();
  ha.remove();
  hp.remove();
  hh.remove();  // idempotent
  a.set_grad({});
  last_leaf = Tensor();
  h.sum().backward();
  CHECK(seen == 2);
  CHECK(allclose(a.grad(), full({2}, 2.0, {.dtype = kF64})));
  CHECK_FALSE(last_leaf.defined());
}

TEST_CASE("retain_grad keeps a non-leaf's gradient") {
  Tensor a = leaf({1, 2}, {2});
  Tensor h = a * 3;
  h.retain_grad();
  CHECK(h.retains_grad());
  (h * h).sum().backward();
  CHECK(allclose(h.grad(), f64({6.0, 12.0}, {2})));
}

TEST_CASE("in-place safety: writing a saved tensor, a leaf, or a view of a leaf is an error naming the ops") {
  Tensor a = leaf({1, 2}, {2});
  Tensor y = a.exp();  // saves its output
  Tensor z = y.sum();
  y.add_(1.0);
  std::string e = error_of([&] { z.backward(); });
  CHECK(has(e, "exp"));
  CHECK(has(e, "add_"));
  CHECK(has(error_of([&] { a.mul_(2.0); }), "leaf"));
  CHECK(has(error_of([&] { a.narrow(0, 0, 1).zero_(); }), "view of a leaf"));
  {
    autograd::NoGradGuard g;  // what optimizers do
    a.mul_(2.0);
  }
  CHECK(allclose(a.detach(), f64({2.0, 4.0}, {2})));
  // A write through a view of a non-contiguous base is refused before it writes anything.
  Tensor base = f64({1, 2, 3, 4, 5, 6}, {3, 2}).t().detach();  // a [2, 3] root with strides [1, 2]
  Tensor src = leaf({7, 8, 9}, {1, 3});
  CHECK(has(error_of([&] { base.narrow(0, 0, 1).copy_(src); }), "non-contiguous base"));
  CHECK(allclose(base, f64({1, 3, 5, 2, 4, 6}, {2, 3})));
}

TEST_CASE("gradients meeting at one input add up; the engine adds in place only into buffers no one else sees") {
  // Two roots seeded with the caller's own tensor, a residual junction, and a gradient shared by two
  // inputs (x + x): every sum is right, and the caller's tensor is never written.
  Tensor x = leaf({1, 2, 3}, {3});
  Tensor h = x * 2.0;
  Tensor y = h + h.exp() + (h + h);  // four paths meet at h
  Tensor seed = f64({1, 1, 1}, {3});
  autograd::backward({y, y}, {seed, seed});
  CHECK(allclose(seed, f64({1, 1, 1}, {3})));
  // dy/dh = 1 + exp(h) + 2, twice (two roots), times dh/dx = 2.
  Tensor want = ((x.detach() * 2.0).exp() + 3.0) * 4.0;
  CHECK(allclose(x.grad(), want));
}

TEST_CASE("in-place ops on non-leaves are differentiated through") {
  Tensor a = leaf({1, 2, 3}, {3});
  Tensor y = a * a;
  y.mul_(3.0);  // y = 3a^2 + a
  y.add_(a);
  y.sum().backward();
  CHECK(allclose(a.grad(), f64({7.0, 13.0, 19.0}, {3})));  // 6a + 1
  // As in PyTorch, mul_ saves its other operand; here that is y itself, which mul_ then overwrites.
  Tensor z = a * 2;
  z.mul_(z.detach());
  CHECK(has(error_of([&] { z.sum().backward(); }), "modified in place by mul_"));
  Tensor b = leaf({1, 2}, {2});
  Tensor t = b * 1.0;
  t.sigmoid_();
  t.sum().backward();
  Tensor s = sigmoid(b.detach());
  CHECK(allclose(b.grad(), s * (1 - s)));
}

TEST_CASE("in-place writes through views reach the base's history") {
  Tensor a = leaf({1, 2, 3, 4}, {2, 2});
  Tensor y = a * 1.0;
  Tensor row = y.select(0, 0);
  row.mul_(3.0);  // y = [[3, 6], [3, 4]]
  CHECK(allclose(y.detach(), f64({3.0, 6.0, 3.0, 4.0}, {2, 2})));
  (y * y).sum().backward();  // d/da = 2y * dy/da
  CHECK(allclose(a.grad(), f64({18.0, 36.0, 6.0, 8.0}, {2, 2})));
  // A view made before the write sees the base's new history.
  Tensor b = leaf({1, 2, 3}, {3});
  Tensor base = b * 1.0;
  Tensor v = base.narrow(0, 1, 2);
  base.narrow(0, 0, 2).mul_(10.0);  // base = [10, 20, 3]; v = [20, 3]
  v.sum().backward();
  CHECK(allclose(b.grad(), f64({0.0, 10.0, 1.0}, {3})));
  // Copying into a slice of a constant buffer makes it part of the graph.
  Tensor x = leaf({5, 6}, {2});
  Tensor buf = zeros({4}, {.dtype = kF64});
  buf.narrow(0, 1, 2).copy_(x * x);
  CHECK(buf.requires_grad());
  (buf * f64({1.0, 2.0, 3.0, 4.0}, {4})).sum().backward();
  CHECK(allclose(x.grad(), f64({20.0, 36.0}, {2})));  // 2x * [2, 3]
}

TEST_CASE("higher-order gradients: d2/dx2 of a polynomial and a Hessian-vector product") {
  Tensor x = leaf({0.5, -1.5, 2.0}, {3});
  Tensor y = (x * x * x - x * x * 2).sum();  // y' = 3x^2 - 4x, y'' = 6x - 4
  auto g = autograd::grad({y}, {x}, {}, true, true);
  Tensor x0 = x.detach();
  CHECK(allclose(g[0], x0 * x0 * 3 - x0 * 4));
  CHECK(g[0].requires_grad());
  auto h = autograd::grad({g[0].sum()}, {x});
  CHECK(allclose(h[0], x0 * 6 - 4));
  // Hessian-vector product of f = sum(exp(x) * x): H = diag(exp(x)(x + 2)).
  Tensor v = f64({1.0, 2.0, -1.0}, {3});
  auto gf = autograd::grad({(x.exp() * x).sum()}, {x}, {}, true, true);
  auto hv = autograd::grad({(gf[0] * v).sum()}, {x});
  CHECK(allclose(hv[0], x0.exp() * (x0 + 2) * v));
}

TEST_CASE("detect_anomaly names the forward op whose backward produced NaN or Inf") {
  Tensor x = leaf({0.0, 1.0}, {2});
  {
    autograd::DetectAnomalyGuard anomaly;
    std::string e = error_of([&] { x.sqrt().sum().backward(); });
    CHECK(has(e, "sqrt"));
    CHECK(has(e, "NaN or Inf"));
  }
  x.set_grad({});
  x.sqrt().sum().backward();  // without anomaly mode the Inf is simply returned
  CHECK(std::isinf(x.grad().to_vector<double>()[0]));
}

TEST_CASE("graphs free themselves: long chains, and steady memory over many iterations") {
  Tensor x = ones({4}, {.requires_grad = true});
  {
    Tensor y = x;
    for (int i = 0; i < 100000; ++i) y = y * 1.0;  // freeing this chain must not recurse 100k deep
  }
  // A small MLP, forward and backward, gradients reset as an optimizer's zero_grad(set_to_none) does.
  manual_seed(3);
  Tensor w1 = randn({8, 16}, {.requires_grad = true}), b1 = zeros({16}, {.requires_grad = true});
  Tensor w2 = randn({16, 3}, {.requires_grad = true});
  Tensor in = randn({5, 8});
  Tensor target = randint(0, 3, {5, 1});
  auto step = [&] {
    Tensor h = gelu(matmul(in, w1) + b1);
    Tensor loss = -log_softmax(matmul(h, w2), 1).gather(1, target).mean();
    loss.backward();
    for (Tensor* t : {&w1, &b1, &w2}) t->set_grad({});
  };
  step();
  int64_t base = memory_stats().current_bytes;
  for (int i = 0; i < 1000; ++i) {
    step();
    REQUIRE(memory_stats().current_bytes == base);
  }
}

TEST_CASE("in-place writes into an op's result that is a view of the op's own buffer keep the op's gradient") {
  Tensor x = ones({2, 3}, {.dtype = kF64, .requires_grad = true});
  Tensor s = sum(x, {1});  // a view of the reduction's [2, 1] buffer
  s.narrow(0, 0, 1).mul_(3.0);
  s.sum().backward();
  CHECK(allclose(x.grad(), f64({3, 3, 3, 1, 1, 1}, {2, 3})));
}

TEST_CASE("composite models match PyTorch's gradients: an MLP, a conv net and a causal attention block") {
  auto ref = load(std::string(EMBER_TEST_DIR) + "/reference/grad_composite.safetensors");
  auto param = [&](const std::string& k) { return ref.at(k).detach().clone().requires_grad_(); };
  auto check = [&](const std::string& model, const Tensor& loss, const std::map<std::string, Tensor>& ps) {
    CAPTURE(model);
    CHECK(allclose(loss.reshape({1}), ref.at(model + ".loss"), 1e-10, 1e-12));
    std::vector<Tensor> xs;
    for (const auto& [k, v] : ps) xs.push_back(v);
    auto grads = autograd::grad({loss}, xs);
    size_t i = 0;
    for (const auto& [name, v] : ps) {
      const std::string& k = name;  // clang 14 cannot capture a structured binding (CAPTURE's lambda)
      CAPTURE(k);
      CHECK(allclose(grads[i++], ref.at(model + ".grad_" + k), 1e-8, 1e-11));
    }
  };
  {
    Tensor x = param("mlp.x"), w1 = param("mlp.w1"), b1 = param("mlp.b1"), w2 = param("mlp.w2"), b2 = param("mlp.b2");
    Tensor h = gelu(tanh(matmul(x, w1) + b1));
    Tensor logits = matmul(h, w2) + b2;
    Tensor loss = -log_softmax(logits, 1).gather(1, ref.at("mlp.y").unsqueeze(1)).mean();
    check("mlp", loss, {{"x", x}, {"w1", w1}, {"b1", b1}, {"w2", w2}, {"b2", b2}});
  }
  {
    Tensor x = param("conv.x"), w1 = param("conv.w1"), b1 = param("conv.b1"), w2 = param("conv.w2"),
           b2 = param("conv.b2"), w3 = param("conv.w3");
    Tensor h = max_pool2d(relu(conv2d(x, w1, b1, {1, 1}, {1, 1})), {2, 2});
    h = conv2d(h, w2, b2, {2, 2}, {1, 1}, {1, 1}, 2);
    h = avg_pool2d(h, {1, 1}).flatten(1);
    Tensor loss = log_softmax(matmul(h, w3), 1).select(1, 0).sum();
    check("conv", loss, {{"x", x}, {"w1", w1}, {"b1", b1}, {"w2", w2}, {"b2", b2}, {"w3", w3}});
  }
  {
    std::map<std::string, Tensor> p;
    for (const char* k : {"x", "wq", "wk", "wv", "wo", "ln_w", "ln_b", "target"})
      p[k] = param(std::string("attn.") + k);
    const int64_t B = 2, T = 5, C = 8, H = 2, D = 4;
    auto heads = [&](const Tensor& z) { return z.reshape({B, T, H, D}).transpose(1, 2); };
    Tensor x = p["x"];
    Tensor q = heads(matmul(x, p["wq"])), k = heads(matmul(x, p["wk"])), v = heads(matmul(x, p["wv"]));
    Tensor att = matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(D));
    Tensor mask = arange(T).unsqueeze(0) > arange(T).unsqueeze(1);  // j > i: the future
    att = softmax(att.masked_fill(mask, -INFINITY), -1);
    Tensor yv = matmul(att, v).transpose(1, 2).reshape({B, T, C});
    Tensor out = layer_norm(x + matmul(yv, p["wo"]), {C}, p["ln_w"], p["ln_b"]);
    check("attn", (out * p["target"]).sum(), p);
  }
}

TEST_CASE("gradient penalty on an MLP: d/dW of ||d out / d x||^2 matches finite differences") {
  manual_seed(31);
  Tensor x = testing::dev(randn({3, 4}, {.dtype = kF64})).requires_grad_(true);
  testing::GradFn penalty = [&](const std::vector<Tensor>& w) {
    autograd::EnableGradGuard grad_mode;  // gradcheck's numerical side runs under NoGradGuard
    Tensor out = matmul(gelu(matmul(x, w[0]) + w[1]), w[2]).sum();
    Tensor gx = autograd::grad({out}, {x}, {}, true, true)[0];  // create_graph: the penalty stays differentiable
    return (gx * gx).sum();
  };
  std::vector<Tensor> w = {testing::dev(randn({4, 5}, {.dtype = kF64})).requires_grad_(true),
                           testing::dev(randn({5}, {.dtype = kF64})).requires_grad_(true),
                           testing::dev(randn({5, 2}, {.dtype = kF64})).requires_grad_(true)};
  CHECK(testing::gradcheck(penalty, w));
  // And the penalty's gradient lands in .grad through backward() as well.
  penalty(w).backward();
  for (const Tensor& t : w) CHECK(t.grad().defined());
}

TEST_CASE("a leaf's gradient that arrived expanded accumulates per element") {
  // sum's backward hands out an expanded gradient; kept as .grad under create_graph, a later
  // plain backward adds into it in place, which must not write one element three times.
  Tensor x = leaf({1, 2, 3}, {3});
  x.sum().backward({}, true, true);
  CHECK_FALSE(has_internal_overlap(x.grad()));
  x.sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{2, 2, 2});
  x.grad().mul_(0.5);  // an optimizer-style in-place update of .grad stays possible
  CHECK(x.grad().to_vector<double>() == std::vector<double>{1, 1, 1});
}
