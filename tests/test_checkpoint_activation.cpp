// nn::checkpoint (activation checkpointing): gradients equal the plain run's (dropout masks and
// autocast repeat in the recompute, closure parameters get gradients), gradcheck, the peak-memory
// saving, nesting, and the error cases.
#include <doctest/doctest.h>

#include "ember.hpp"
#include "gradcheck.hpp"
#include "test_util.hpp"

using namespace ember;
using ember::testing::allclose;
using ember::testing::equal;

namespace {

// Linear -> GELU -> Dropout -> Linear with a residual: intermediates dominate, dropout draws randoms.
struct Block {
  nn::Linear fc1, fc2;
  Block(int64_t d, int64_t h, DType dt) : fc1(d, h), fc2(h, d) {
    fc1->to(dt);
    fc2->to(dt);
  }
  Tensor operator()(const Tensor& x) const {
    Tensor h = nn::functional::gelu(fc1(x));
    h = nn::functional::dropout(h, 0.25, true);
    return x + fc2(h);
  }
  std::vector<Tensor> params() const {
    std::vector<Tensor> p = fc1->parameters(), q = fc2->parameters();
    p.insert(p.end(), q.begin(), q.end());
    return p;
  }
};

struct Run {
  Tensor loss, x_grad;
  std::vector<Tensor> param_grads;
};

// Two blocks, optionally checkpointed, from one seed; returns the loss and every gradient.
Run run_blocks(const std::vector<Block>& blocks, const Tensor& x0, bool ckpt) {
  for (const Block& b : blocks)
    for (Tensor p : b.params()) p.set_grad(Tensor());
  Tensor x = x0.detach().requires_grad_();
  manual_seed(123);
  Tensor h = x;
  for (const Block& b : blocks) h = ckpt ? nn::checkpoint([&b](const Tensor& t) { return b(t); }, h) : b(h);
  Tensor loss = (h * h).mean();
  uint64_t offset_after_forward = default_generator().state().offset;
  loss.backward();
  CHECK(default_generator().state().offset == offset_after_forward);  // the recompute puts the stream back
  Run r{loss.detach(), x.grad(), {}};
  for (const Block& b : blocks)
    for (const Tensor& p : b.params()) r.param_grads.push_back(p.grad());
  return r;
}

void check_same(const Run& a, const Run& b, double rtol, double atol) {
  CHECK(allclose(a.loss, b.loss, rtol, atol));
  REQUIRE(a.x_grad.defined());
  CHECK(allclose(a.x_grad, b.x_grad, rtol, atol));
  REQUIRE(a.param_grads.size() == b.param_grads.size());
  for (size_t i = 0; i < a.param_grads.size(); ++i) {
    REQUIRE(a.param_grads[i].defined());
    REQUIRE(b.param_grads[i].defined());
    CHECK(allclose(a.param_grads[i], b.param_grads[i], rtol, atol));
  }
}

}  // namespace

TEST_CASE("checkpoint: gradients equal the plain run (f32 bitwise, f64)") {
  for (DType dt : {kF32, kF64}) {
    CAPTURE(dt);
    manual_seed(0);
    std::vector<Block> blocks{Block(16, 48, dt), Block(16, 48, dt)};
    Tensor x = randn({8, 16}, {.dtype = dt});
    Run plain = run_blocks(blocks, x, false);
    Run ck = run_blocks(blocks, x, true);
    if (dt == kF32)
      check_same(ck, plain, 0, 0);
    else
      check_same(ck, plain, 1e-12, 1e-14);
  }
}

TEST_CASE("checkpoint: the dropout mask repeats only because the generator state is restored") {
  manual_seed(0);
  std::vector<Block> blocks{Block(16, 48, kF32)};
  Tensor x = randn({8, 16});
  Run plain = run_blocks(blocks, x, false);
  // Without preserve_rng_state the recompute draws a different mask: the gradients differ.
  for (Tensor p : blocks[0].params()) p.set_grad(Tensor());
  Tensor xi = x.detach().requires_grad_();
  manual_seed(123);
  Tensor y = nn::checkpoint([&](const Tensor& t) { return blocks[0](t); }, xi, /*preserve_rng_state=*/false);
  (y * y).mean().backward();
  CHECK_FALSE(allclose(xi.grad(), plain.x_grad, 1e-6, 1e-6));
}

TEST_CASE("checkpoint: bf16 autocast recompute equals the plain autocast run") {
  manual_seed(1);
  std::vector<Block> blocks{Block(32, 64, kF32), Block(32, 64, kF32)};
  Tensor x = randn({8, 32});
  auto run = [&](bool ckpt) {
    for (const Block& b : blocks)
      for (Tensor p : b.params()) p.set_grad(Tensor());
    Tensor xi = x.detach().requires_grad_();
    manual_seed(5);
    Tensor loss;
    {
      Autocast amp(kCPU, kBF16);
      Tensor h = xi;
      for (const Block& b : blocks) h = ckpt ? nn::checkpoint([&b](const Tensor& t) { return b(t); }, h) : b(h);
      CHECK(blocks[0].fc1(xi).dtype() == kBF16);  // autocast is on in the forward
      loss = (h * h).mean();
    }
    loss.backward();
    Run r{loss.detach(), xi.grad(), {}};
    for (const Block& b : blocks)
      for (const Tensor& p : b.params()) r.param_grads.push_back(p.grad());
    return r;
  };
  Run plain = run(false), ck = run(true);
  check_same(ck, plain, 0, 0);
}

TEST_CASE("checkpoint: a weight used inside and outside a checkpoint under autocast gets both gradients") {
  // The checkpointed forward runs under no_grad: its low-precision weight copy must not be cached for
  // the later plain use of the same weight in the same autocast scope.
  manual_seed(2);
  nn::Linear lin(8, 8);
  Tensor x = randn({4, 8});
  auto run = [&](bool ckpt) {
    lin->weight.set_grad(Tensor());
    lin->bias.set_grad(Tensor());
    Tensor loss;
    {
      Autocast amp(kCPU, kBF16);
      Tensor h = ckpt ? nn::checkpoint([&](const Tensor& t) { return lin(t); }, x) : lin(x);
      loss = lin(h).to(kF32).sum();
    }
    loss.backward();
    return lin->weight.grad();
  };
  Tensor plain = run(false), ck = run(true);
  REQUIRE(ck.defined());
  // The plain run sums both uses in bf16 through one cached cast; the recompute casts again, so the
  // two parts add in f32: equal up to bf16 rounding.
  CHECK(allclose(ck, plain, 2e-2, 1e-2));
}

TEST_CASE("checkpoint: several inputs and outputs, inputs without grad, closure parameters") {
  manual_seed(3);
  Tensor w = randn({6, 6}, {.dtype = kF64}).requires_grad_();  // reached only through the closure
  Tensor a = randn({4, 6}, {.dtype = kF64}).requires_grad_();
  Tensor b = randn({4, 6}, {.dtype = kF64});  // takes no gradient
  Tensor idx = tensor(std::vector<int64_t>{0, 2}, {2});
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor h = matmul(in[0] + in[1], w).tanh();
    return std::vector<Tensor>{h * in[0], h.index_select(0, in[2]).sum()};
  };
  auto loss_of = [](const std::vector<Tensor>& o) { return (o[0] * o[0]).sum() + 3.0 * o[1]; };

  loss_of(fn({a, b, idx})).backward();
  Tensor ga = a.grad(), gw = w.grad();
  a.set_grad(Tensor());
  w.set_grad(Tensor());
  std::vector<Tensor> outs = nn::checkpoint(fn, {a, b, idx});
  REQUIRE(outs.size() == 2);
  CHECK(outs[0].requires_grad());
  CHECK_FALSE(w.grad().defined());  // the forward recorded nothing inside
  loss_of(outs).backward();
  CHECK(allclose(a.grad(), ga, 1e-12, 1e-14));
  REQUIRE(w.grad().defined());
  CHECK(allclose(w.grad(), gw, 1e-12, 1e-14));
  CHECK_FALSE(b.grad().defined());

  // Only one output used: the other's gradient is zeros.
  a.set_grad(Tensor());
  outs = nn::checkpoint(fn, {a, b, idx});
  outs[1].backward();
  Tensor a2 = a.detach().requires_grad_();
  fn({a2, b, idx})[1].backward();
  CHECK(allclose(a.grad(), a2.grad(), 1e-12, 1e-14));

  // The input needs no grad at all; the parameter in the closure still gets its gradient.
  w.set_grad(Tensor());
  Tensor y = nn::checkpoint([&](const Tensor& t) { return matmul(t, w).sum(); }, b);
  y.backward();
  REQUIRE(w.grad().defined());
  CHECK(allclose(w.grad(), matmul(b.t(), ones({4, 6}, {.dtype = kF64})), 1e-12, 1e-14));
}

TEST_CASE("checkpoint: gradcheck in f64") {
  manual_seed(4);
  Tensor w = randn({5, 5}, {.dtype = kF64}).requires_grad_();
  Tensor x = randn({3, 5}, {.dtype = kF64}).requires_grad_();
  Tensor z = randn({3, 5}, {.dtype = kF64}).requires_grad_();
  auto f = [](const std::vector<Tensor>& in) {
    return nn::checkpoint(
        [](const std::vector<Tensor>& v) { return nn::functional::gelu(matmul(v[0], v[1])) * v[2].sigmoid(); },
        std::vector<Tensor>{in[0], in[1], in[2]});
  };
  CHECK(ember::testing::gradcheck(f, {x, w, z}));
}

TEST_CASE("checkpoint: nested checkpoints") {
  manual_seed(6);
  std::vector<Block> blocks{Block(16, 32, kF32), Block(16, 32, kF32)};
  Tensor x = randn({4, 16});
  Run plain = run_blocks(blocks, x, false);
  for (const Block& b : blocks)
    for (Tensor p : b.params()) p.set_grad(Tensor());
  Tensor xi = x.detach().requires_grad_();
  manual_seed(123);
  Tensor h = nn::checkpoint(
      [&](const Tensor& t) {
        Tensor u = nn::checkpoint([&](const Tensor& s) { return blocks[0](s); }, t);
        return nn::checkpoint([&](const Tensor& s) { return blocks[1](s); }, u);
      },
      xi);
  Tensor loss = (h * h).mean();
  loss.backward();
  Run r{loss.detach(), xi.grad(), {}};
  for (const Block& b : blocks)
    for (const Tensor& p : b.params()) r.param_grads.push_back(p.grad());
  check_same(r, plain, 0, 0);
}

TEST_CASE("checkpoint: a parameter also used outside the checkpoint accumulates both gradients") {
  // The nested backward visits the weight's accumulator, which the outer backward also holds.
  manual_seed(7);
  nn::Linear lin(6, 6);
  Tensor x = randn({3, 6}).requires_grad_();
  // The use before the checkpoint runs its backward after the nested one: the outer run must still
  // find the accumulator's slot.
  (lin(lin(x).tanh()).tanh().sum()).backward();
  Tensor g = lin->weight.grad(), gx = x.grad();
  lin->weight.set_grad(Tensor());
  lin->bias.set_grad(Tensor());
  x.set_grad(Tensor());
  Tensor h = nn::checkpoint([&](const Tensor& t) { return lin(t).tanh(); }, lin(x).tanh());
  h.sum().backward();
  CHECK(allclose(lin->weight.grad(), g, 1e-6, 1e-7));
  CHECK(allclose(x.grad(), gx, 1e-6, 1e-7));
}

TEST_CASE("checkpoint: callbacks queued in the recompute run when the outer backward ends") {
  // DDP queues its end-of-backward wait from a weight's post-accumulate hook: a weight reached only in
  // the recompute must not finish the outer backward early.
  manual_seed(10);
  nn::Linear inner(4, 4), outer(4, 4);
  Tensor x = randn({2, 4}).requires_grad_();
  bool ran = false, x_grad_seen = false;
  inner->weight.register_post_accumulate_grad_hook([&](const Tensor&) {
    autograd::queue_callback([&] {
      ran = true;
      x_grad_seen = x.grad().defined();  // accumulated by the outer backward after the recompute
    });
  });
  Tensor h = nn::checkpoint([&](const Tensor& t) { return inner(t).relu(); }, outer(x));
  h.sum().backward();
  CHECK(ran);
  CHECK(x_grad_seen);
}

TEST_CASE("checkpoint: peak memory of a deep stack is clearly lower") {
  const int64_t depth = 8, batch = 256, d = 64, hidden = 512;
  manual_seed(8);
  std::vector<Block> blocks;
  for (int64_t i = 0; i < depth; ++i) blocks.emplace_back(d, hidden, kF32);
  Tensor x = randn({batch, d});
  auto peak_of = [&](bool ckpt) {
    for (const Block& b : blocks)
      for (Tensor p : b.params()) p.set_grad(Tensor());
    Tensor xi = x.detach().requires_grad_();
    int64_t base = memory_stats(Device()).current_bytes;
    reset_peak_memory_stats(Device());
    {
      Tensor h = xi;
      for (const Block& b : blocks) h = ckpt ? nn::checkpoint([&b](const Tensor& t) { return b(t); }, h) : b(h);
      (h * h).mean().backward();
    }
    return memory_stats(Device()).peak_bytes - base;
  };
  peak_of(false);  // warm up any lazily made state
  int64_t plain = peak_of(false), ck = peak_of(true);
  MESSAGE("peak above baseline: plain " << plain / 1048576.0 << " MiB, checkpointed " << ck / 1048576.0 << " MiB");
  CHECK(ck < 0.5 * plain);
}

TEST_CASE("checkpoint: errors and no_grad") {
  manual_seed(9);
  Tensor w = randn({3, 3}).requires_grad_();
  Tensor x = randn({2, 3}).requires_grad_();
  auto fn = [&](const Tensor& t) { return matmul(t, w).relu(); };

  SUBCASE("under no_grad it just runs the function") {
    autograd::NoGradGuard no_grad;
    Tensor y = nn::checkpoint(fn, x);
    CHECK_FALSE(y.requires_grad());
    CHECK(equal(y, matmul(x, w).relu()));
  }
  SUBCASE("backward twice without retain_graph") {
    Tensor y = nn::checkpoint(fn, x).sum();
    y.backward({}, /*retain_graph=*/false);
    CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("second time"), AutogradError);
  }
  SUBCASE("backward twice with retain_graph accumulates twice") {
    Tensor y = nn::checkpoint(fn, x).sum();
    y.backward({}, true);
    Tensor g1 = w.grad().clone();
    y.backward();
    CHECK(allclose(w.grad(), 2.0 * g1, 1e-6, 1e-7));
  }
  SUBCASE("an undefined output") {
    CHECK_THROWS_WITH_AS(nn::checkpoint([](const Tensor&) { return Tensor(); }, x),
                         doctest::Contains("[checkpoint] the function returned an undefined tensor"), ValueError);
    CHECK_THROWS_WITH_AS(
        nn::checkpoint([](const std::vector<Tensor>&) { return std::vector<Tensor>{}; }, std::vector<Tensor>{x}),
        doctest::Contains("[checkpoint] the function returned no tensors"), ValueError);
  }
  SUBCASE("an undefined input") {
    CHECK_THROWS_WITH_AS(nn::checkpoint(fn, Tensor()), doctest::Contains("[checkpoint] input 0"), ValueError);
  }
  SUBCASE("an input written in place after the checkpoint") {
    Tensor xc = x.detach().clone();
    Tensor y = nn::checkpoint(fn, xc).sum();
    {
      autograd::NoGradGuard no_grad;
      xc.mul_(2.0);
    }
    CHECK_THROWS_AS(y.backward(), AutogradError);
  }
}
