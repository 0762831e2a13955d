// Mixed precision: Autocast's per-op policies and their gradients, GradScaler's dynamic loss scaling,
// and the Trainer's precision modes (bf16-mixed, 16-mixed with its scaler in checkpoints, *-true).
#include <doctest/doctest.h>

#include <cmath>
#include <csignal>
#include <limits>

#include "tests/trainer_fixtures.hpp"

using namespace ember;
using namespace trainer_test;
using testing::allclose;

TEST_SUITE("amp") {
  TEST_CASE("Autocast: matmul/conv/linear in low precision, softmax/norms/losses in float32, float64 untouched") {
    Tensor a = randn({4, 8}), b = randn({8, 3}), a64 = randn({4, 8}, {.dtype = kF64});
    {
      Autocast amp(kCPU, kBF16);
      CHECK(autocast::is_enabled(kCPU));
      CHECK_FALSE(autocast::is_enabled(Device("cuda")));
      Tensor y = matmul(a, b);
      CHECK(y.dtype() == kBF16);
      CHECK(allclose(y.to(kF32), matmul(a.to(kBF16), b.to(kBF16)).to(kF32), 0, 0));  // the same rounding
      CHECK(mm(a, b).dtype() == kBF16);
      CHECK(addmm(zeros({3}), a, b).dtype() == kBF16);
      CHECK(nn::functional::linear(a, randn({5, 8}), zeros({5})).dtype() == kBF16);
      CHECK(conv2d(randn({1, 2, 5, 5}), randn({3, 2, 3, 3})).dtype() == kBF16);
      CHECK(softmax(y, 1).dtype() == kF32);
      CHECK(log_softmax(y, 1).dtype() == kF32);
      CHECK(layer_norm(y, {3}, ones({3}), zeros({3})).dtype() == kF32);
      CHECK(nn::functional::cross_entropy(y, tensor(std::vector<int64_t>{0, 1, 2, 0}, {4})).dtype() == kF32);
      CHECK(nn::functional::mse_loss(y, zeros({4, 3})).dtype() == kF32);
      CHECK(matmul(a64, a64.t()).dtype() == kF64);     // float64 is never cast
      CHECK((y + a.narrow(1, 0, 3)).dtype() == kF32);  // other ops promote as usual
      {
        Autocast off(kCPU, kBF16, /*enabled=*/false);
        CHECK(matmul(a, b).dtype() == kF32);
      }
      CHECK(matmul(a, b).dtype() == kBF16);
      Autocast f16(kCPU, kF16);
      CHECK(matmul(a, b).dtype() == kF16);
      CHECK(matmul(a.to(kBF16), b).dtype() == kF16);  // any other float dtype goes to the scope's
    }
    CHECK_FALSE(autocast::is_enabled(kCPU));
    CHECK(matmul(a, b).dtype() == kF32);
    CHECK_THROWS_AS(Autocast(kCPU, kF32), DTypeError);
  }

  TEST_CASE("Autocast: a weight is cast once per scope however often it is used; the cache ends with the scope") {
    Tensor w = randn({8, 8}).requires_grad_(), x = randn({4, 8}), act = randn({8, 8});
    {
      Autocast amp(kCPU, kBF16);
      Tensor c1 = autocast::lower(w), c2 = autocast::lower(w);
      CHECK(c1.is_same(c2));  // one cast for both uses
      CHECK(autocast::cache_size() == 1);
      CHECK(!autocast::lower(act).is_same(autocast::lower(act)));  // not a weight: cast at each use
      {
        Autocast inner(kCPU, kBF16);  // a nested scope shares the outer scope's cache
        CHECK(autocast::lower(w).is_same(c1));
      }
      CHECK(autocast::cache_size() == 1);
      {
        autograd::NoGradGuard g;
        w.mul_(2.0);  // an in-place write: the next use casts the new values
      }
      Tensor c3 = autocast::lower(w);
      CHECK(!c3.is_same(c1));
      CHECK(testing::allclose(c3.to(kF32), c1.to(kF32) * 2.0, 1e-2, 1e-2));
      // Gradients through two uses of the cached cast add up in w.grad.
      Tensor y = matmul(matmul(x, c3), c3.t()).sum();
      y.backward();
      CHECK(w.grad().defined());
      CHECK(w.grad().dtype() == kF32);
    }
    CHECK(autocast::cache_size() == 0);
  }

  TEST_CASE("Autocast: float32 leaves get float32 gradients, equal to the explicitly cast computation") {
    manual_seed(3);
    Tensor x = randn({6, 5}), w = randn({4, 5}).requires_grad_(), bias = randn({4}).requires_grad_();
    Tensor target = tensor(std::vector<int64_t>{0, 1, 2, 3, 1, 0}, {6});
    Tensor loss;
    {
      Autocast amp(kCPU, kBF16);
      Tensor logits = nn::functional::linear(x, w, bias);
      CHECK(logits.dtype() == kBF16);
      loss = nn::functional::cross_entropy(logits, target);
      CHECK(loss.dtype() == kF32);
      loss.backward();  // inside the scope: backward runs with autocast off all the same
    }
    REQUIRE(w.grad().defined());
    CHECK(w.grad().dtype() == kF32);
    CHECK(bias.grad().dtype() == kF32);
    // The same computation with the casts written out.
    Tensor w2 = w.detach().clone().requires_grad_(), b2 = bias.detach().clone().requires_grad_();
    Tensor logits2 = nn::functional::linear(x.to(kBF16), w2.to(kBF16), b2.to(kBF16));
    Tensor loss2 = nn::functional::cross_entropy(logits2.to(kF32), target);
    loss2.backward();
    CHECK(allclose(loss, loss2, 0, 0));
    CHECK(allclose(w.grad(), w2.grad(), 0, 0));
    CHECK(allclose(bias.grad(), b2.grad(), 0, 0));
    // And close to the float32 gradient (bf16 keeps 8 bits of mantissa).
    Tensor w3 = w.detach().clone().requires_grad_(), b3 = bias.detach().clone().requires_grad_();
    nn::functional::cross_entropy(nn::functional::linear(x, w3, b3), target).backward();
    CHECK(allclose(w.grad(), w3.grad(), 0.05, 0.02));
  }

  TEST_CASE("Autocast bf16 on CPU matches torch.autocast: logits, loss and float32 weight gradients of an MLP") {
    TensorMap f = testing::fixtures("amp");
    Tensor w1 = f.at("w1").clone().requires_grad_(), b1 = f.at("b1").clone().requires_grad_();
    Tensor w2 = f.at("w2").clone().requires_grad_(), b2 = f.at("b2").clone().requires_grad_();
    Tensor logits, loss;
    {
      Autocast amp(kCPU, kBF16);
      namespace F = nn::functional;
      logits = F::linear(F::relu(F::linear(f.at("x"), w1, b1)), w2, b2);
      loss = F::cross_entropy(logits, f.at("target"));
    }
    loss.backward();
    CHECK(logits.dtype() == kBF16);
    // Equal here bit for bit; the tolerance allows one bf16 ulp for another summation order.
    CHECK(allclose(logits.to(kF32), f.at("logits"), 8e-3, 1e-3));
    CHECK(allclose(loss, f.at("loss"), 1e-5, 0));
    for (auto [name_, p] : {std::pair{"w1", w1}, {"b1", b1}, {"w2", w2}, {"b2", b2}}) {
      // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
      const auto& name = name_;
      CAPTURE(name);
      CHECK(p.grad().dtype() == kF32);
      CHECK(allclose(p.grad(), f.at(std::string("grad_") + name), 8e-3, 1e-4));
    }
  }

  TEST_CASE("Autocast on CUDA: cross_entropy reads f16/bf16 logits as they are, with the float32 logits' results") {
    CUDA_OR_SKIP();
    const Device cuda("cuda");
    manual_seed(12);
    for (DType dt : {kBF16, kF16})
      for (int64_t c : {50, 1100})  // 1100 classes: the block-per-row forward
        for (const char* r : {"mean", "sum", "none"})
          for (bool weighted : {false, true})
            for (double ls : {0.0, 0.1}) {
              CAPTURE(dt);
              CAPTURE(c);
              CAPTURE(r);
              CAPTURE(weighted);
              CAPTURE(ls);
              // [N, C] and [N, C, K] logits; one target ignored.
              for (const Shape& shape : {Shape{6, c}, Shape{2, c, 3}}) {
                Tensor t = randint(0, c, shape.size() == 2 ? Shape{6} : Shape{2, 3});
                t.view({-1}).narrow(0, 4, 1).fill_(-100);
                t = t.to(cuda);
                Tensor w = weighted ? (rand({c}) + 0.5).to(cuda) : Tensor();
                Tensor x = (randn(shape) * 3).to(dt).to(cuda).requires_grad_();
                Tensor xf = x.detach().to(kF32).requires_grad_();
                Tensor l;
                {
                  Autocast amp(cuda, dt);
                  l = nn::functional::cross_entropy(x, t, w, -100, r, ls);
                }
                REQUIRE(l.dtype() == kF32);
                // reduction "none" reshapes the [N * K] losses to the target's shape.
                std::shared_ptr<autograd::Node> ce = l.grad_fn();
                if (std::string(ce->name()) == "reshape") ce = ce->inputs.at(0).edge.fn;
                REQUIRE(std::string(ce->name()) == "cross_entropy");
                CHECK(ce->saved.at(0).unpack(*ce).dtype() == dt);  // no float32 copy kept
                Tensor lf = nn::functional::cross_entropy(xf, t, w, -100, r, ls);
                CHECK(allclose(l.cpu(), lf.cpu(), 1e-6, 1e-6));
                Tensor gy = randn(l.shape()).to(cuda);
                l.backward(gy);
                lf.backward(gy);
                REQUIRE(x.grad().dtype() == dt);
                // The float32 gradient rounded once (the same kernel math): equal up to one rounding.
                CHECK(allclose(x.grad().cpu().to(kF32), xf.grad().to(dt).cpu().to(kF32), dt == kBF16 ? 8e-3 : 1e-3,
                               1e-7));
              }
            }
    // Every target ignored: a NaN mean and zero gradients, as with float32 logits.
    Tensor x = randn({3, 7}).to(kBF16).to(cuda).requires_grad_();
    Tensor l;
    {
      Autocast amp(cuda, kBF16);
      l = nn::functional::cross_entropy(x, full({3}, -100, {.dtype = kI64}).to(cuda));
    }
    CHECK(std::isnan(l.item<float>()));
    l.backward();
    CHECK(x.grad().abs().sum().item<float>() == 0.0f);
  }

  TEST_CASE("GradScaler: scales the loss, unscales once, skips non-finite steps, backs off and grows") {
    Tensor p = ones({3}).requires_grad_();
    auto opt = std::make_shared<optim::SGD>(std::vector<Tensor>{p}, optim::SGDOptions{.lr = 0.5});
    train::GradScaler scaler({.init_scale = 8.0, .growth_interval = 2});
    auto iteration = [&](double factor) {
      opt->zero_grad();
      Tensor loss = (p * factor).sum();
      scaler.scale(loss).backward();
      CHECK(allclose(p.grad(), full({3}, 8.0 * factor * scaler.get_scale() / 8.0)));
      const bool stepped = scaler.step(*opt);
      scaler.update();
      return stepped;
    };
    CHECK(scaler.get_scale() == 8.0);
    CHECK(iteration(1.0));
    CHECK(allclose(p.detach(), full({3}, 0.5)));  // the step used the unscaled gradient 1
    CHECK(iteration(1.0));                        // two clean steps: the scale doubles
    CHECK(scaler.get_scale() == 16.0);
    CHECK(allclose(p.detach(), zeros({3})));

    opt->zero_grad();
    scaler.scale((p * std::numeric_limits<double>::infinity()).sum()).backward();
    CHECK_FALSE(scaler.step(*opt));  // skipped: the parameters stay
    scaler.update();
    CHECK(allclose(p.detach(), zeros({3})));
    CHECK(scaler.get_scale() == 8.0);
    CHECK(scaler.growth_tracker() == 0);

    opt->zero_grad();
    scaler.scale(p.sum()).backward();
    scaler.unscale_(*opt);
    CHECK(allclose(p.grad(), ones({3})));
    CHECK(throws_with<ValueError>([&] { scaler.unscale_(*opt); }, "already called"));
    CHECK(scaler.step(*opt));
    scaler.update();

    train::GradScaler copy;
    copy.load_state_dict(scaler.state_dict());
    CHECK(copy.get_scale() == scaler.get_scale());
    CHECK(copy.growth_tracker() == scaler.growth_tracker());
    CHECK_THROWS_AS(copy.load_state_dict({{"scale", 2.0}}), ValueError);
    // A damaged state is refused as the constructor refuses the options, and the scaler keeps its own.
    struct Damage {
      const char* field;
      nlohmann::json value;
      const char* says;
    };
    for (const Damage& d :
         {Damage{"scale", 0.0, "init_scale"}, Damage{"scale", -1.0, "init_scale"},
          Damage{"growth_factor", 1.0, "growth_factor"}, Damage{"backoff_factor", 1.5, "backoff_factor"},
          Damage{"growth_interval", 0, "growth_interval"}, Damage{"growth_tracker", -2, "growth_tracker"},
          Damage{"growth_tracker", 2000, "growth_tracker"}}) {
      CAPTURE(d.field);
      nlohmann::json bad = scaler.state_dict();
      bad[d.field] = d.value;
      CHECK(throws_with<ValueError>([&] { copy.load_state_dict(bad); }, d.says));
      CHECK(copy.get_scale() == scaler.get_scale());
    }
    CHECK_THROWS_AS(train::GradScaler({.growth_factor = 0.5}), ValueError);
    CHECK_THROWS_AS(train::GradScaler({.init_scale = 0}), ValueError);
    train::GradScaler off({.enabled = false});
    Tensor l = p.sum();
    CHECK(off.scale(l).is_same(l));
  }

  // Tiny with a record of the dtypes its steps saw.
  struct Probe : Tiny {
    DType logits_dtype = kF64, param_dtype = kF64;
    double poison_at_step = -1;  // the loss becomes Inf at this global step
    Tensor training_step(const data::Batch& b, int64_t) override {
      Tensor out = forward(b.input);
      logits_dtype = out.dtype();
      param_dtype = fc->weight.dtype();
      Tensor loss = nn::functional::cross_entropy(out, b.target);
      log("train_loss", loss);
      if (trainer().global_step() == poison_at_step) loss = loss * std::numeric_limits<double>::infinity();
      return loss;
    }
  };

  TEST_CASE("Trainer precision: bf16-mixed and 16-mixed learn with float32 weights; *-true casts the module") {
    for (const char* precision : {"bf16-mixed", "16-mixed", "bf16-true", "32"}) {
      CAPTURE(precision);
      manual_seed(2);
      Probe m;
      m.use_adam = true;
      m.lr = 0.05;
      train::Trainer t(quiet({.max_epochs = 8, .precision = precision, .num_sanity_val_steps = 0}));
      t.fit(m, loader(64, 16, true), loader(64, 16, false));
      const std::string p = precision;
      CHECK(m.logits_dtype == (p == "32" ? kF32 : (p == "16-mixed" ? kF16 : kBF16)));
      CHECK(m.param_dtype == (p == "bf16-true" ? kBF16 : kF32));
      CHECK((t.scaler() != nullptr) == (p == "16-mixed"));
      CHECK(t.callback_metrics().at("val_acc") >= 0.85);  // the problem is learnable in every mode
    }
    CHECK(throws_with<ValueError>([] { train::Trainer t({.precision = "fp8"}); }, "precision \"fp8\" is not one of"));
  }

  // Manual optimisation under 16-mixed goes through the precision plugin: manual_backward scales the loss,
  // clip_gradients unscales before clipping, manual_step skips an overflowing step. The result equals
  // automatic optimisation's, step for step; a plain opt->step() (scaled gradients) is an error.
  TEST_CASE("Trainer 16-mixed with manual optimisation: manual_step equals automatic optimisation") {
    struct Manual : Probe {
      bool plain_step = false;
      Manual() { automatic_optimization = false; }
      Tensor training_step(const data::Batch& b, int64_t i) override {
        optim::Optimizer& opt = *optimizers().front();
        Tensor loss = Probe::training_step(b, i);
        manual_backward(loss);
        if (plain_step) {
          opt.step();
        } else {
          clip_gradients(opt, 0.5, "norm");
          manual_step(opt);
        }
        opt.zero_grad();
        return loss;
      }
    };
    auto options = [] {
      return quiet({.max_epochs = 2, .precision = "16-mixed", .gradient_clip_val = 0.5, .num_sanity_val_steps = 0});
    };
    manual_seed(5);
    Probe automatic;
    automatic.poison_at_step = 3;
    train::Trainer ta(options());
    ta.fit(automatic, loader(24, 4, true));
    manual_seed(5);
    Manual manual;
    manual.poison_at_step = 3;
    train::TrainerOptions mo = options();
    mo.gradient_clip_val = std::nullopt;  // manual optimisation clips in training_step
    train::Trainer tm(mo);
    tm.fit(manual, loader(24, 4, true));
    CHECK(tm.global_step() == ta.global_step());  // the skipped step counts in both
    CHECK(tm.global_step() == 12);
    CHECK(tm.scaler()->get_scale() == 32768.0);  // halved once by the poisoned step
    CHECK(flat_params(manual) == flat_params(automatic));

    Manual plain;
    plain.plain_step = true;
    train::Trainer tp(mo);
    CHECK(throws_with<ValueError>([&] { tp.fit(plain, loader(8, 4, false)); }, "step with manual_step(opt)"));
  }

  TEST_CASE("Trainer 16-mixed: an overflowing step is skipped and halves the scale; resume restores the scaler") {
    auto options = [](const std::string& root) {
      return quiet({.max_epochs = 2, .precision = "16-mixed", .num_sanity_val_steps = 0, .default_root_dir = root});
    };
    manual_seed(4);
    Probe full;
    full.poison_at_step = 2;
    std::vector<double> before, after;
    auto watch = std::make_shared<train::LambdaCallback>(train::LambdaHooks{
        .on_train_batch_start =
            [&](train::Trainer& t, train::TrainModule& m, const data::Batch&, int64_t) {
              if (t.global_step() == 2) before = flat_params(m);
            },
        .on_train_batch_end =
            [&](train::Trainer& t, train::TrainModule& m, const Tensor&, const data::Batch&, int64_t) {
              if (t.global_step() == 3) after = flat_params(m);
            }});
    TempDir full_dir("amp_full");
    train::Trainer t(quiet({.max_epochs = 2,
                            .precision = "16-mixed",
                            .num_sanity_val_steps = 0,
                            .callbacks = {watch},
                            .default_root_dir = full_dir.str()}));
    t.fit(full, loader(24, 4, true));  // 6 steps per epoch
    REQUIRE_FALSE(before.empty());
    CHECK(before == after);                     // the poisoned step changed nothing
    CHECK(t.scaler()->get_scale() == 32768.0);  // halved once, not yet grown (interval 2000)
    CHECK(t.global_step() == 12);

    // Stopped after step 4 by a signal and resumed: the scaler's state comes back with the run.
    struct StopAt4 : train::Callback {
      void on_train_batch_start(train::Trainer& t, train::TrainModule&, const data::Batch&, int64_t) override {
        if (t.global_step() == 4) std::raise(SIGTERM);
      }
    };
    TempDir dir("amp_part");
    manual_seed(4);
    Probe first;
    first.poison_at_step = 2;
    train::TrainerOptions o = options(dir.str());
    o.callbacks = {std::make_shared<StopAt4>()};
    train::Trainer t1(o);
    t1.fit(first, loader(24, 4, true));
    REQUIRE(t1.interrupted());
    train::Checkpoint ck = train::Checkpoint::load(t1.interrupted_checkpoint_path());
    CHECK(ck.state.at("precision").at("scale") == 32768.0);

    manual_seed(99);
    Probe second;
    train::Trainer t2(options(dir.str()));
    t2.fit(second, loader(24, 4, true), nullptr, {.ckpt_path = "interrupted"});
    CHECK(t2.scaler()->get_scale() == 32768.0);
    CHECK(t2.scaler()->growth_tracker() == t.scaler()->growth_tracker());
    CHECK(flat_params(second) == flat_params(full));
  }
}
