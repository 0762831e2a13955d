// Tests of Trainer checkpoints: file layout, validation of damaged files, atomic writes under kill and
// full disk, exact resume after any batch, ModelCheckpoint and EarlyStopping.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <set>

#include "tests/trainer_fixtures.hpp"

using namespace ember;
using namespace trainer_test;

TEST_SUITE("trainer") {
  TEST_CASE("checkpoints: weights under state_dict names, optimizer state, validation of damaged files") {
    TempDir dir("ckpt");
    Tiny m;
    m.use_adam = true;
    m.save_hyperparameters({{"lr", 0.1}, {"hidden", 4}});
    train::Trainer t(quiet({.max_epochs = 2}));
    t.fit(m, loader(16, 4, true));
    const std::string path = (dir.path / "run.safetensors").string();
    t.save_checkpoint(path);

    Metadata meta;
    TensorMap raw = load(path, &meta);
    CHECK(raw.contains("fc.weight"));
    CHECK(raw.contains("fc.bias"));
    CHECK(raw.contains("optimizer_states.0.state.0.exp_avg"));
    train::Checkpoint ck = train::Checkpoint::load(path);
    CHECK(ck.state.at("global_step") == 8);
    CHECK(ck.state.at("epoch") == 2);
    CHECK(ck.state.at("hparams").at("hidden") == 4);
    CHECK(ck.weights().size() == 2);

    // validate() with the checkpoint restores its weights into a fresh module.
    Tiny fresh;
    train::Trainer t2(quiet({}));
    auto a = t2.validate(fresh, loader(16, 8, false), {.ckpt_path = path});
    auto b = t.validate(m, loader(16, 8, false));
    CHECK(a[0].at("val_loss") == b[0].at("val_loss"));

    // Damage: truncated, garbage, not an Ember checkpoint, shape mismatch, weights-only resume.
    std::string bytes;
    {
      std::ifstream in(path, std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    const std::string bad = (dir.path / "bad.safetensors").string();
    std::ofstream(bad, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    CHECK_THROWS_AS(train::Checkpoint::load(bad), Error);
    std::ofstream(bad, std::ios::binary) << "not a checkpoint at all";
    CHECK_THROWS_AS(train::Checkpoint::load(bad), Error);
    save(bad, {{"fc.weight", zeros({3, 4})}});
    CHECK(throws_with<ValueError>([&] { train::Checkpoint::load(bad); }, "not an Ember checkpoint"));
    struct Wide : train::TrainModule {
      nn::Linear fc{4, 5};
      Wide() { register_module("fc", fc); }
      Tensor training_step(const data::Batch&, int64_t) override { return {}; }
      void validation_step(const data::Batch&, int64_t) override {}
      train::OptimizerConfig configure_optimizers() override {
        return {std::make_shared<optim::SGD>(parameters(), optim::SGDOptions{.lr = 0.1})};
      }
    } wide;
    train::Trainer t3(quiet({}));
    CHECK(throws_with<Error>([&] { t3.validate(wide, loader(8, 4, false), {.ckpt_path = path}); }, "fc.weight"));
    const std::string weights = (dir.path / "w.safetensors").string();
    t.save_checkpoint(weights, /*weights_only=*/true);
    CHECK(load(weights).size() == 2);
    Tiny again;
    train::Trainer t4(quiet({.max_epochs = 3}));
    CHECK(throws_with<ValueError>([&] { t4.fit(again, loader(16, 4, true), nullptr, {.ckpt_path = weights}); },
                                  "weights only"));
    train::Trainer t5(quiet({}));
    CHECK(throws_with<ValueError>([&] { t5.validate(again, loader(8, 4, false), {.ckpt_path = "best"}); },
                                  "ModelCheckpoint"));
  }

  TEST_CASE("a checkpoint write killed at any moment leaves the previous file intact") {
    TempDir dir("kill");
    const std::string path = (dir.path / "ck.safetensors").string();
    Tiny m;
    train::Trainer t(quiet({.max_epochs = 1, .accelerator = "cpu"}));  // the forked child can make no CUDA calls
    t.fit(m, loader(8, 4, false));
    t.save_checkpoint(path);
    for (int attempt = 0; attempt < 5; ++attempt) {
      pid_t pid = fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {  // the child rewrites the checkpoint until killed
        for (;;) t.save_checkpoint(path);
      }
      usleep(2000 + attempt * 3000);
      kill(pid, SIGKILL);
      int status = 0;
      waitpid(pid, &status, 0);
      CHECK(WIFSIGNALED(status));
      train::Checkpoint ck = train::Checkpoint::load(path);  // whole and valid
      CHECK(ck.state.at("global_step") == 2);
    }
    // A folder that cannot be written: a clear error and the old file stays.
    CHECK_THROWS_AS(t.save_checkpoint((dir.path / "missing" / "x.safetensors").string()), IOError);
  }

  TEST_CASE("exact resume: a run crashed after any batch and resumed ends bitwise equal to an uninterrupted run") {
    // Dropout (RNG), shuffling, Adam, a per-step scheduler, validation twice per epoch, step logging.
    auto options = [](const std::string& dir, std::vector<train::CallbackPtr> extra,
                      std::shared_ptr<RecordingLogger> log) {
      // The checkpoint first: a crash in a later callback comes after this step's save.
      extra.insert(extra.begin(), std::make_shared<train::ModelCheckpoint>(train::ModelCheckpointOptions{
                                      .dirpath = dir, .save_last = true, .every_n_train_steps = 1}));
      return quiet({.max_epochs = 3,
                    .val_check_interval = 0.5,
                    .num_sanity_val_steps = 0,
                    .log_every_n_steps = 2,
                    .callbacks = extra,
                    .loggers = {log}});
    };
    auto make_model = [] {
      auto m = std::make_unique<Tiny>();
      m->configure = [](Tiny& self) -> train::OptimizerConfig {
        auto opt = std::make_shared<optim::Adam>(self.parameters(), optim::AdamOptions{.lr = 0.05});
        auto s = std::make_shared<optim::StepLR>(*opt, 3, 0.7);
        return {opt, {.scheduler = s, .interval = "step"}};
      };
      return m;
    };
    TempDir full_dir("resume_full");
    manual_seed(11);
    auto full_model = make_model();
    auto full_log = std::make_shared<RecordingLogger>();
    train::Trainer full(options(full_dir.str(), {}, full_log));
    full.fit(*full_model, loader(24, 4, true), loader(8, 4, false));  // 6 batches per epoch, 18 in all
    const std::vector<double> want = flat_params(*full_model);

    // A ModelCheckpoint (saving nothing itself), so that it runs after the saving one, as they keep
    // their order among themselves at the end of the callbacks.
    struct Crash : train::ModelCheckpoint {
      int64_t at;
      explicit Crash(const std::string& dir) : ModelCheckpoint({.dirpath = dir, .save_top_k = 0}) {}
      std::string state_key() const override { return "Crash"; }
      void on_train_batch_end(train::Trainer& t, train::TrainModule&, const Tensor&, const data::Batch&,
                              int64_t) override {
        if (t.global_step() == at) throw std::runtime_error("simulated crash");
      }
    };
    for (int64_t crash_at : {1, 3, 6, 8, 13}) {
      CAPTURE(crash_at);
      TempDir dir("resume_part");
      manual_seed(11);
      auto model = make_model();
      auto log = std::make_shared<RecordingLogger>();
      auto crash = std::make_shared<Crash>(dir.str());
      crash->at = crash_at;
      train::Trainer first(options(dir.str(), {crash}, log));
      CHECK_THROWS_AS(first.fit(*model, loader(24, 4, true), loader(8, 4, false)), std::runtime_error);

      manual_seed(999);  // the resumed run takes its RNG state from the checkpoint
      auto resumed_model = make_model();
      auto resumed_log = std::make_shared<RecordingLogger>();
      train::Trainer second(options(dir.str(), {}, resumed_log));
      second.fit(*resumed_model, loader(24, 4, true), loader(8, 4, false),
                 {.ckpt_path = (dir.path / "last.safetensors").string()});
      CHECK(second.global_step() == full.global_step());
      CHECK(flat_params(*resumed_model) == want);
      // The logged rows of both parts together are the uninterrupted run's, bit for bit.
      auto rows = log->rows;
      rows.insert(rows.end(), resumed_log->rows.begin(), resumed_log->rows.end());
      CHECK(rows == full_log->rows);
    }
  }

  TEST_CASE("SIGTERM/SIGUSR1 during fit: the step finishes, the run is saved, fit returns, resume is exact") {
    // A signal raised inside a training step, a validation step or an epoch's end hook: the run stops at
    // the next batch boundary, saved to <root>/interrupted.safetensors; resuming matches the full run.
    // With the default sanity check and a ModelCheckpoint that monitors val_loss at each epoch's end.
    auto options = [](const std::string& root, std::vector<train::CallbackPtr> extra,
                      std::shared_ptr<RecordingLogger> log) {
      extra.push_back(std::make_shared<train::ModelCheckpoint>(
          train::ModelCheckpointOptions{.dirpath = root + "/ckpt", .monitor = "val_loss"}));
      return quiet({.max_epochs = 2,
                    .val_check_interval = 0.5,
                    .log_every_n_steps = 1,
                    .callbacks = extra,
                    .loggers = {log},
                    .default_root_dir = root});
    };
    // train_loss per step and per epoch (the epoch mean must come out the same across the stop).
    struct EpochLogging : Tiny {
      Tensor training_step(const data::Batch& b, int64_t) override {
        Tensor loss = nn::functional::cross_entropy(forward(b.input), b.target);
        log("train_loss", loss, {.prog_bar = true, .on_step = true, .on_epoch = true});
        return loss;
      }
    };
    auto make_model = [] {
      auto m = std::make_unique<EpochLogging>();
      m->use_adam = true;
      return m;
    };
    manual_seed(5);
    auto full_model = make_model();
    auto full_log = std::make_shared<RecordingLogger>();
    TempDir full_dir("signal_full");
    train::Trainer full(options(full_dir.str(), {}, full_log));
    full.fit(*full_model, loader(24, 4, true), loader(8, 4, false));  // 6 batches per epoch
    CHECK_FALSE(full.interrupted());
    CHECK_FALSE(fs::exists(full.interrupted_checkpoint_path()));

    struct Raiser : train::Callback {
      int sig = SIGTERM;
      std::string where;
      int64_t at = 0;
      bool fired = false;  // once: a second signal would get its default action
      void maybe(train::Trainer& t, const char* here) {
        if (fired || where != here || t.global_step() != at) return;
        fired = true;
        std::raise(sig);
      }
      void on_train_batch_start(train::Trainer& t, train::TrainModule&, const data::Batch&, int64_t) override {
        maybe(t, "train");
      }
      void on_validation_batch_start(train::Trainer& t, train::TrainModule&, const data::Batch&, int64_t) override {
        maybe(t, "val");
      }
      void on_train_epoch_end(train::Trainer& t, train::TrainModule&) override { maybe(t, "epoch_end"); }
    };
    // A handler of the program's own, which fit must put back.
    static volatile std::sig_atomic_t own_handler_calls = 0;
    auto previous = std::signal(SIGUSR1, [](int) { own_handler_calls = own_handler_calls + 1; });

    struct Case {
      int sig;
      const char* where;
      int64_t at, stopped_at;
    };
    // Inside a batch, the mid-epoch validation, the epoch's last batch and its validation, the epoch end.
    for (const Case& c : {Case{SIGTERM, "train", 1, 2}, Case{SIGUSR1, "val", 3, 3}, Case{SIGTERM, "epoch_end", 6, 6},
                          Case{SIGUSR1, "train", 0, 1}, Case{SIGTERM, "train", 5, 6}, Case{SIGTERM, "val", 6, 6}}) {
      CAPTURE(c.where);
      CAPTURE(c.at);
      TempDir dir("signal_part");
      manual_seed(5);
      auto model = make_model();
      auto log = std::make_shared<RecordingLogger>();
      auto raiser = std::make_shared<Raiser>();
      raiser->sig = c.sig;
      raiser->where = c.where;
      raiser->at = c.at;
      train::Trainer first(options(dir.str(), {raiser}, log));
      first.fit(*model, loader(24, 4, true), loader(8, 4, false));
      CHECK(first.interrupted());
      CHECK(first.received_signal() == c.sig);
      CHECK(first.global_step() == c.stopped_at);
      REQUIRE(log->finalized == std::vector<std::string>{"interrupted"});
      train::Checkpoint ck = train::Checkpoint::load(first.interrupted_checkpoint_path());
      CHECK(ck.state.at("global_step") == c.stopped_at);

      manual_seed(77);
      auto resumed_model = make_model();
      auto resumed_log = std::make_shared<RecordingLogger>();
      train::Trainer second(options(dir.str(), {}, resumed_log));
      second.fit(*resumed_model, loader(24, 4, true), loader(8, 4, false), {.ckpt_path = "interrupted"});
      CHECK_FALSE(second.interrupted());
      CHECK(flat_params(*resumed_model) == flat_params(*full_model));
      auto rows = log->rows;
      rows.insert(rows.end(), resumed_log->rows.begin(), resumed_log->rows.end());
      CHECK(rows == full_log->rows);
    }
    // Outside fit the program's own handler is back.
    std::raise(SIGUSR1);
    CHECK(own_handler_calls == 1);
    std::signal(SIGUSR1, previous);

    TempDir empty("signal_none");
    Tiny m;
    train::Trainer t(options(empty.str(), {}, std::make_shared<RecordingLogger>()));
    CHECK(throws_with<ValueError>([&] { t.fit(m, loader(8, 4, false), nullptr, {.ckpt_path = "interrupted"}); },
                                  "no run under this default_root_dir was stopped by a signal"));
  }

  TEST_CASE("exact resume from inside a gradient-accumulation window: the window's gradients are saved") {
    // accumulate_grad_batches = 3 over 6 batches per epoch; a signal after batch k stops the run there,
    // inside a window when k + 1 is not a multiple of 3. The resumed run's next step must sum the same
    // three batches as the uninterrupted run's.
    auto options = [](const std::string& root) {
      return quiet({.max_epochs = 2,
                    .accumulate_grad_batches = 3,
                    .num_sanity_val_steps = 0,
                    .callbacks = {},
                    .default_root_dir = root});
    };
    auto make_model = [] {
      auto m = std::make_unique<Tiny>();
      m->use_adam = true;
      return m;
    };
    manual_seed(3);
    auto full_model = make_model();
    TempDir full_dir("accumulate_full");
    train::Trainer full(options(full_dir.str()));
    full.fit(*full_model, loader(24, 4, true), loader(8, 4, false));
    REQUIRE(full.global_step() == 4);

    struct RaiseAfter : train::Callback {
      int64_t batch = 0;
      void on_train_batch_end(train::Trainer& t, train::TrainModule&, const Tensor&, const data::Batch&,
                              int64_t i) override {
        if (t.current_epoch() == 0 && i == batch) std::raise(SIGTERM);
      }
    };
    for (int64_t batch : {0, 1, 4}) {
      CAPTURE(batch);
      TempDir dir("accumulate_part");
      manual_seed(3);
      auto model = make_model();
      auto raiser = std::make_shared<RaiseAfter>();
      raiser->batch = batch;
      auto o = options(dir.str());
      o.callbacks = {raiser};
      train::Trainer first(o);
      first.fit(*model, loader(24, 4, true), loader(8, 4, false));
      REQUIRE(first.interrupted());
      train::Checkpoint ck = train::Checkpoint::load(first.interrupted_checkpoint_path());
      CHECK(ck.state.at("loops").at("grads_pending") == true);
      CHECK(ck.tensors.count("accumulated_grads.fc.weight") == 1);
      CHECK(ck.weights().count("accumulated_grads.fc.weight") == 0);

      manual_seed(77);
      auto resumed_model = make_model();
      train::Trainer second(options(dir.str()));
      second.fit(*resumed_model, loader(24, 4, true), loader(8, 4, false), {.ckpt_path = "interrupted"});
      CHECK(second.global_step() == full.global_step());
      CHECK(flat_params(*resumed_model) == flat_params(*full_model));
    }
  }

  TEST_CASE("exact resume with the sanity check on, from a checkpoint taken at any point of the loops") {
    // A checkpoint written from a hook (a batch, the epoch's last batch, a validation batch, validation
    // end, epoch end, the sanity check) and a crash right after it: the run resumed from that file ends
    // with the uninterrupted run's weights, logger rows, and ModelCheckpoint/EarlyStopping state.
    struct StepLogging : Tiny {
      void validation_step(const data::Batch& b, int64_t i) override {
        Tiny::validation_step(b, i);  // plus a per-batch row, so a repeated validation must stay quiet
        log("val_batch_loss", nn::functional::cross_entropy(forward(b.input), b.target),
            {.on_step = true, .on_epoch = false});
      }
    };
    // Saves at the n-th call of one hook, then crashes. A ModelCheckpoint (inert itself), so that it runs
    // after the other callbacks, as every ModelCheckpoint does.
    struct Saver : train::ModelCheckpoint {
      std::string hook, path;
      int64_t n = 0, calls = 0;
      Saver(std::string dir, std::string h, int64_t at)
          : ModelCheckpoint({.dirpath = dir, .save_last = false, .save_top_k = 0}), hook(std::move(h)), n(at) {}
      std::string state_key() const override { return "Saver"; }
      void hit(train::Trainer& t, const char* here) {
        if (hook != here || calls++ != n) return;
        t.save_checkpoint(path);
        throw std::runtime_error("simulated crash");
      }
      void on_train_batch_end(train::Trainer& t, train::TrainModule& m, const Tensor& l, const data::Batch& b,
                              int64_t i) override {
        ModelCheckpoint::on_train_batch_end(t, m, l, b, i);
        hit(t, "train_batch_end");
      }
      void on_validation_batch_end(train::Trainer& t, train::TrainModule&, const data::Batch&, int64_t) override {
        hit(t, t.sanity_checking() ? "sanity_batch_end" : "val_batch_end");
      }
      void on_validation_end(train::Trainer& t, train::TrainModule& m) override {
        ModelCheckpoint::on_validation_end(t, m);
        if (!t.sanity_checking()) hit(t, "val_end");
      }
      void on_sanity_check_end(train::Trainer& t, train::TrainModule&) override { hit(t, "sanity_end"); }
      void on_train_epoch_end(train::Trainer& t, train::TrainModule& m) override {
        ModelCheckpoint::on_train_epoch_end(t, m);
        hit(t, "epoch_end");
      }
    };
    struct Run {
      std::unique_ptr<StepLogging> model = std::make_unique<StepLogging>();
      std::shared_ptr<RecordingLogger> log = std::make_shared<RecordingLogger>();
      std::shared_ptr<train::ModelCheckpoint> mc;
      std::shared_ptr<train::EarlyStopping> es;
      std::unique_ptr<train::Trainer> trainer;
      Run(const TempDir& dir, bool monitored, std::shared_ptr<Saver> saver) {
        model->use_adam = true;
        std::vector<train::CallbackPtr> cbs;
        if (saver) cbs.push_back(saver);  // listed first: still runs after the EarlyStopping
        if (monitored) {
          mc = std::make_shared<train::ModelCheckpoint>(train::ModelCheckpointOptions{
              .dirpath = (dir.path / "ckpt").string(), .monitor = "val_loss", .save_last = true});
          es = std::make_shared<train::EarlyStopping>(
              train::EarlyStoppingOptions{.monitor = "val_loss", .min_delta = 0.02, .patience = 3});
          cbs.push_back(mc);
          cbs.push_back(es);
        }
        // 6 training batches an epoch, validation after batches 3 and 6 over 3 shuffled batches, the
        // default sanity check (2 batches).
        trainer = std::make_unique<train::Trainer>(quiet({.max_epochs = 3,
                                                          .val_check_interval = 0.5,
                                                          .log_every_n_steps = 1,
                                                          .callbacks = cbs,
                                                          .loggers = {log},
                                                          .default_root_dir = dir.str()}));
      }
      void fit(const std::string& ckpt = "") {
        trainer->fit(*model, loader(24, 4, true), loader(12, 4, true, 2), {.ckpt_path = ckpt});
      }
    };
    for (bool monitored : {false, true}) {
      CAPTURE(monitored);
      TempDir full_dir("anypoint_full");
      manual_seed(21);
      Run full(full_dir, monitored, nullptr);
      full.fit();
      struct Point {
        const char* hook;
        int64_t n;
      };
      for (const Point& p : {Point{"train_batch_end", 1}, Point{"train_batch_end", 5}, Point{"train_batch_end", 8},
                             Point{"val_batch_end", 0}, Point{"val_batch_end", 4}, Point{"val_end", 1},
                             Point{"epoch_end", 0}, Point{"sanity_batch_end", 1}, Point{"sanity_end", 0}}) {
        const std::string hook = p.hook;
        CAPTURE(hook);
        CAPTURE(p.n);
        TempDir dir("anypoint_part");
        manual_seed(21);
        auto saver = std::make_shared<Saver>(dir.str(), p.hook, p.n);
        saver->path = (dir.path / "crash.safetensors").string();
        Run first(dir, monitored, saver);
        CHECK(throws_with<std::runtime_error>([&] { first.fit(); }, "simulated crash"));
        REQUIRE(fs::exists(saver->path));

        manual_seed(999);  // the resumed run takes its RNG state from the checkpoint
        Run resumed(dir, monitored, nullptr);
        resumed.fit(saver->path);
        CHECK(resumed.trainer->global_step() == full.trainer->global_step());
        CHECK(resumed.trainer->current_epoch() == full.trainer->current_epoch());
        CHECK(flat_params(*resumed.model) == flat_params(*full.model));
        auto rows = first.log->rows;
        rows.insert(rows.end(), resumed.log->rows.begin(), resumed.log->rows.end());
        CHECK(rows == full.log->rows);
        CHECK(resumed.trainer->callback_metrics() == full.trainer->callback_metrics());
        if (monitored) {
          CHECK(resumed.es->state_dict() == full.es->state_dict());
          CHECK(resumed.mc->best_model_score() == full.mc->best_model_score());
          CHECK(fs::path(resumed.mc->best_model_path()).filename() == fs::path(full.mc->best_model_path()).filename());
        }
      }
    }
    // A user's lookup of a metric that is not there names it and what is there, as an ember error.
    TempDir dir("anypoint_lookup");
    manual_seed(21);
    Run run(dir, false, nullptr);
    run.fit();
    CHECK(throws_with<ValueError>([&] { (void)run.trainer->callback_metrics().at("val_acc_missing"); },
                                  "no metric 'val_acc_missing'"));
    CHECK(run.trainer->callback_metrics().at("val_loss") == run.trainer->callback_metrics().at("val_loss"));
  }

  TEST_CASE("a checkpoint's run state is untrusted: a bad field is a FormatError naming the file, field and value") {
    TempDir dir("runstate");
    const std::string good = (dir.path / "good.safetensors").string();
    auto first = [&] {
      struct At3 : train::Callback {
        std::string path;
        void on_train_batch_end(train::Trainer& t, train::TrainModule&, const Tensor&, const data::Batch&,
                                int64_t) override {
          if (t.global_step() == 3) t.save_checkpoint(path);
        }
      };
      auto at3 = std::make_shared<At3>();
      at3->path = good;
      Tiny m;
      m.use_adam = true;
      train::Trainer t(quiet({.max_epochs = 1, .callbacks = {at3}}));
      t.fit(m, loader(24, 4, true), loader(8, 4, false));
    };
    first();
    const train::Checkpoint ck = train::Checkpoint::load(good);
    auto resume = [&](const std::function<void(nlohmann::json&)>& damage) {
      train::Checkpoint bad = ck;
      damage(bad.state);
      const std::string path = (dir.path / "bad.safetensors").string();
      bad.save(path);
      Tiny m;
      m.use_adam = true;
      train::Trainer t(quiet({.max_epochs = 2}));
      t.fit(m, loader(24, 4, true), loader(8, 4, false), {.ckpt_path = path});
    };
    struct Case {
      const char* field;
      std::function<void(nlohmann::json&)> damage;
      const char* says;
    };
    const std::vector<Case> cases = {
        {"loops.accumulate_grad_batches", [](auto& s) { s["loops"]["accumulate_grad_batches"] = 0; }, "= 0"},
        {"global_step", [](auto& s) { s["global_step"] = -3; }, "= -3"},
        {"epoch", [](auto& s) { s["epoch"] = int64_t(1) << 62; }, "= 4611686018427387904"},
        {"loops.batches_this_epoch", [](auto& s) { s["loops"]["batches_this_epoch"] = 7; }, "= 7"},
        {"loops.batches_total", [](auto& s) { s["loops"]["batches_total"] = "three"; }, "must be an integer"},
        {"loops.step_before_batch", [](auto& s) { s["loops"]["step_before_batch"] = 99; }, "= 99"},
        {"loops.elapsed_s", [](auto& s) { s["loops"]["elapsed_s"] = -1.5; }, "= -1.5"},
        {"loops.tail_pending", [](auto& s) { s["loops"]["tail_pending"] = 1; }, "true or false"},
        {"rng.seed", [](auto& s) { s["rng"]["seed"] = -1; }, "non-negative integer"},
        {"optimizer_states", [](auto& s) { s["optimizer_states"].push_back(s["optimizer_states"][0]); }, "gave 1"},
        {"optimizer_states.0", [](auto& s) { s["optimizer_states"][0][0]["lr"] = "fast"; }, "optimizer_states.0"},
        {"metrics", [](auto& s) { s["metrics"]["train"]["train_loss"]["reduce"] = "median"; }, "median"},
        {"train_loader", [](auto& s) { s["train_loader"]["batches_yielded"] = 1000; }, "1000"},
        {"loops.validation.at",
         [](auto& s) {
           s["loops"]["validation"] = {{"at", "lunch"}, {"rows_sent", 0}};
         },
         "lunch"},
        {"loops.epoch_done", [](auto& s) { s["loops"].erase("epoch_done"); }, "missing"},
    };
    for (const Case& c : cases) {
      CAPTURE(c.field);
      std::string message;
      try {
        resume(c.damage);
      } catch (const FormatError& e) {
        message = e.what();
      }
      CHECK(message.find("bad.safetensors") != std::string::npos);
      CHECK(message.find(std::string("'") + c.field + "'") != std::string::npos);
      CHECK(message.find(c.says) != std::string::npos);
      if (message.empty()) MESSAGE("no FormatError");
    }
    // The undamaged state resumes.
    CHECK_NOTHROW(resume([](nlohmann::json&) {}));
  }

  TEST_CASE("checkpoint checksums: a flipped data byte or a changed dtype is reported with the tensor's name") {
    TempDir dir("checksum");
    const std::string path = (dir.path / "ck.safetensors").string();
    Tiny m;
    train::Trainer t(quiet({.max_epochs = 1}));
    t.fit(m, loader(8, 4, false));
    t.save_checkpoint(path);
    std::string bytes;
    {
      std::ifstream in(path, std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    uint64_t header_len = 0;
    std::memcpy(&header_len, bytes.data(), 8);
    const nlohmann::json header = nlohmann::json::parse(bytes.substr(8, header_len));
    REQUIRE(header["__metadata__"].contains("ember_integrity"));
    std::string first;  // the tensor whose data comes first
    for (const auto& [name, info] : header.items())
      if (name != "__metadata__" && info["data_offsets"][0] == 0) first = name;
    REQUIRE(!first.empty());
    auto write = [&](const std::string& b) {
      const std::string p = (dir.path / "damaged.safetensors").string();
      std::ofstream(p, std::ios::binary) << b;
      return p;
    };
    std::string flipped = bytes;
    flipped[8 + header_len + 1] ^= 0x10;
    CHECK(throws_with<IOError>([&] { train::Checkpoint::load(write(flipped)); },
                               "tensor '" + first + "' does not match its checksum"));
    CHECK_NOTHROW(train::Checkpoint::load(write(flipped), {.verify_checksums = false}));  // opted out
    // F32 -> I32 in the header: the same bytes read as another dtype.
    std::string retyped = bytes;
    const size_t at = retyped.find("\"F32\"");
    REQUIRE(at < 8 + header_len);
    retyped.replace(at, 5, "\"I32\"");
    CHECK(throws_with<IOError>([&] { train::Checkpoint::load(write(retyped)); }, "does not match its checksum"));
    // A checkpoint without checksums (written elsewhere) still loads.
    train::Checkpoint ck = train::Checkpoint::load(path);
    const std::string plain = (dir.path / "plain.safetensors").string();
    save(plain, ck.tensors, {{"ember_checkpoint", ck.state.dump()}});
    CHECK(train::Checkpoint::load(plain).tensors.size() == ck.tensors.size());
  }

  TEST_CASE("ModelCheckpoint: top-k by a monitor, file name templates, last, best for validate") {
    TempDir dir("topk");
    // A validation metric that follows a fixed sequence: 5, 3, 4, 1, 2 (min mode keeps 1 and 3... top 2).
    struct Seq : Tiny {
      std::vector<double> values{5, 3, 4, 1, 2};
      void validation_step(const data::Batch&, int64_t) override {
        if (!trainer().sanity_checking()) log("score", values.at(std::min<size_t>(size_t(current_epoch()), 4)));
      }
    } m;
    auto mc = std::make_shared<train::ModelCheckpoint>(train::ModelCheckpointOptions{.dirpath = dir.str(),
                                                                                     .filename = "{epoch}-{score:.1f}",
                                                                                     .monitor = "score",
                                                                                     .save_last = true,
                                                                                     .save_top_k = 2});
    train::Trainer t(quiet({.max_epochs = 5, .callbacks = {mc}}));
    t.fit(m, loader(8, 4, false), loader(4, 4, false));
    std::set<std::string> files;
    for (const auto& e : fs::directory_iterator(dir.path)) files.insert(e.path().filename().string());
    CHECK(files ==
          std::set<std::string>{"epoch=3-score=1.0.safetensors", "epoch=4-score=2.0.safetensors", "last.safetensors"});
    CHECK(mc->best_model_path() == (dir.path / "epoch=3-score=1.0.safetensors").string());
    CHECK(*mc->best_model_score() == 1.0);
    CHECK(train::Checkpoint::load(mc->best_model_path()).state.at("epoch") == 3);
    CHECK(train::Checkpoint::load(mc->last_model_path()).state.at("epoch") == 4);
    auto best = t.validate(m, loader(8, 4, false), {.ckpt_path = "best"});
    CHECK(best.size() == 1);

    // Without a monitor: the latest only; every_n_train_steps names by step; a name in use gets -v1.
    TempDir dir2("latest");
    auto latest = std::make_shared<train::ModelCheckpoint>(
        train::ModelCheckpointOptions{.dirpath = dir2.str(), .every_n_train_steps = 3});
    Tiny m2;
    train::Trainer t2(quiet({.max_epochs = 2, .callbacks = {latest}}));
    t2.fit(m2, loader(16, 4, false));  // 8 steps: saves at 3 and 6, the latest kept
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir2.path)) names.push_back(e.path().filename().string());
    CHECK(names == std::vector<std::string>{"epoch=1-step=6.safetensors"});
    CHECK(latest->format_checkpoint_name({{"epoch", 2}, {"step", 10}}) == "epoch=2-step=10");

    CHECK_THROWS_AS(train::ModelCheckpoint({.save_top_k = 3}), ValueError);  // top 3 of what?
    CHECK_THROWS_AS(train::ModelCheckpoint({.mode = "best"}), ValueError);
    auto missing = std::make_shared<train::ModelCheckpoint>(
        train::ModelCheckpointOptions{.dirpath = dir2.str(), .monitor = "nope"});
    Tiny m3;
    train::Trainer t3(quiet({.max_epochs = 1, .callbacks = {missing}}));
    CHECK(throws_with<ValueError>([&] { t3.fit(m3, loader(8, 4, false)); }, "monitor 'nope' was not logged"));
  }

  TEST_CASE("EarlyStopping: patience in validation checks, min_delta, thresholds, non-finite values") {
    auto run = [](std::vector<double> values, train::EarlyStoppingOptions o) {
      struct Seq : Tiny {
        std::vector<double> values;
        void validation_step(const data::Batch&, int64_t) override {
          if (!trainer().sanity_checking()) log("metric", values.at(size_t(current_epoch())));
        }
      } m;
      m.values = std::move(values);
      o.monitor = "metric";
      auto es = std::make_shared<train::EarlyStopping>(o);
      train::Trainer t(quiet({.max_epochs = int64_t(m.values.size()), .callbacks = {es}}));
      t.fit(m, loader(8, 4, false), loader(4, 4, false));
      return std::make_pair(t.current_epoch(), es->stopping_reason());
    };
    CHECK(run({5, 4, 4, 4, 4, 4, 4}, {.patience = 3}).first == 5);  // no improvement in epochs 2, 3, 4
    CHECK(run({5, 4, 3.95, 3.9, 3.85, 3.8, 3.7}, {.min_delta = 0.1, .patience = 2}).first == 4);
    CHECK(run({1, 2, 3, 4, 5}, {.patience = 1, .mode = "max"}).first == 5);  // always improving
    auto [epochs, reason] = run({5, 4, NAN, 3, 2}, {.patience = 5});
    CHECK(epochs == 3);
    CHECK(reason.find("not finite") != std::string::npos);
    CHECK(run({5, 4, 0.5, 0.4}, {.stopping_threshold = 1.0}).first == 3);
    CHECK(run({5, 4, 50, 3}, {.divergence_threshold = 10.0}).first == 3);
    CHECK_THROWS_AS(train::EarlyStopping({}), ValueError);
    // Its state survives a checkpoint round trip.
    train::EarlyStopping es({.monitor = "m"});
    nlohmann::json s = es.state_dict();
    train::EarlyStopping es2({.monitor = "m"});
    es2.load_state_dict(nlohmann::json::parse(s.dump()));
    CHECK(es2.best_score() == INFINITY);
  }

}  // TEST_SUITE
