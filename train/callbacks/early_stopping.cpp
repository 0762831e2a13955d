// EarlyStopping: the improvement test (min_delta toward the mode), thresholds, patience, and its state.
#include "train/callbacks/early_stopping.hpp"

#include <bit>
#include <cmath>
#include <iostream>

#include "core/error.hpp"
#include "core/io/json_read.hpp"
#include "train/trainer.hpp"

namespace ember::train {

EarlyStopping::EarlyStopping(EarlyStoppingOptions options) : o_(std::move(options)) {
  EMBER_CHECK(!o_.monitor.empty(), ValueError, "[EarlyStopping] needs a monitor (a logged metric's name)");
  EMBER_CHECK(o_.mode == "min" || o_.mode == "max", ValueError,
              "[EarlyStopping] mode must be \"min\" or \"max\", got \"", o_.mode, "\"");
  EMBER_CHECK(o_.patience >= 0, ValueError, "[EarlyStopping] patience must be >= 0, got ", o_.patience);
  o_.min_delta = std::fabs(o_.min_delta);
  best_score_ = o_.mode == "min" ? INFINITY : -INFINITY;
}

std::string EarlyStopping::state_key() const {
  return detail::cat_str("EarlyStopping{monitor=", o_.monitor, ",mode=", o_.mode, "}");
}

void EarlyStopping::setup(Trainer& trainer, TrainModule& /*module*/, const std::string& /*stage*/) {
  const TrainerOptions& t = trainer.options();
  const bool val_once_at_end = t.val_check_interval.is_fraction() && t.val_check_interval.fraction() == 1.0 &&
                               t.check_val_every_n_epoch.value_or(0) == 1;
  on_epoch_end_ = o_.check_on_train_epoch_end.value_or(val_once_at_end);
}

void EarlyStopping::on_train_epoch_end(Trainer& trainer, TrainModule& /*module*/) {
  if (on_epoch_end_) check(trainer);
}

void EarlyStopping::on_validation_end(Trainer& trainer, TrainModule& /*module*/) {
  if (!on_epoch_end_ && trainer.training()) check(trainer);
}

void EarlyStopping::check(Trainer& trainer) {
  if (trainer.sanity_checking()) return;
  const MetricMap& metrics = trainer.callback_metrics();
  auto it = metrics.find(o_.monitor);
  if (it == metrics.end()) {
    std::string available;
    for (const auto& [k, v] : metrics) available += (available.empty() ? "" : ", ") + k;
    EMBER_CHECK(!o_.strict, ValueError, "[EarlyStopping] monitor '", o_.monitor,
                "' was not logged; available metrics: ", available.empty() ? "none" : available);
    std::cerr << "[EarlyStopping] monitor '" << o_.monitor << "' was not logged; skipping this check\n";
    return;
  }
  const double current = it->second;
  reason_.clear();
  bool stop = false;
  const auto fmt = [&](double v) { return detail::cat_str(v); };
  if (o_.check_finite && !std::isfinite(current)) {
    stop = true;
    reason_ = "monitored metric " + o_.monitor + " = " + fmt(current) + " is not finite. Previous best value was " +
              fmt(best_score_) + ". Signaling Trainer to stop.";
  } else if (o_.stopping_threshold && better(current, *o_.stopping_threshold)) {
    stop = true;
    reason_ = "stopping threshold reached: " + o_.monitor + " = " + fmt(current) + (o_.mode == "min" ? " < " : " > ") +
              fmt(*o_.stopping_threshold) + ". Signaling Trainer to stop.";
  } else if (o_.divergence_threshold && better(*o_.divergence_threshold, current)) {
    stop = true;
    reason_ = "divergence threshold reached: " + o_.monitor + " = " + fmt(current) +
              (o_.mode == "min" ? " > " : " < ") + fmt(*o_.divergence_threshold) + ". Signaling Trainer to stop.";
  } else if (better(o_.mode == "min" ? current + o_.min_delta : current - o_.min_delta, best_score_)) {
    if (o_.verbose && trainer.is_global_zero())
      std::cout << "[EarlyStopping] " << o_.monitor << " improved to " << current << "\n";
    best_score_ = current;
    wait_count_ = 0;
  } else if (++wait_count_ >= o_.patience) {
    stop = true;
    reason_ = "monitored metric " + o_.monitor + " did not improve in the last " + std::to_string(wait_count_) +
              " records. Best score: " + fmt(best_score_) + ". Signaling Trainer to stop.";
  }
  if (stop) {
    stopped_epoch_ = trainer.current_epoch();
    trainer.should_stop = true;
    if (o_.verbose && trainer.is_global_zero()) std::cout << "[EarlyStopping] " << reason_ << "\n";
  }
}

nlohmann::json EarlyStopping::state_dict() const {
  // The best score as bits: infinite at the start, and JSON has no spelling for that.
  return {{"wait_count", wait_count_},
          {"stopped_epoch", stopped_epoch_},
          {"best_score_bits", std::bit_cast<uint64_t>(best_score_)},
          {"patience", o_.patience}};
}

void EarlyStopping::load_state_dict(const nlohmann::json& state) {
  try {
    wait_count_ = json_int64(state.at("wait_count"), "[EarlyStopping] wait_count");
    stopped_epoch_ = json_int64(state.at("stopped_epoch"), "[EarlyStopping] stopped_epoch");
    best_score_ = std::bit_cast<double>(json_uint64(state.at("best_score_bits"), "[EarlyStopping] best_score_bits"));
  } catch (const nlohmann::json::exception& e) {
    throw ValueError(detail::cat_str("[EarlyStopping] checkpoint state is malformed: ", e.what()));
  }
}

}  // namespace ember::train
