// EarlyStopping (Lightning's): stops fit when a monitored metric stops improving for `patience`
// checks, becomes non-finite, reaches stopping_threshold or passes divergence_threshold.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "train/callback.hpp"

namespace ember::train {

struct EarlyStoppingOptions {
  std::string monitor = "";
  double min_delta = 0.0;  // an improvement smaller than this does not count
  int64_t patience = 3;    // checks without improvement before stopping (validation checks, or epochs)
  bool verbose = false;
  std::string mode = "min";  // or "max"
  bool strict = true;        // a monitor that was never logged is an error (else a warning)
  bool check_finite = true;  // stop when the metric becomes NaN or infinite
  std::optional<double> stopping_threshold = std::nullopt;    // stop once the metric is better than this
  std::optional<double> divergence_threshold = std::nullopt;  // stop once the metric is worse than this
  // Unset: check at the train epoch's end when validation runs once per epoch at its end (or never),
  // else after each validation.
  std::optional<bool> check_on_train_epoch_end = std::nullopt;
};

class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingOptions options);
  std::string state_key() const override;

  void setup(Trainer& trainer, TrainModule& module, const std::string& stage) override;
  void on_train_epoch_end(Trainer& trainer, TrainModule& module) override;
  void on_validation_end(Trainer& trainer, TrainModule& module) override;
  nlohmann::json state_dict() const override;
  void load_state_dict(const nlohmann::json& state) override;

  int64_t wait_count() const { return wait_count_; }
  int64_t stopped_epoch() const { return stopped_epoch_; }
  double best_score() const { return best_score_; }
  // Why the last check stopped the run (empty if it did not).
  const std::string& stopping_reason() const { return reason_; }

 private:
  void check(Trainer& trainer);
  bool better(double a, double b) const { return o_.mode == "min" ? a < b : a > b; }

  EarlyStoppingOptions o_;
  bool on_epoch_end_ = true;
  int64_t wait_count_ = 0;
  int64_t stopped_epoch_ = 0;
  double best_score_;
  std::string reason_;
};

}  // namespace ember::train
