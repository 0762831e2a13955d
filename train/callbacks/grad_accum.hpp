// GradientAccumulationScheduler (Lightning's): changes accumulate_grad_batches at chosen epochs.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <map>
#include <utility>

#include "train/callback.hpp"

namespace ember::train {

class GradientAccumulationScheduler : public Callback {
 public:
  // {epoch: factor}, epochs zero-based: {{0, 1}, {4, 2}} accumulates 2 batches from the fifth epoch on.
  // Epoch 0 defaults to 1 when absent. ValueError for an empty map, an epoch < 0 or a factor < 1.
  explicit GradientAccumulationScheduler(std::map<int64_t, int64_t> scheduling);
  // GradientAccumulationScheduler({{0, 1}, {4, 2}}) without naming the map type.
  GradientAccumulationScheduler(std::initializer_list<std::pair<const int64_t, int64_t>> scheduling)
      : GradientAccumulationScheduler(std::map<int64_t, int64_t>(scheduling)) {}

  const std::map<int64_t, int64_t>& scheduling() const { return scheduling_; }
  // The factor in force at `epoch` (that of the largest scheduled epoch <= epoch).
  int64_t get_accumulate_grad_batches(int64_t epoch) const;
  bool going_to_accumulate_grad_batches() const;

  // Refuses manual optimisation and a Trainer with accumulate_grad_batches != 1 (both set: which wins?).
  void on_train_start(Trainer& trainer, TrainModule& module) override;
  void on_train_epoch_start(Trainer& trainer, TrainModule& module) override;

 private:
  std::map<int64_t, int64_t> scheduling_;
};

}  // namespace ember::train
