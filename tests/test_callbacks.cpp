// Tests of the built-in callbacks (train/callbacks): ModelSummary's table against Lightning's, tqdm's
// formatting against tqdm's own output, the progress bar's plain and live modes, Timer, the gradient
// accumulation schedule, LambdaCallback's hooks, and end-to-end runs of Trainer::fit with them.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "ember.hpp"
#include "train/callbacks/callbacks.hpp"
#include "train/trainer.hpp"
#include "trainer_fixtures.hpp"

using namespace ember;
using namespace ember::train;
using trainer_test::regression_loader;
using trainer_test::run_options;
using trainer_test::TinyRegression;

namespace {

// Lightning's ModelSummary test model: a Sequential, a frozen head, one layer registered twice, a
// BatchNorm in eval mode and a parameter on the root.
struct SummaryModel : nn::Module {
  nn::Sequential net{nn::Linear(64, 128), nn::ReLU(), nn::Linear(128, 10)};
  nn::Linear head{10, 2};
  nn::Linear shared{4, 4};
  nn::BatchNorm1d bn{10};
  SummaryModel() {
    register_module("net", net);
    register_module("head", head);
    register_module("shared", shared);
    register_module("shared_again", shared);
    register_module("bn", bn);
    register_parameter("scale", ones({3}));
    head->requires_grad_(false);
    bn->eval();
  }
};

// A bare Trainer for driving hooks by hand (no loggers, nothing written).
TrainerOptions bare_options() {
  return {.enable_checkpointing = false, .enable_progress_bar = false, .enable_model_summary = false, .logger = false};
}

// A progress bar whose totals are set by the test (a bare Trainer reports no batches).
struct FixedTotals : ProgressBar {
  using ProgressBar::ProgressBar;
  int64_t train = -1, val = -1, test = 3;
  int64_t total_train_batches(const Trainer&) const override { return train; }
  int64_t total_val_batches(const Trainer&) const override { return val; }
  int64_t total_test_batches(const Trainer&) const override { return test; }
};

// Records every log_metrics call (the loggers' side of LearningRateMonitor).
struct RecordingLogger : Logger {
  std::vector<std::pair<int64_t, MetricMap>> rows;
  std::string name() const override { return "recording"; }
  std::string version() const override { return "version_3"; }
  std::string log_dir() const override { return (std::filesystem::temp_directory_path() / "ember_cb_unused").string(); }
  void log_metrics(const std::map<std::string, double>& metrics, int64_t step) override {
    rows.emplace_back(step, metrics);
  }
  void log_hyperparams(const nlohmann::json& /*params*/) override {}
  // (step, value) of every row holding `key`.
  std::vector<std::pair<int64_t, double>> series(const std::string& key) const {
    std::vector<std::pair<int64_t, double>> out;
    for (const auto& [step, m] : rows)
      if (auto it = m.find(key); it != m.end()) out.emplace_back(step, it->second);
    return out;
  }
};

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + what.size())) ++n;
  return n;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream is(text);
  for (std::string line; std::getline(is, line);) out.push_back(line);
  return out;
}

}  // namespace

TEST_SUITE("callbacks") {
  // ------------------------------------------------------------------ ModelSummary

  TEST_CASE("callbacks: human_readable_count matches Lightning's get_human_readable_count") {
    CHECK(human_readable_count(0) == "0  ");
    CHECK(human_readable_count(123) == "123  ");
    CHECK(human_readable_count(1000) == "1.0 K");
    CHECK(human_readable_count(1234) == "1.2 K");
    CHECK(human_readable_count(99'950) == "100.0 K");
    CHECK(human_readable_count(999'999) == "999 K");
    CHECK(human_readable_count(2'000'000) == "2.0 M");
    CHECK(human_readable_count(3'000'000'000) == "3.0 B");
    CHECK(human_readable_count(400'000'000'000'000) == "400 T");
    CHECK(human_readable_count(5'000'000'000'000'000) == "5,000 T");
    CHECK_THROWS_AS(human_readable_count(-1), ValueError);
  }

  TEST_CASE("callbacks: summarize counts parameters as PyTorch does (shared once, frozen, leftovers)") {
    SummaryModel m;
    // Linear(64, 128) = 64*128 + 128 = 8320; Linear(128, 10) = 1290; Linear(10, 2) = 22; Linear(4, 4) = 20;
    // BatchNorm1d(10) = 20 (weight and bias; running stats are buffers); scale = 3.
    auto rows = summarize(m, 1);
    REQUIRE(rows.size() == 5);
    CHECK(rows[0].name == "net");
    CHECK(rows[0].type == "Sequential");
    CHECK(rows[0].params == 9610);
    CHECK(rows[1].name == "head");
    CHECK(rows[1].params == 22);
    CHECK(rows[1].trainable_params == 0);
    CHECK(rows[2].name == "shared");  // "shared_again" is the same module: listed once
    CHECK(rows[2].params == 20);
    CHECK(rows[3].type == "BatchNorm1d");
    CHECK_FALSE(rows[3].training);
    CHECK(rows[4].name == "other params");
    CHECK(rows[4].type == "n/a");
    CHECK(rows[4].params == 3);

    const ModelSummaryData data = summarize_model(m, 1);
    CHECK(data.total_params == 9675);
    CHECK(data.trainable_params == 9653);
    CHECK(data.modules_in_train_mode == 6);
    CHECK(data.modules_in_eval_mode == 1);
    CHECK(data.model_size_mb == doctest::Approx(9675 * 4e-6));
    CHECK(summarize_model(m, 1, 64).model_size_mb == doctest::Approx(9675 * 8e-6));

    auto deep = summarize(m, -1);  // nested layers overlap their parents: no leftover row
    REQUIRE(deep.size() == 7);
    const char* names[] = {"net", "net.0", "net.1", "net.2", "head", "shared", "bn"};
    const int64_t params[] = {9610, 8320, 0, 1290, 22, 20, 20};
    for (size_t i = 0; i < deep.size(); ++i) {
      CHECK(deep[i].name == names[i]);
      CHECK(deep[i].params == params[i]);
    }
    CHECK(deep[2].type == "ReLU");
    CHECK(summarize(m, 2).size() == 7);
    auto none = summarize(m, 0);
    REQUIRE(none.size() == 1);
    CHECK(none[0].params == 9675);
    CHECK_THROWS_AS(summarize(m, -2), ValueError);
  }

  TEST_CASE("callbacks: format_summary prints Lightning's table") {
    SummaryModel m;
    // Lightning 2.6's _format_summary_table for the same PyTorch model, without its FLOPs column and line.
    const std::string depth1 =
        "  | Name         | Type        | Params | Mode \n"
        "-----------------------------------------------------\n"
        "0 | net          | Sequential  | 9.6 K  | train\n"
        "1 | head         | Linear      | 22     | train\n"
        "2 | shared       | Linear      | 20     | train\n"
        "3 | bn           | BatchNorm1d | 20     | eval \n"
        "  | other params | n/a         | 3      | n/a  \n"
        "-----------------------------------------------------\n"
        "9.7 K     Trainable params\n"
        "22        Non-trainable params\n"
        "9.7 K     Total params\n"
        "0.039     Total estimated model params size (MB)\n"
        "6         Modules in train mode\n"
        "1         Modules in eval mode";
    CHECK(format_summary(m, 1) == depth1);
    const std::string deep =
        "  | Name   | Type        | Params | Mode \n"
        "-----------------------------------------------\n"
        "0 | net    | Sequential  | 9.6 K  | train\n"
        "1 | net.0  | Linear      | 8.3 K  | train\n"
        "2 | net.1  | ReLU        | 0      | train\n"
        "3 | net.2  | Linear      | 1.3 K  | train\n"
        "4 | head   | Linear      | 22     | train\n"
        "5 | shared | Linear      | 20     | train\n"
        "6 | bn     | BatchNorm1d | 20     | eval \n"
        "-----------------------------------------------\n"
        "9.7 K     Trainable params\n"
        "22        Non-trainable params\n"
        "9.7 K     Total params\n"
        "0.039     Total estimated model params size (MB)\n"
        "6         Modules in train mode\n"
        "1         Modules in eval mode";
    CHECK(format_summary(m, -1) == deep);
    CHECK(precision_bits("64") == 64);
    CHECK(precision_bits("bf16-true") == 16);
    CHECK(precision_bits("16-mixed") == 32);
  }

  // ------------------------------------------------------------------ tqdm formatting

  TEST_CASE("callbacks: progress formatting matches tqdm and Lightning's Tqdm") {
    CHECK(format_interval(0) == "00:00");
    CHECK(format_interval(2.7) == "00:02");
    CHECK(format_interval(65) == "01:05");
    CHECK(format_interval(3723) == "1:02:03");
    CHECK(format_interval(360000) == "100:00:00");

    // Lightning's Tqdm.format_num, value by value.
    const std::pair<double, const char*> nums[] = {
        {0.123, "0.123"},  {0.5, "0.500"},          {1.0, "1.000"},        {123.456, "123.0"},
        {1e-5, "1e-5"},    {12345.6, "12345.6"},    {0.12345678, "0.123"}, {2.0 / 3, "0.667"},
        {-0.5, "-0.50"},   {1234.5678, "1.23e+3"},  {100.0, "100.0"},      {3.0, "3.000"},
        {1e20, "1e+20"},   {0.0001234, "0.000123"}, {-2.0, "-2.00"},       {0.0, "0.000"},
        {99999.0, "1e+5"}, {123456.0, "1.23e+5"}};
    for (const auto& [v_, s] : nums) {
      // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
      const auto& v = v_;
      CAPTURE(v);
      CHECK(format_metric_value(v) == s);
    }
    CHECK(format_metric_value(std::nan("")) == "nan.0");
    CHECK(format_metric_value(std::numeric_limits<double>::infinity()) == "inf.0");

    const std::pair<double, const char*> reprs[] = {{0.1, "0.1"},
                                                    {1e-5, "1e-05"},
                                                    {100.0, "100.0"},
                                                    {1e16, "1e+16"},
                                                    {1.5e-4, "0.00015"},
                                                    {0.0001, "0.0001"},
                                                    {123456789.0, "123456789.0"},
                                                    {1e-7, "1e-07"},
                                                    {2.5e22, "2.5e+22"},
                                                    {1.0 / 3, "0.3333333333333333"},
                                                    {1e15, "1000000000000000.0"}};
    for (const auto& [v_, s] : reprs) {
      // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
      const auto& v = v_;
      CAPTURE(v);
      CHECK(python_float_repr(v) == s);
    }

    CHECK(render_bar(0.45, 10, true) == "####5     ");
    CHECK(render_bar(0.45, 10) == "\u2588\u2588\u2588\u2588\u258C     ");
    CHECK(render_bar(1.0, 10, true) == "##########");
    CHECK(render_bar(0.0, 10, true) == "          ");
    CHECK(render_bar(0.333, 7, true) == "##3    ");

    // tqdm.format_meter(..., bar_format=TQDMProgressBar.BAR_FORMAT) for the same numbers.
    ProgressState s{.desc = "Epoch 3", .n = 45, .total = 100, .elapsed = 2.1, .postfix = "v_num=0, loss=0.123"};
    CHECK(format_meter(s, 0, true) == "Epoch 3:  45%|####5     | 45/100 [00:02<00:02, 21.43it/s, v_num=0, loss=0.123]");
    CHECK(format_meter(s, 80, true) ==
          "Epoch 3:  45%|#####4      | 45/100 [00:02<00:02, 21.43it/s, v_num=0, loss=0.123]");
    CHECK(format_meter(s, 80) ==
          "Epoch 3:  45%|\u2588\u2588\u2588\u2588\u2588\u258D      | 45/100 [00:02<00:02, 21.43it/s, v_num=0, "
          "loss=0.123]");
    CHECK(format_meter(s, 30).size() < format_meter(s, 80).size());  // trimmed to the width
    CHECK(format_meter({.desc = "Epoch 0", .n = 0, .total = 4, .elapsed = 0}, 0, true) ==
          "Epoch 0:   0%|          | 0/4 [00:00<?, ?it/s]");
    CHECK(format_meter({.desc = "Epoch 3", .n = 5000, .total = 10000, .elapsed = 4000}, 0, true) ==
          "Epoch 3:  50%|#####     | 5000/10000 [1:06:40<1:06:40,  1.25it/s]");
    // An unknown total: no bar, no ETA (tqdm would print 00:00 there).
    CHECK(format_meter({.desc = "Epoch 3", .n = 45, .total = -1, .elapsed = 2.1, .postfix = "loss=0.123"}, 0, true) ==
          "Epoch 3: |          | 45/? [00:02<?, 21.43it/s, loss=0.123]");

    // tqdm's bar-less line (ncols=0).
    CHECK(format_progress_line(s) == "Epoch 3:  45% 45/100 [00:02<00:02, 21.43it/s, v_num=0, loss=0.123]");
    CHECK(format_progress_line({.desc = "Epoch 0", .n = 2, .total = 20, .elapsed = 1.0}) ==
          "Epoch 0:  10% 2/20 [00:01<00:09,  2.00it/s]");
    CHECK(format_progress_line({.desc = "Epoch 1", .n = 7, .total = -1, .elapsed = 2.0}) ==
          "Epoch 1: 7/? [00:02<?,  3.50it/s]");
  }

  // ------------------------------------------------------------------ ProgressBar driven by hand

  TEST_CASE("callbacks: ProgressBar prints plain lines at intervals when not on a terminal") {
    Trainer trainer(bare_options());
    TinyRegression module;
    data::Batch batch;
    double t = 0;
    std::ostringstream os;
    FixedTotals bar({.tty = false, .stream = &os, .plain_min_seconds = 0});
    CHECK_FALSE(bar.is_tty());
    bar.set_clock([&] { return t; });
    bar.train = 20;
    bar.val = 5;
    bar.on_train_start(trainer, module);
    bar.on_train_epoch_start(trainer, module);
    for (int64_t i = 0; i < 20; ++i) {
      t += 0.5;
      bar.on_train_batch_end(trainer, module, Tensor(), batch, i);
    }
    bar.on_validation_start(trainer, module);
    for (int64_t i = 0; i < 5; ++i) bar.on_validation_batch_end(trainer, module, batch, i);
    t += 1;
    bar.on_validation_end(trainer, module);
    bar.on_train_epoch_end(trainer, module);

    // An epoch of unknown length: a line every log_every_n_steps (50) batches, plus the epoch's end.
    bar.train = -1;
    t = 100;
    bar.on_train_epoch_start(trainer, module);
    for (int64_t i = 0; i < 120; ++i) {
      t += 0.5;
      bar.on_train_batch_end(trainer, module, Tensor(), batch, i);
    }
    bar.on_train_epoch_end(trainer, module);
    bar.on_train_end(trainer, module);

    bar.on_test_start(trainer, module);
    for (int64_t i = 0; i < 3; ++i) bar.on_test_batch_end(trainer, module, batch, i);
    bar.on_test_end(trainer, module);

    const auto lines = lines_of(os.str());
    REQUIRE(lines.size() == 10 + 3 + 3);
    // About ten lines per epoch: every ceil(20 / 10) = 2 batches.
    CHECK(lines[0] == "Epoch 0:  10% 2/20 [00:01<00:09,  2.00it/s]");
    CHECK(lines[4] == "Epoch 0:  50% 10/20 [00:05<00:05,  2.00it/s]");
    CHECK(lines[9] == "Epoch 0: 100% 20/20 [00:11<00:00,  1.82it/s]");  // at the epoch end, after validation
    // Validation at the epoch's end: no line of its own (the epoch's last line carries its metrics).
    CHECK(lines[10] == "Epoch 0: 50/? [00:25<?,  2.00it/s]");
    CHECK(lines[11] == "Epoch 0: 100/? [00:50<?,  2.00it/s]");
    CHECK(lines[12] == "Epoch 0: 120/? [01:00<?,  2.00it/s]");
    CHECK(lines[13] == "Testing DataLoader 0:  33% 1/3 [00:00<?, ?it/s]");  // short: a line per batch
    CHECK(lines[15] == "Testing DataLoader 0: 100% 3/3 [00:00<?, ?it/s]");
    CHECK(os.str().find('\r') == std::string::npos);
  }

  TEST_CASE("callbacks: ProgressBar redraws one line in place on a terminal") {
    Trainer trainer(bare_options());
    TinyRegression module;
    data::Batch batch;
    double t = 0;
    std::ostringstream os;
    FixedTotals bar({.tty = true, .stream = &os, .ascii = true});
    CHECK(bar.is_tty());
    bar.set_clock([&] { return t; });
    bar.train = 4;
    bar.val = 2;
    bar.on_train_start(trainer, module);
    bar.on_train_epoch_start(trainer, module);
    for (int64_t i = 0; i < 4; ++i) {
      t += 1;
      bar.on_train_batch_end(trainer, module, Tensor(), batch, i);
    }
    bar.on_validation_start(trainer, module);  // inside fit: drawn below the training bar, then cleared
    t += 1;
    bar.on_validation_batch_end(trainer, module, batch, 0);
    bar.on_validation_batch_end(trainer, module, batch, 1);
    bar.on_validation_end(trainer, module);
    bar.on_train_epoch_end(trainer, module);
    bar.on_train_end(trainer, module);
    const std::string out = os.str();
    CHECK(out.starts_with("\rEpoch 0:   0%|          | 0/4 [00:00<?, ?it/s]\x1b[K"));
    CHECK(out.find("\rEpoch 0:  50%|#####     | 2/4 [00:02<00:02,  1.00it/s]\x1b[K") != std::string::npos);
    CHECK(out.find("\rEpoch 0: 100%|##########| 4/4 [00:04<00:00,  1.00it/s]\x1b[K") != std::string::npos);
    CHECK(out.find("\n\rValidation DataLoader 0:   0%|          | 0/2 [00:00<?, ?it/s]\x1b[K\x1b[A\r") !=
          std::string::npos);
    CHECK(out.find("\n\rValidation DataLoader 0: 100%|##########| 2/2 [00:01<00:00,  2.00it/s]\x1b[K\x1b[A\r") !=
          std::string::npos);
    CHECK(out.find("\n\r\x1b[K\x1b[A\r") != std::string::npos);  // the validation line cleared
    CHECK(out.ends_with("\n"));                                  // the training bar stays
    CHECK(count_of(out, "\n") == 3 + 1 + 1);  // three validation draws, its clearing, the final newline

    // leave = true: a line per epoch.
    std::ostringstream os2;
    FixedTotals kept({.leave = true, .tty = true, .stream = &os2, .ascii = true});
    kept.train = 1;
    kept.on_train_start(trainer, module);
    for (int epoch = 0; epoch < 3; ++epoch) {
      kept.on_train_epoch_start(trainer, module);
      kept.on_train_batch_end(trainer, module, Tensor(), batch, 0);
      kept.on_train_epoch_end(trainer, module);
    }
    kept.on_train_end(trainer, module);
    CHECK(count_of(os2.str(), "\n") == 3);
  }

  TEST_CASE("callbacks: ProgressBar with refresh_rate 0 prints nothing") {
    Trainer trainer(bare_options());
    TinyRegression module;
    std::ostringstream os;
    ProgressBar bar({.refresh_rate = 0, .tty = true, .stream = &os});
    CHECK_FALSE(bar.is_enabled());
    data::Batch batch;
    bar.on_train_start(trainer, module);
    bar.on_train_epoch_start(trainer, module);
    bar.on_train_batch_end(trainer, module, Tensor(), batch, 0);
    bar.on_train_epoch_end(trainer, module);
    bar.on_train_end(trainer, module);
    bar.on_test_start(trainer, module);
    bar.on_test_end(trainer, module);
    CHECK(os.str().empty());
    CHECK_THROWS_AS(ProgressBar({.refresh_rate = -1}), ValueError);
  }

  // ------------------------------------------------------------------ Timer

  TEST_CASE("callbacks: Timer parses durations and validates its options") {
    CHECK(parse_duration("00:12:00:00") == 43200);
    CHECK(parse_duration("1:00:00:01") == 86401);
    CHECK(parse_duration(" 00:00:01:30 ") == 90);
    CHECK(parse_duration("100:00:00:00") == 8'640'000);
    for (const char* bad : {"12:00:00", "00:1:00:00", "aa:00:00:00", "", "00:00:00:00:00", "-1:00:00:00"}) {
      CAPTURE(bad);
      CHECK_THROWS_AS(parse_duration(bad), ValueError);
    }
    CHECK(format_timedelta(5) == "0:00:05");
    CHECK(format_timedelta(3725.9) == "1:02:05");
    CHECK(format_timedelta(90061) == "1 day, 1:01:01");
    CHECK(format_timedelta(2 * 86400) == "2 days, 0:00:00");

    CHECK(Timer("00:00:01:00").duration() == 60.0);
    CHECK(Timer(std::chrono::minutes(2)).duration() == 120.0);
    CHECK(Timer(0).duration() == 0.0);
    CHECK(Timer(1.5).duration() == 1.5);
    CHECK_FALSE(Timer().duration().has_value());
    CHECK_THROWS_AS(Timer(10.0, "batch"), ValueError);
    CHECK_THROWS_AS(Timer("12:00"), ValueError);
  }

  TEST_CASE("callbacks: Timer stops at its budget, per step or per epoch, and resumes its budget") {
    Trainer trainer(bare_options());
    TinyRegression module;
    data::Batch batch;
    std::ostringstream msg;
    double t = 100;

    Timer timer(10.0, "step");
    timer.set_clock([&] { return t; });
    timer.set_output(msg);
    CHECK_FALSE(timer.start_time().has_value());
    CHECK(timer.time_elapsed() == 0);
    timer.on_fit_start(trainer, module);
    CHECK_FALSE(trainer.should_stop);
    timer.on_train_start(trainer, module);
    CHECK(timer.start_time("train") == 100);
    t = 105;
    timer.on_train_batch_end(trainer, module, Tensor(), batch, 0);
    CHECK_FALSE(trainer.should_stop);
    CHECK(timer.time_elapsed() == 5);
    CHECK(timer.time_remaining() == 5);
    t = 110;
    timer.on_train_batch_end(trainer, module, Tensor(), batch, 1);
    CHECK(trainer.should_stop);
    CHECK(msg.str() == "Time limit reached. Elapsed time is 0:00:10. Signaling Trainer to stop.\n");
    t = 111;
    timer.on_train_end(trainer, module);
    CHECK(timer.end_time() == 111);
    t = 500;
    CHECK(timer.time_elapsed() == 11);  // frozen once the stage ended

    // Other stages are timed apart from the budget.
    timer.on_test_start(trainer, module);
    t = 502;
    CHECK(timer.time_elapsed("test") == 2);
    timer.on_test_end(trainer, module);
    CHECK_FALSE(timer.start_time("predict").has_value());
    CHECK_THROWS_AS(timer.time_elapsed("training"), ValueError);

    // The state carries the training time into a resumed run, whose budget is then spent at once.
    const nlohmann::json state = timer.state_dict();
    CHECK(state["time_elapsed"]["train"].get<double>() == 11);
    CHECK(state["time_elapsed"]["test"].get<double>() == 2);
    Trainer resumed(bare_options());
    Timer again(10.0, "step", false);
    again.set_clock([&] { return t; });
    again.load_state_dict(state);
    CHECK(again.time_elapsed() == 11);
    again.on_fit_start(resumed, module);
    CHECK(resumed.should_stop);

    // "epoch" checks only at epoch ends.
    Trainer per_epoch(bare_options());
    Timer epochly(1.0, "epoch", false);
    epochly.set_clock([&] { return t; });
    epochly.on_train_start(per_epoch, module);
    t += 5;
    epochly.on_train_batch_end(per_epoch, module, Tensor(), batch, 0);
    CHECK_FALSE(per_epoch.should_stop);
    epochly.on_train_epoch_end(per_epoch, module);
    CHECK(per_epoch.should_stop);
  }

  // ------------------------------------------------------------------ GradientAccumulationScheduler

  TEST_CASE("callbacks: GradientAccumulationScheduler validates its schedule") {
    CHECK_THROWS_AS(GradientAccumulationScheduler({}), ValueError);
    CHECK_THROWS_AS(GradientAccumulationScheduler({{-1, 2}}), ValueError);
    CHECK_THROWS_AS(GradientAccumulationScheduler({{0, 0}}), ValueError);
    CHECK_THROWS_AS(GradientAccumulationScheduler({{2, -3}}), ValueError);

    GradientAccumulationScheduler late({{4, 2}});  // epoch 0 defaults to 1
    CHECK(late.scheduling().at(0) == 1);
    for (int64_t e = 0; e < 4; ++e) CHECK(late.get_accumulate_grad_batches(e) == 1);
    CHECK(late.get_accumulate_grad_batches(4) == 2);
    CHECK(late.get_accumulate_grad_batches(100) == 2);
    CHECK(late.going_to_accumulate_grad_batches());

    GradientAccumulationScheduler steps({{0, 3}, {2, 1}, {5, 4}});
    const int64_t expected[] = {3, 3, 1, 1, 1, 4, 4};
    for (int64_t e = 0; e < 7; ++e) CHECK(steps.get_accumulate_grad_batches(e) == expected[e]);
    CHECK_FALSE(GradientAccumulationScheduler({{0, 1}, {3, 1}}).going_to_accumulate_grad_batches());

    // Refused with the Trainer's own accumulate_grad_batches, and with manual optimisation.
    TinyRegression module;
    TrainerOptions both = bare_options();
    both.accumulate_grad_batches = 2;
    Trainer trainer(both);
    CHECK_THROWS_AS(steps.on_train_start(trainer, module), ValueError);
    Trainer plain(bare_options());
    CHECK_NOTHROW(steps.on_train_start(plain, module));
    module.automatic_optimization = false;
    CHECK_THROWS_AS(steps.on_train_start(plain, module), ValueError);
  }

  // ------------------------------------------------------------------ LambdaCallback

  TEST_CASE("callbacks: LambdaCallback calls the function set for each hook") {
    std::vector<std::string> called;
    LambdaHooks hooks;
#define EMBER_TEST_SET_HOOK(name, params, args) hooks.name = [&](auto&&...) { called.push_back(#name); };
    EMBER_CALLBACK_HOOKS(EMBER_TEST_SET_HOOK)
#undef EMBER_TEST_SET_HOOK
    LambdaCallback cb(std::move(hooks));
    Callback& base = cb;

    // Every hook, called through the base class with the names the hook list uses for its arguments.
    Trainer t(bare_options());
    TinyRegression m;
    const std::string stage = "fit";
    const data::Batch b;
    const int64_t i = 0;
    const Tensor loss, out;
    const std::runtime_error e("boom");
    optim::SGD o(m.parameters());
    Checkpoint c;
    std::vector<std::string> all;
#define EMBER_TEST_CALL_HOOK(name, params, args) \
  base.name args;                                \
  all.push_back(#name);
    EMBER_CALLBACK_HOOKS(EMBER_TEST_CALL_HOOK)
#undef EMBER_TEST_CALL_HOOK
    CHECK(all.size() == 37);
    CHECK(called == all);

    // Unset hooks do nothing; set ones see their arguments.
    int64_t seen_idx = -1;
    LambdaCallback one(LambdaHooks{
        .on_train_batch_start = [&](Trainer&, TrainModule&, const data::Batch&, int64_t idx) { seen_idx = idx; }});
    one.on_fit_start(t, m);
    one.on_train_batch_start(t, m, b, 7);
    CHECK(seen_idx == 7);
    one.hooks().on_fit_start = [&](Trainer&, TrainModule&) { seen_idx = 99; };
    one.on_fit_start(t, m);
    CHECK(seen_idx == 99);
  }

  // ------------------------------------------------------------------ LearningRateMonitor

  TEST_CASE("callbacks: LearningRateMonitor validates its options and needs a logger") {
    CHECK_THROWS_AS(LearningRateMonitor("batch"), ValueError);
    CHECK_NOTHROW(LearningRateMonitor("step"));
    CHECK_NOTHROW(LearningRateMonitor("epoch", true, true));
    Trainer trainer(bare_options());
    TinyRegression module;
    LearningRateMonitor monitor;
    CHECK_THROWS_AS(monitor.on_train_start(trainer, module), ValueError);
  }
  // ------------------------------------------------------------------ end to end, through Trainer::fit

  TEST_CASE("callbacks: fit prints the summary once and plain progress lines with the metrics") {
    std::ostringstream summary_out, bar_out;
    auto summary = std::make_shared<ModelSummary>(1, &summary_out);
    auto bar =
        std::make_shared<ProgressBar>(ProgressBarOptions{.tty = false, .stream = &bar_out, .plain_min_seconds = 0});
    auto logger = std::make_shared<RecordingLogger>();
    Trainer trainer(run_options(2, {summary, bar}, {logger}));
    TinyRegression model;
    trainer.fit(model, regression_loader(), regression_loader(16, 2));

    const std::string table = summary_out.str();
    CHECK(count_of(table, "Total params") == 1);
    CHECK(table.find("0 | fc   | Linear | 5      | train") != std::string::npos);

    const std::string out = bar_out.str();
    const auto lines = lines_of(out);
    CHECK(lines.front().starts_with("Sanity Checking DataLoader 0: 100% 2/2 ["));
    CHECK(count_of(out, "Epoch 0: 100% 8/8 [") == 1);
    CHECK(count_of(out, "Epoch 1: 100% 8/8 [") == 1);
    CHECK(count_of(out, "Validation DataLoader 0") == 0);  // at epoch ends: in the epoch's line
    CHECK(out.find("v_num=3, train_loss=") != std::string::npos);
    CHECK(out.find("val_loss=") != std::string::npos);
    // ceil(8 / 10) = 1: a line per batch.
    CHECK(count_of(out, "\n") == 1 + 2 * 8);

    // Testing after fit: its own bar, a line per batch here (4 batches).
    bar_out.str("");
    trainer.test(model, regression_loader(16, 3));
    const auto test_lines = lines_of(bar_out.str());
    REQUIRE(test_lines.size() == 4);
    CHECK(test_lines[0].starts_with("Testing DataLoader 0:  25% 1/4 ["));
    CHECK(test_lines[3].starts_with("Testing DataLoader 0: 100% 4/4 ["));
  }

  TEST_CASE("callbacks: Timer stops fit when the training time runs out") {
    double t = 0;
    // The clock advances one second per batch, before the Timer looks at it.
    auto tick = std::make_shared<LambdaCallback>(LambdaHooks{
        .on_train_batch_end = [&](Trainer&, TrainModule&, const Tensor&, const data::Batch&, int64_t) { t += 1; }});
    auto timer = std::make_shared<Timer>(5.0, "step", false);
    timer->set_clock([&] { return t; });
    Trainer trainer(run_options(10, {tick, timer}));
    TinyRegression model;
    trainer.fit(model, regression_loader());
    CHECK(trainer.global_step() == 5);
    CHECK(timer->time_elapsed("train") == 5);
    CHECK(timer->end_time("train").has_value());
    CHECK(*timer->time_remaining() == 0);

    // Per epoch: the first epoch's end (8 s) is past a 3 s budget.
    t = 0;
    auto epochly = std::make_shared<Timer>(3.0, "epoch", false);
    epochly->set_clock([&] { return t; });
    Trainer trainer2(run_options(10, {tick, epochly}));
    TinyRegression model2;
    trainer2.fit(model2, regression_loader());
    CHECK(trainer2.global_step() == 8);
  }

  TEST_CASE("callbacks: GradientAccumulationScheduler changes the accumulation per epoch") {
    auto gas = std::make_shared<GradientAccumulationScheduler>(GradientAccumulationScheduler({{1, 2}, {2, 4}}));
    std::vector<int64_t> factors;
    auto seen = std::make_shared<LambdaCallback>(LambdaHooks{
        .on_train_epoch_start = [&](Trainer& t, TrainModule&) { factors.push_back(t.accumulate_grad_batches()); }});
    Trainer trainer(run_options(3, {gas, seen}));
    TinyRegression model;
    trainer.fit(model, regression_loader());
    CHECK(factors == std::vector<int64_t>{1, 2, 4});
    CHECK(trainer.global_step() == 8 + 4 + 2);

    // Both the Trainer's option and the callback: refused.
    TrainerOptions both =
        run_options(1, {std::make_shared<GradientAccumulationScheduler>(GradientAccumulationScheduler({{0, 2}}))});
    both.accumulate_grad_batches = 2;
    Trainer refused(both);
    TinyRegression model2;
    CHECK_THROWS_AS(refused.fit(model2, regression_loader()), ValueError);
  }

  TEST_CASE("callbacks: LearningRateMonitor logs learning rates at scheduler intervals and steps") {
    // An epoch scheduler, logged at each epoch's start.
    struct Scheduled : TinyRegression {
      std::string name;
      OptimizerConfig configure_optimizers() override {
        auto opt = std::make_shared<optim::SGD>(parameters(), optim::SGDOptions{.lr = 0.1});
        return {opt, LRSchedulerConfig{.scheduler = std::make_shared<optim::StepLR>(opt, 1, 0.5), .name = name}};
      }
    };
    {
      auto logger = std::make_shared<RecordingLogger>();
      Trainer trainer(run_options(3, {std::make_shared<LearningRateMonitor>()}, {logger}));
      Scheduled model;
      trainer.fit(model, regression_loader());
      const auto lr = logger->series("lr-SGD");
      REQUIRE(lr.size() == 3);
      const std::pair<int64_t, double> expected[] = {{0, 0.1}, {8, 0.05}, {16, 0.025}};
      for (size_t i = 0; i < 3; ++i) {
        CHECK(lr[i].first == expected[i].first);
        CHECK(lr[i].second == doctest::Approx(expected[i].second));
      }
      auto monitor = trainer.find_callback<LearningRateMonitor>();
      REQUIRE(monitor);
      CHECK(monitor->lrs().at("lr-SGD").size() == 3);
      CHECK(trainer.callback_metrics().at("lr-SGD") == doctest::Approx(0.025));  // monitorable
    }
    {
      // A named scheduler logs under its name; "step" logs every log_every_n_steps.
      auto logger = std::make_shared<RecordingLogger>();
      TrainerOptions o = run_options(1, {std::make_shared<LearningRateMonitor>("step")}, {logger});
      o.log_every_n_steps = 2;
      Trainer trainer(o);
      Scheduled model;
      model.name = "my_lr";
      trainer.fit(model, regression_loader());
      const auto lr = logger->series("my_lr");
      REQUIRE(lr.size() == 4);
      for (size_t i = 0; i < 4; ++i) {
        CHECK(lr[i].first == static_cast<int64_t>(2 * i + 2));  // the step of the loss rows it joins
        CHECK(lr[i].second == doctest::Approx(0.1));
      }
      CHECK(logger->series("lr-SGD").empty());
    }
    {
      // Two parameter groups, momentum and weight decay, no scheduler: logged at epochs and steps.
      struct Groups : TinyRegression {
        OptimizerConfig configure_optimizers() override {
          std::shared_ptr<optim::Optimizer> opt = std::make_shared<optim::SGD>(
              std::vector<optim::ParamGroup>{{.params = {fc->weight}},
                                             {.params = {fc->bias}, .options = {{"lr", 0.01}, {"momentum", 0.5}}}},
              optim::SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4});
          return opt;
        }
      };
      auto logger = std::make_shared<RecordingLogger>();
      TrainerOptions o = run_options(1, {std::make_shared<LearningRateMonitor>(std::nullopt, true, true)}, {logger});
      o.log_every_n_steps = 4;
      Trainer trainer(o);
      Groups model;
      trainer.fit(model, regression_loader());
      // At the epoch's start (step 0), then in the rows of steps 4 and 8 (before those steps are taken).
      const auto pg1 = logger->series("lr-SGD/pg1");
      REQUIRE(pg1.size() == 3);
      CHECK(pg1[0].first == 0);
      CHECK(pg1[1].first == 4);
      CHECK(pg1[2].first == 8);
      CHECK(pg1[0].second == doctest::Approx(0.1));
      const auto pg2 = logger->series("lr-SGD/pg2");
      REQUIRE(pg2.size() == 3);
      CHECK(pg2[0].second == doctest::Approx(0.01));
      CHECK(logger->series("lr-SGD/pg1-momentum").at(0).second == doctest::Approx(0.9));
      CHECK(logger->series("lr-SGD/pg2-momentum").at(0).second == doctest::Approx(0.5));
      CHECK(logger->series("lr-SGD/pg2-weight_decay").at(0).second == doctest::Approx(1e-4));
    }
    // Without a logger: refused when training starts.
    Trainer no_logger(run_options(1, {std::make_shared<LearningRateMonitor>()}));
    TinyRegression model;
    CHECK_THROWS_AS(no_logger.fit(model, regression_loader()), ValueError);
  }
}
