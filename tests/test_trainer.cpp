// Tests of the Trainer (train/): the loops and their options, logging rules, optimisation (accumulation,
// clipping, schedulers, manual).
#include <doctest/doctest.h>

#include <cmath>
#include <iostream>
#include <set>
#include <sstream>

#include "tests/trainer_fixtures.hpp"

using namespace ember;
using namespace trainer_test;

TEST_SUITE("trainer") {
  TEST_CASE("the DESIGN.md contract: fit trains the digits classifier") {
    struct Classifier : train::TrainModule {
      nn::Sequential net{nn::Linear(64, 128), nn::ReLU(), nn::Linear(128, 10)};
      Classifier() { register_module("net", net); }
      Tensor forward(const Tensor& x) { return net(x); }
      Tensor training_step(const data::Batch& b, int64_t) override {
        Tensor loss = nn::functional::cross_entropy(forward(b.input), b.target);
        log("train_loss", loss, {.prog_bar = true});
        return loss;
      }
      void validation_step(const data::Batch& b, int64_t) override {
        log("val_acc", (forward(b.input).argmax(1) == b.target).to(kF32).mean());
      }
      train::OptimizerConfig configure_optimizers() override {
        return {std::make_shared<optim::AdamW>(parameters(), optim::AdamWOptions{.lr = 1e-3})};
      }
    };
    manual_seed(0);
    auto data = data::DigitsDataModule({.batch_size = 64});
    Classifier model;
    auto log = std::make_shared<RecordingLogger>();
    train::Trainer trainer(quiet({.max_epochs = 10, .accelerator = "auto", .precision = "32", .loggers = {log}}));
    trainer.fit(model, data);
    CHECK(trainer.current_epoch() == 10);
    CHECK(trainer.global_step() == 10 * 23);  // 1438 training digits in batches of 64
    CHECK(trainer.callback_metrics().at("val_acc") > 0.95);
    CHECK(log->series("val_acc").size() == 10);  // one validation per epoch, sanity check not logged
    CHECK(log->finalized == std::vector<std::string>{"success"});
  }

  TEST_CASE("hooks run in Lightning's order, module before callbacks") {
    std::vector<std::string> calls;
    struct Rec : train::Callback {
      std::vector<std::string>* calls;
      explicit Rec(std::vector<std::string>* c) : calls(c) {}
      void on_fit_start(train::Trainer&, train::TrainModule&) override { calls->push_back("cb:fit_start"); }
      void on_sanity_check_start(train::Trainer&, train::TrainModule&) override { calls->push_back("cb:sanity_start"); }
      void on_sanity_check_end(train::Trainer&, train::TrainModule&) override { calls->push_back("cb:sanity_end"); }
      void on_train_epoch_start(train::Trainer&, train::TrainModule&) override { calls->push_back("cb:epoch_start"); }
      void on_train_batch_start(train::Trainer&, train::TrainModule&, const data::Batch&, int64_t i) override {
        calls->push_back("cb:batch_start" + std::to_string(i));
      }
      void on_before_backward(train::Trainer&, train::TrainModule&, const Tensor&) override {
        calls->push_back("cb:before_backward");
      }
      void on_after_backward(train::Trainer&, train::TrainModule&) override { calls->push_back("cb:after_backward"); }
      void on_before_optimizer_step(train::Trainer&, train::TrainModule&, optim::Optimizer&) override {
        calls->push_back("cb:before_opt");
      }
      void on_before_zero_grad(train::Trainer&, train::TrainModule&, optim::Optimizer&) override {
        calls->push_back("cb:zero_grad");
      }
      void on_train_batch_end(train::Trainer&, train::TrainModule&, const Tensor&, const data::Batch&,
                              int64_t i) override {
        calls->push_back("cb:batch_end" + std::to_string(i));
      }
      void on_validation_start(train::Trainer&, train::TrainModule&) override { calls->push_back("cb:val_start"); }
      void on_validation_end(train::Trainer&, train::TrainModule&) override { calls->push_back("cb:val_end"); }
      void on_train_epoch_end(train::Trainer&, train::TrainModule&) override { calls->push_back("cb:epoch_end"); }
      void on_train_end(train::Trainer&, train::TrainModule&) override { calls->push_back("cb:train_end"); }
      void on_fit_end(train::Trainer&, train::TrainModule&) override { calls->push_back("cb:fit_end"); }
    };
    struct M : Tiny {
      std::vector<std::string>* calls;
      void on_train_epoch_start() override { calls->push_back("m:epoch_start"); }
      void on_train_epoch_end() override { calls->push_back("m:epoch_end"); }
    };
    M model;
    model.calls = &calls;
    train::Trainer trainer(
        quiet({.max_epochs = 1, .num_sanity_val_steps = 1, .callbacks = {std::make_shared<Rec>(&calls)}}));
    trainer.fit(model, loader(8, 4, false), loader(4, 4, false));
    const std::vector<std::string> expected = {
        "cb:fit_start",      "cb:sanity_start", "cb:val_start",    "cb:val_end",         "cb:sanity_end",
        "m:epoch_start",     "cb:epoch_start",  "cb:batch_start0", "cb:before_backward", "cb:after_backward",
        "cb:before_opt",     "cb:zero_grad",    "cb:batch_end0",   "cb:batch_start1",    "cb:before_backward",
        "cb:after_backward", "cb:before_opt",   "cb:zero_grad",    "cb:batch_end1",      "cb:val_start",
        "cb:val_end",        "m:epoch_end",     "cb:epoch_end",    "cb:train_end",       "cb:fit_end"};
    CHECK(calls == expected);
  }

  TEST_CASE("logging: step and epoch keys, batch-size-weighted means, reductions, log_every_n_steps") {
    struct M : Tiny {
      Tensor training_step(const data::Batch& b, int64_t i) override {
        Tensor loss = Tiny::training_step(b, i);
        log("bsize", double(b.size()), {.on_step = true, .on_epoch = true});  // mean weighted by batch size
        log("idx_max", double(i), {.on_epoch = true, .reduce = "max"});
        log("ones", 1.0, {.on_step = false, .on_epoch = true, .reduce = "sum"});
        return loss;
      }
    };
    M model;
    auto log = std::make_shared<RecordingLogger>();
    train::Trainer trainer(
        quiet({.max_epochs = 2, .num_sanity_val_steps = 0, .log_every_n_steps = 2, .loggers = {log}}));
    trainer.fit(model, loader(10, 4, false), loader(6, 4, false));  // batches of 4, 4, 2
    // Step values at global steps 2, 4, 6 (log_every_n_steps = 2) under "<name>_step" and plain names.
    auto steps = log->series("train_loss");
    REQUIRE(steps.size() == 3);
    CHECK(steps[0].first == 2);
    CHECK(steps[2].first == 6);
    CHECK(log->series("bsize_step").size() == 3);
    // Epoch values: (4*4 + 4*4 + 2*2) / 10 = 3.6 for the weighted mean; max index 2; sum 3.
    auto bsize = log->series("bsize_epoch");
    REQUIRE(bsize.size() == 2);
    CHECK(bsize[0].second == doctest::Approx(3.6));
    CHECK(bsize[0].first == 3);  // logged at the epoch's last global step
    REQUIRE(log->series("idx_max_epoch").size() == 2);
    CHECK(log->series("idx_max_epoch").back().second == 2);
    REQUIRE(log->series("ones").size() == 2);
    CHECK(log->series("ones").back().second == 3);
    // Validation: batches of 4 and 2, the mean weighted by batch size.
    CHECK(log->series("val_loss").size() == 2);
    CHECK(trainer.callback_metrics().contains("val_acc"));
    CHECK(trainer.progress_bar_metrics().contains("train_loss"));
    CHECK(log->series("epoch").back().second == 1);
    // A name logged with different options in one epoch is an error.
    struct Bad : Tiny {
      Tensor training_step(const data::Batch& b, int64_t i) override {
        log("x", 1.0, {.reduce = i == 0 ? "mean" : "max"});
        return Tiny::training_step(b, i);
      }
    };
    Bad bad;
    train::Trainer t2(quiet({.max_epochs = 1}));
    CHECK(throws_with<ValueError>([&] { t2.fit(bad, loader(8, 4, false)); }, "different on_step/on_epoch/reduce"));
    struct BadReduce : Tiny {
      Tensor training_step(const data::Batch& b, int64_t i) override {
        log("x", 1.0, {.reduce = "median"});
        return Tiny::training_step(b, i);
      }
    };
    BadReduce br;
    train::Trainer t3(quiet({.max_epochs = 1}));
    CHECK(throws_with<ValueError>([&] { t3.fit(br, loader(8, 4, false)); }, "reduce must be"));
  }

  TEST_CASE("epoch and step limits: max_epochs, max_steps, limit_*_batches, min_epochs, fast_dev_run") {
    Tiny model;
    {
      int64_t estimated = -2;  // configure_optimizers may size a schedule with it (OneCycleLR)
      model.configure = [&](Tiny& self) -> train::OptimizerConfig {
        estimated = self.trainer().estimated_stepping_batches();
        return std::make_shared<optim::SGD>(self.parameters(), optim::SGDOptions{.lr = 0.1});
      };
      train::Trainer t(quiet({.max_epochs = 3, .limit_train_batches = 2}));
      t.fit(model, loader(20, 4, true));
      CHECK(t.global_step() == 6);
      CHECK(t.current_epoch() == 3);
      CHECK(estimated == 6);
      model.configure = nullptr;
    }
    {
      train::Trainer t(quiet({.max_epochs = 5, .max_steps = 7}));
      t.fit(model, loader(20, 4, true));  // 5 batches per epoch: stops in the second epoch
      CHECK(t.global_step() == 7);
      CHECK(t.current_epoch() == 2);
    }
    {
      train::Trainer t(quiet({.max_epochs = 1, .limit_train_batches = 0.5, .limit_val_batches = 1}));
      int64_t val_batches = 0;
      struct Count : Tiny {
        int64_t* n;
        void validation_step(const data::Batch& b, int64_t i) override {
          ++*n;
          Tiny::validation_step(b, i);
        }
      } m;
      m.n = &val_batches;
      t.fit(m, loader(20, 4, true), loader(12, 4, false));
      CHECK(t.global_step() == 2);  // floor(5 * 0.5)
      CHECK(val_batches == 1 + 1);  // the sanity check and the validation, each limited to 1 batch
    }
    {
      // should_stop from the first batch on; min_epochs keeps it training for 2 epochs.
      struct Stopper : Tiny {
        Tensor training_step(const data::Batch& b, int64_t i) override {
          trainer().should_stop = true;
          return Tiny::training_step(b, i);
        }
      } m;
      train::Trainer t(quiet({.max_epochs = 10, .min_epochs = 2}));
      t.fit(m, loader(8, 4, true));
      CHECK(t.current_epoch() == 2);
      CHECK(t.global_step() == 4);
    }
    {
      auto log = std::make_shared<RecordingLogger>();
      train::Trainer t(quiet({.max_epochs = 10, .fast_dev_run = 2, .loggers = {log}}));
      t.fit(model, loader(40, 4, true), loader(40, 4, false));
      CHECK(t.global_step() == 2);
      CHECK(t.current_epoch() == 1);
      CHECK(t.loggers().empty());
      CHECK(log->rows.empty());
      CHECK(t.test(model, loader(40, 4, false))[0].contains("test_acc"));
      CHECK(t.num_test_batches() == 2);
    }
    {
      train::Trainer t(quiet({.max_epochs = 1000, .max_time = 0.0}));
      t.fit(model, loader(8, 4, true));
      CHECK(t.global_step() == 0);  // out of time before the first batch
    }
  }

  TEST_CASE("validation schedule: val_check_interval, check_val_every_n_epoch, sanity steps, overfit_batches") {
    auto count_vals = [](train::TrainerOptions o, int64_t n_train = 40) {
      auto log = std::make_shared<RecordingLogger>();
      o.loggers = {log};
      Tiny m;
      train::Trainer t(quiet(o));
      t.fit(m, loader(n_train, 4, true), loader(8, 4, false));
      return log->series("val_loss");
    };
    // 10 batches per epoch.
    CHECK(count_vals({.max_epochs = 2}).size() == 2);
    auto quarter = count_vals({.max_epochs = 1, .val_check_interval = 0.25});  // every int(2.5) = 2 batches
    REQUIRE(quarter.size() == 5);
    CHECK(quarter[0].first == 2);
    CHECK(count_vals({.max_epochs = 2, .val_check_interval = 5}).size() == 4);
    CHECK(count_vals({.max_epochs = 4, .check_val_every_n_epoch = 2}).size() == 2);
    // val_check_interval across epochs (check_val_every_n_epoch unset): every 15 of 30 batches.
    CHECK(count_vals({.max_epochs = 3, .val_check_interval = 15, .check_val_every_n_epoch = std::nullopt}).size() == 2);
    CHECK_THROWS_AS(count_vals({.max_epochs = 1, .val_check_interval = 11}), ValueError);
    CHECK(count_vals({.max_epochs = 1, .limit_val_batches = 0}).empty());

    int64_t sanity = 0;
    struct S : train::Callback {
      int64_t* n;
      void on_validation_batch_end(train::Trainer& t, train::TrainModule&, const data::Batch&, int64_t) override {
        if (t.sanity_checking()) ++*n;
      }
    };
    auto s = std::make_shared<S>();
    s->n = &sanity;
    Tiny m;
    train::Trainer t(quiet({.max_epochs = 1, .num_sanity_val_steps = -1, .callbacks = {s}}));
    t.fit(m, loader(8, 4, true), loader(12, 4, false));
    CHECK(sanity == 3);
    CHECK(!t.callback_metrics().empty());

    // overfit_batches: the same first batches every epoch, in order, validated on themselves.
    struct Seen : Tiny {
      std::vector<double> firsts;
      Tensor training_step(const data::Batch& b, int64_t i) override {
        firsts.push_back(b.input.select(0, 0).select(0, 0).item<float>());
        return Tiny::training_step(b, i);
      }
    } seen;
    train::Trainer o(quiet({.max_epochs = 2, .overfit_batches = 2}));
    o.fit(seen, loader(40, 4, true), loader(8, 4, false));
    REQUIRE(seen.firsts.size() == 4);
    CHECK(seen.firsts[0] == seen.firsts[2]);
    CHECK(seen.firsts[1] == seen.firsts[3]);
  }

  TEST_CASE("gradient accumulation: N small batches step like one big batch; global_step counts steps") {
    // Mean losses over 2 x 4 examples divided by 2 equal the mean over 8: the same SGD step.
    auto train_once = [](int64_t batch, int64_t accumulate) {
      manual_seed(3);
      Tiny m;
      m.drop->p = 0.0;
      train::Trainer t(quiet({.max_epochs = 1, .accumulate_grad_batches = accumulate}));
      t.fit(m, loader(16, batch, false));
      return std::make_pair(flat_params(m), t.global_step());
    };
    auto [big, big_steps] = train_once(8, 1);
    auto [small, small_steps] = train_once(4, 2);
    CHECK(big_steps == 2);
    CHECK(small_steps == 2);
    REQUIRE(big.size() == small.size());
    for (size_t i = 0; i < big.size(); ++i) CHECK(big[i] == doctest::Approx(small[i]).epsilon(1e-5));
    // The epoch's last batch closes a partial window: 5 batches with N = 2 -> 3 steps.
    Tiny m;
    train::Trainer t(quiet({.max_epochs = 1, .accumulate_grad_batches = 2}));
    t.fit(m, loader(20, 4, false));
    CHECK(t.global_step() == 3);
  }

  TEST_CASE("gradient clipping by norm and by value bounds the update") {
    for (std::string algo : {"norm", "value"}) {
      manual_seed(0);
      Tiny m;
      m.drop->p = 0.0;
      m.lr = 1.0;
      const std::vector<double> before = flat_params(m);
      train::Trainer t(quiet({.max_steps = 1, .gradient_clip_val = 1e-3, .gradient_clip_algorithm = algo}));
      t.fit(m, loader(8, 8, false));
      const std::vector<double> after = flat_params(m);
      double norm2 = 0, maxabs = 0;
      for (size_t i = 0; i < before.size(); ++i) {
        norm2 += (after[i] - before[i]) * (after[i] - before[i]);
        maxabs = std::max(maxabs, std::fabs(after[i] - before[i]));
      }
      if (algo == "norm")
        CHECK(std::sqrt(norm2) <= 1e-3 * (1 + 1e-4));
      else
        CHECK(maxabs <= 1e-3 * (1 + 1e-4));
      CHECK(norm2 > 0);
    }
    CHECK_THROWS_AS(train::Trainer({.gradient_clip_algorithm = "max"}), ValueError);
  }

  TEST_CASE("schedulers step per epoch or per step with their frequency; ReduceLROnPlateau reads its monitor") {
    Tiny m;
    std::shared_ptr<optim::SGD> opt;
    m.configure = [&](Tiny& self) -> train::OptimizerConfig {
      opt = std::make_shared<optim::SGD>(self.parameters(), optim::SGDOptions{.lr = 1.0});
      auto s = std::make_shared<optim::StepLR>(*opt, 1, 0.5);
      return {opt, {.scheduler = s, .interval = "step", .frequency = 2}};
    };
    train::Trainer t(quiet({.max_epochs = 1}));
    t.fit(m, loader(24, 4, false));  // 6 steps -> 3 scheduler steps
    CHECK(opt->lr(0) == doctest::Approx(0.125));

    m.configure = [&](Tiny& self) -> train::OptimizerConfig {
      opt = std::make_shared<optim::SGD>(self.parameters(), optim::SGDOptions{.lr = 1.0});
      auto s = std::make_shared<optim::StepLR>(*opt, 1, 0.5);
      return {opt, {.scheduler = s}};
    };
    train::Trainer t2(quiet({.max_epochs = 3}));
    t2.fit(m, loader(8, 4, false));
    CHECK(opt->lr(0) == doctest::Approx(0.125));

    // The plateau scheduler halves the lr when the monitored (constant) metric stops improving.
    struct Flat : Tiny {
      void validation_step(const data::Batch&, int64_t) override { log("flat", 1.0); }
    } f;
    f.configure = [&](Tiny& self) -> train::OptimizerConfig {
      opt = std::make_shared<optim::SGD>(self.parameters(), optim::SGDOptions{.lr = 1.0});
      auto s = std::make_shared<optim::ReduceLROnPlateau>(*opt, optim::ReduceLROnPlateauOptions{.patience = 0});
      return {opt, {.scheduler = s, .monitor = "flat"}};
    };
    train::Trainer t3(quiet({.max_epochs = 3, .num_sanity_val_steps = 0}));
    t3.fit(f, loader(8, 4, false), loader(4, 4, false));
    CHECK(opt->lr(0) == doctest::Approx(0.01));  // epoch 0 sets the best; epochs 1 and 2 reduce by 0.1
    f.configure = [&](Tiny& self) -> train::OptimizerConfig {
      opt = std::make_shared<optim::SGD>(self.parameters(), optim::SGDOptions{.lr = 1.0});
      auto s = std::make_shared<optim::ReduceLROnPlateau>(*opt);
      return {opt, {.scheduler = s, .monitor = "missing"}};
    };
    train::Trainer t4(quiet({.max_epochs = 1, .num_sanity_val_steps = 0}));
    CHECK(throws_with<ValueError>([&] { t4.fit(f, loader(8, 4, false), loader(4, 4, false)); }, "monitors 'missing'"));
  }

  TEST_CASE("manual optimisation: two optimizers stepped in training_step, global_step counts both") {
    struct Gan : train::TrainModule {
      nn::Linear g{4, 4}, d{4, 1};
      Gan() {
        automatic_optimization = false;
        register_module("g", g);
        register_module("d", d);
      }
      Tensor training_step(const data::Batch& b, int64_t) override {
        auto& opts = optimizers();
        Tensor d_loss = d(b.input).pow(2).mean() + d(g(b.input).detach()).mean();
        opts[1]->zero_grad();
        manual_backward(d_loss);
        opts[1]->step();
        Tensor g_loss = -d(g(b.input)).mean();
        opts[0]->zero_grad();
        manual_backward(g_loss);
        opts[0]->step();
        log("g_loss", g_loss);
        return {};
      }
      train::OptimizerConfig configure_optimizers() override {
        return {std::vector<std::shared_ptr<optim::Optimizer>>{
            std::make_shared<optim::SGD>(g->parameters(), optim::SGDOptions{.lr = 0.01}),
            std::make_shared<optim::SGD>(d->parameters(), optim::SGDOptions{.lr = 0.01})}};
      }
    } gan;
    int64_t backwards = 0;
    struct B : train::Callback {
      int64_t* n;
      void on_after_backward(train::Trainer&, train::TrainModule&) override { ++*n; }
    };
    auto b = std::make_shared<B>();
    b->n = &backwards;
    train::Trainer t(quiet({.max_epochs = 1, .callbacks = {b}}));
    t.fit(gan, loader(12, 4, false));
    CHECK(t.global_step() == 6);
    CHECK(backwards == 6);
    // Automatic optimisation refuses two optimizers.
    struct Two : Tiny {
      train::OptimizerConfig configure_optimizers() override {
        return {std::vector<std::shared_ptr<optim::Optimizer>>{
            std::make_shared<optim::SGD>(parameters(), optim::SGDOptions{.lr = 0.1}),
            std::make_shared<optim::SGD>(parameters(), optim::SGDOptions{.lr = 0.1})}};
      }
    } two;
    train::Trainer t2(quiet({.max_epochs = 1}));
    CHECK(throws_with<ValueError>([&] { t2.fit(two, loader(8, 4, false)); }, "automatic optimisation"));
  }

  TEST_CASE("bad options and bad steps raise clear errors") {
    CHECK(throws_with<ValueError>([] { train::Trainer t({.accelerator = "tpu"}); }, "accelerator"));
    CHECK(throws_with<ValueError>([] { train::Trainer t({.precision = "8"}); }, "precision \"8\""));
    // One process cannot be two DDP ranks: the error says how to launch them.
    CHECK(throws_with<ValueError>([] { train::Trainer t({.devices = 2}); }, "mpirun -np 2"));
    CHECK(throws_with<ValueError>([] { train::Trainer t({.devices = 2, .num_nodes = 2}); }, "needs 4 processes"));
    CHECK(throws_with<ValueError>([] { train::Trainer t({.devices = 2, .strategy = "single_device"}); }, "\"ddp\""));
    CHECK_THROWS_AS(train::Trainer({.devices = 0}), ValueError);
    CHECK_THROWS_AS(train::Trainer({.accumulate_grad_batches = 0}), ValueError);
    CHECK_THROWS_AS(train::Trainer({.val_check_interval = 0}), ValueError);
    CHECK_THROWS_AS(train::Trainer({.log_every_n_steps = 0}), ValueError);
    if (!cuda_is_available()) CHECK_THROWS_AS(train::Trainer({.accelerator = "cuda"}), DeviceError);

    struct NoGrad : Tiny {
      Tensor training_step(const data::Batch& b, int64_t) override {
        autograd::NoGradGuard g;
        return nn::functional::cross_entropy(forward(b.input), b.target);
      }
    } ng;
    train::Trainer t(quiet({.max_epochs = 1}));
    CHECK(throws_with<AutogradError>([&] { t.fit(ng, loader(8, 4, false)); }, "does not require grad"));
    // The exception reaches on_exception and the loggers finalize as failed.
    auto log = std::make_shared<RecordingLogger>();
    bool seen = false;
    struct E : train::Callback {
      bool* seen;
      void on_exception(train::Trainer&, train::TrainModule&, const std::exception&) override { *seen = true; }
    };
    auto e = std::make_shared<E>();
    e->seen = &seen;
    train::Trainer t2(quiet({.max_epochs = 1, .callbacks = {e}, .loggers = {log}}));
    CHECK_THROWS_AS(t2.fit(ng, loader(8, 4, false)), AutogradError);
    CHECK(seen);
    CHECK(log->finalized == std::vector<std::string>{"failed"});
    // A loss that is not one element.
    struct Vec : Tiny {
      Tensor training_step(const data::Batch& b, int64_t) override { return forward(b.input).sum({1}); }
    } v;
    CHECK(throws_with<ValueError>([&] { t.fit(v, loader(8, 4, false)); }, "one-element loss"));
    // precision "64" trains in float64.
    Tiny m64;
    train::Trainer t64(quiet({.max_epochs = 1, .precision = "64"}));
    t64.fit(m64, loader(8, 4, false));
    CHECK(m64.fc->weight.dtype() == kF64);
  }

  TEST_CASE("non-finite losses: detect_anomaly stops and names the place; the progress output says so once") {
    // The loss turns NaN from global step 2 on: an input scaled by NaN.
    struct Nan : Tiny {
      Tensor training_step(const data::Batch& b, int64_t i) override {
        Tensor x = trainer().global_step() >= 2 ? b.input * std::nan("") : b.input;
        Tensor loss = nn::functional::cross_entropy(forward(x), b.target);
        log("train_loss", loss, {.prog_bar = true});
        (void)i;
        return loss;
      }
    };
    Nan a;
    train::Trainer strict(quiet({.max_epochs = 1, .detect_anomaly = true}));
    CHECK(throws_with<ValueError>([&] { strict.fit(a, loader(24, 4, false)); },
                                  "detect_anomaly: training_step returned a loss of nan at epoch 0, batch 2"));
    CHECK_FALSE(autograd::is_anomaly_enabled());  // only during fit
    // A NaN that appears only in backward: sqrt's gradient at 0 is infinite.
    struct BadGrad : Tiny {
      Tensor training_step(const data::Batch& b, int64_t) override {
        return nn::functional::cross_entropy(forward(b.input), b.target) + (fc->weight * 0.0).sqrt().sum();
      }
    } g;
    train::Trainer strict2(quiet({.max_epochs = 1, .detect_anomaly = true}));
    CHECK(throws_with<AutogradError>([&] { strict2.fit(g, loader(8, 4, false)); }, "detect_anomaly"));
    // Without the option the run goes on, and the progress output says when the loss turned non-finite.
    std::ostringstream out;
    auto bar = std::make_shared<train::ProgressBar>(
        train::ProgressBarOptions{.tty = false, .stream = &out, .plain_min_seconds = 0});
    Nan b;
    train::Trainer lenient({.max_epochs = 2,
                            .enable_checkpointing = false,
                            .enable_model_summary = false,
                            .callbacks = {bar},
                            .logger = false});
    lenient.fit(b, loader(24, 4, false));
    CHECK(lenient.global_step() == 12);
    const std::string text = out.str();
    CHECK(text.find("train_loss is nan at epoch 0, batch 2 (global step 3)") != std::string::npos);
    CHECK(text.find("detect_anomaly") == text.rfind("detect_anomaly"));  // said once
  }

  TEST_CASE("empty loaders: fit warns that it will not train or validate") {
    std::ostringstream err;
    auto* old = std::cerr.rdbuf(err.rdbuf());
    Tiny m;
    auto empty = std::make_shared<data::DataLoader>(data::TensorDataset(zeros({0, 4}), zeros({0}, {.dtype = kI64})),
                                                    data::DataLoaderOptions{.batch_size = 4});
    try {
      train::Trainer t(quiet({.max_epochs = 1}));
      t.fit(m, empty, loader(8, 4, false));
      train::Trainer t2(quiet({.max_epochs = 1}));
      t2.fit(m, loader(8, 4, false), empty);
      train::Trainer t3(quiet({.max_epochs = 1, .limit_val_batches = 0}));  // validation switched off: no word
      t3.fit(m, loader(8, 4, false), loader(8, 4, false));
    } catch (...) {
      std::cerr.rdbuf(old);
      throw;
    }
    std::cerr.rdbuf(old);
    const std::string text = err.str();
    CHECK(text.find("the training loader is empty (0 batches): fit will not train") != std::string::npos);
    CHECK(text.find("the validation loader is empty (0 batches): fit will not validate") != std::string::npos);
    CHECK(text.find("validation loader") == text.rfind("validation loader"));
  }

  TEST_CASE("predict returns one tensor per batch; validate and test return their metrics") {
    Tiny m;
    train::Trainer t(quiet({.max_epochs = 2}));
    t.fit(m, loader(40, 8, true));
    auto preds = t.predict(m, loader(20, 8, false));
    REQUIRE(preds.size() == 3);
    CHECK(preds[2].shape() == Shape{4});
    auto val = t.validate(m, loader(16, 8, false));
    REQUIRE(val.size() == 1);
    CHECK(val[0].contains("val_loss"));
    CHECK(val[0].at("val_acc") >= 0.0);
    auto test = t.test(m, loader(16, 8, false));
    CHECK(test[0].contains("test_acc"));
  }

}  // TEST_SUITE
