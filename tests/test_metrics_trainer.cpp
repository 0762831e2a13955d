// Metric objects logged from a TrainModule: on_step values are the batches' own, on_epoch values are
// compute() over the epoch, the metric is reset at the epoch's end, and a run resumed from a checkpoint
// taken after any batch logs exactly what the uninterrupted run logs (metric state in the checkpoint).
#include <doctest/doctest.h>

#include "ember.hpp"
#include "test_util.hpp"
#include "trainer_fixtures.hpp"

using namespace ember;
using namespace trainer_test;
namespace mt = ember::metrics;

namespace {

struct Metered : Tiny {
  mt::Accuracy train_acc{{.task = "multiclass", .num_classes = 3}};
  mt::AUROC train_auroc{{.task = "multiclass", .num_classes = 3}};  // a cat state
  mt::MeanMetric train_mean;
  mt::Accuracy val_acc{{.task = "multiclass", .num_classes = 3}};
  bool update_only = false;
  Tensor training_step(const data::Batch& b, int64_t) override {
    Tensor out = forward(b.input);
    Tensor loss = nn::functional::cross_entropy(out, b.target);
    if (update_only) {
      train_acc.update(out, b.target);
    } else {
      train_acc(out, b.target);
    }
    log("train_acc", train_acc, {.on_step = true, .on_epoch = true});
    train_auroc.update(out, b.target);
    log("train_auroc", train_auroc, {.on_step = false, .on_epoch = true});
    train_mean(loss);
    log("train_mean_loss", train_mean, {.on_epoch = true});
    return loss;
  }
  void validation_step(const data::Batch& b, int64_t) override {
    val_acc(forward(b.input), b.target);
    log("val_acc", val_acc, {.prog_bar = true});
  }
};

}  // namespace

TEST_SUITE("metrics") {
  TEST_CASE("log(name, metric): batch values on step, compute() at the epoch's end, then reset") {
    manual_seed(5);
    Metered m;
    auto log = std::make_shared<RecordingLogger>();
    train::Trainer t(quiet({.max_epochs = 2, .num_sanity_val_steps = 0, .log_every_n_steps = 1, .loggers = {log}}));
    t.fit(m, loader(24, 4, true), loader(8, 4, false));
    // val_acc: the accuracy of the final model over the whole validation set.
    Generator g(1);  // the validation set of loader(8, 4, false): problem(8, 1)
    const Tensor x = randn({8, 4}, {}, &g), y = x.narrow(1, 0, 3).argmax(1);
    m.eval();
    const Device d = m.parameters()[0].device();  // the GPU when the fit ran there
    const double want = m.forward(x.to(d)).argmax(1).eq(y.to(d)).to(kF64).mean().item<double>();
    CHECK(t.callback_metrics().at("val_acc") == doctest::Approx(want));
    // The train accuracy of an epoch is the mean of its (equal-sized) batches' accuracies.
    const auto steps = log->series("train_acc_step");
    const auto epochs = log->series("train_acc_epoch");
    REQUIRE(steps.size() == 12);
    REQUIRE(epochs.size() == 2);
    for (size_t e = 0; e < 2; ++e) {
      double mean = 0;
      for (size_t i = 0; i < 6; ++i) mean += steps[e * 6 + i].second / 6;
      CHECK(epochs[e].second == doctest::Approx(mean));
    }
    CHECK(log->series("train_auroc").size() == 2);
    CHECK(log->series("train_mean_loss_epoch").size() == 2);
    // Every metric was reset after its epoch.
    for (const mt::Metric* metric :
         {static_cast<const mt::Metric*>(&m.train_acc), static_cast<const mt::Metric*>(&m.val_acc),
          static_cast<const mt::Metric*>(&m.train_auroc)})
      CHECK(metric->update_count() == 0);
    CHECK(m.train_auroc.state_dict().at("preds").size(0) == 0);

    // on_step needs the batch's value, which only the metric's forward gives.
    Metered u;
    u.update_only = true;
    train::Trainer t2(quiet({.max_epochs = 1, .num_sanity_val_steps = 0}));
    CHECK(throws_with<ValueError>([&] { t2.fit(u, loader(8, 4, true)); }, "call it on the batch"));
  }

  TEST_CASE("exact resume: metric states travel in checkpoints, so a resumed epoch logs the uninterrupted values") {
    auto options = [](const std::string& dir, std::vector<train::CallbackPtr> extra,
                      std::shared_ptr<RecordingLogger> log) {
      extra.insert(extra.begin(), std::make_shared<train::ModelCheckpoint>(train::ModelCheckpointOptions{
                                      .dirpath = dir, .save_last = true, .every_n_train_steps = 1}));
      return quiet({.max_epochs = 2,
                    .val_check_interval = 0.5,
                    .num_sanity_val_steps = 0,
                    .log_every_n_steps = 2,
                    .callbacks = extra,
                    .loggers = {log}});
    };
    TempDir full_dir("metrics_full");
    manual_seed(11);
    Metered full_model;
    auto full_log = std::make_shared<RecordingLogger>();
    train::Trainer full(options(full_dir.str(), {}, full_log));
    full.fit(full_model, loader(24, 4, true), loader(8, 4, false));

    struct Crash : train::ModelCheckpoint {
      int64_t at = 0;
      explicit Crash(const std::string& dir) : ModelCheckpoint({.dirpath = dir, .save_top_k = 0}) {}
      std::string state_key() const override { return "Crash"; }
      void on_train_batch_end(train::Trainer& t, train::TrainModule&, const Tensor&, const data::Batch&,
                              int64_t) override {
        if (t.global_step() == at) throw std::runtime_error("simulated crash");
      }
    };
    for (int64_t crash_at : {2, 4, 6, 9}) {  // 6: the epoch's last batch (its end runs in the resumed run)
      CAPTURE(crash_at);
      TempDir dir("metrics_part");
      manual_seed(11);
      Metered model;
      auto log = std::make_shared<RecordingLogger>();
      auto crash = std::make_shared<Crash>(dir.str());
      crash->at = crash_at;
      train::Trainer first(options(dir.str(), {crash}, log));
      CHECK_THROWS_AS(first.fit(model, loader(24, 4, true), loader(8, 4, false)), std::runtime_error);
      const train::Checkpoint ck = train::Checkpoint::load((dir.path / "last.safetensors").string());
      CHECK(ck.tensors.contains("metric_states.train_auroc.preds"));
      CHECK(!ck.weights().contains("metric_states.train_acc.tp"));

      manual_seed(999);
      Metered resumed;
      auto resumed_log = std::make_shared<RecordingLogger>();
      train::Trainer second(options(dir.str(), {}, resumed_log));
      second.fit(resumed, loader(24, 4, true), loader(8, 4, false),
                 {.ckpt_path = (dir.path / "last.safetensors").string()});
      auto rows = log->rows;
      rows.insert(rows.end(), resumed_log->rows.begin(), resumed_log->rows.end());
      CHECK(rows == full_log->rows);
    }
  }
}
