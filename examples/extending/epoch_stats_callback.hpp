// A custom Callback: times each training epoch, counts its samples (throughput), records the validation
// accuracy, and stops the fit once that accuracy reaches a goal. Hooks run after the module's own hooks
// of the same name; a Callback overrides only the hooks it needs (train/callback.hpp lists them all).
#pragma once
#include <chrono>
#include <vector>

#include "../digits_mlp/digits_mlp.hpp"

namespace extending {

using namespace ember;

struct EpochRecord {
  int64_t epoch = 0;
  double seconds = 0;   // the epoch's training batches and its validation
  int64_t samples = 0;  // training samples seen
  double samples_per_s = 0;
  double val_acc = 0;
};

class EpochStats : public train::Callback {
 public:
  explicit EpochStats(double goal_acc) : goal_(goal_acc) {}
  const std::vector<EpochRecord>& records() const { return records_; }

  void on_train_epoch_start(train::Trainer&, train::TrainModule&) override {
    start_ = std::chrono::steady_clock::now();
    samples_ = 0;
  }
  void on_train_batch_end(train::Trainer&, train::TrainModule&, const Tensor&, const data::Batch& batch,
                          int64_t) override {
    samples_ += batch.size();
  }
  // Validation at the end of an epoch runs before this hook, so val_acc is this epoch's.
  void on_train_epoch_end(train::Trainer& trainer, train::TrainModule&) override {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double acc = trainer.callback_metrics().at("val_acc");
    records_.push_back({trainer.current_epoch(), s, samples_, double(samples_) / s, acc});
    if (acc >= goal_) trainer.should_stop = true;  // the fit ends after this epoch
  }

 private:
  double goal_;
  std::chrono::steady_clock::time_point start_;
  int64_t samples_ = 0;
  std::vector<EpochRecord> records_;
};

// Trains the digits MLP for at most max_epochs, stopping at goal_acc held-out accuracy.
inline std::vector<EpochRecord> train_with_epoch_stats(int64_t max_epochs, double goal_acc, uint64_t seed = 0) {
  digits_mlp::Config cfg{.epochs = max_epochs, .seed = seed, .verbose = false};
  manual_seed(cfg.seed);
  data::DigitsDataModule digits({.batch_size = cfg.batch_size, .val_fraction = 0.2, .seed = cfg.seed});
  digits_mlp::DigitsClassifier model(cfg);
  auto stats = std::make_shared<EpochStats>(goal_acc);
  train::TrainerOptions options = digits_mlp::trainer_options(cfg);
  options.callbacks = {stats};
  train::Trainer trainer(options);
  trainer.fit(model, digits);
  return stats->records();
}

}  // namespace extending
