// GradientAccumulationScheduler: validation of the schedule and the per-epoch factor (Lightning's rules).
#include "train/callbacks/grad_accum.hpp"

#include <iterator>
#include <sstream>

#include "core/error.hpp"
#include "train/trainer.hpp"

namespace ember::train {
namespace {

std::string join_keys_or_values(const std::map<int64_t, int64_t>& m, bool keys) {
  std::ostringstream os;
  os << "[";
  bool first = true;
  for (const auto& [k, v] : m) {
    os << (first ? "" : ", ") << (keys ? k : v);
    first = false;
  }
  os << "]";
  return os.str();
}

}  // namespace

GradientAccumulationScheduler::GradientAccumulationScheduler(std::map<int64_t, int64_t> scheduling)
    : scheduling_(std::move(scheduling)) {
  EMBER_CHECK(!scheduling_.empty(), ValueError,
              "[GradientAccumulationScheduler] the scheduling is empty: give {epoch: factor} pairs");
  EMBER_CHECK(scheduling_.begin()->first >= 0, ValueError,
              "[GradientAccumulationScheduler] epochs should be integers >= 0 (zero-based). Got ",
              join_keys_or_values(scheduling_, true), ".");
  for (const auto& [epoch, factor] : scheduling_)
    EMBER_CHECK(factor >= 1, ValueError,
                "[GradientAccumulationScheduler] accumulation factors should be integers > 0. Got ",
                join_keys_or_values(scheduling_, false), ".");
  scheduling_.try_emplace(0, 1);  // before the first scheduled epoch: no accumulation
}

int64_t GradientAccumulationScheduler::get_accumulate_grad_batches(int64_t epoch) const {
  auto it = scheduling_.upper_bound(epoch);
  return it == scheduling_.begin() ? 1 : std::prev(it)->second;
}

bool GradientAccumulationScheduler::going_to_accumulate_grad_batches() const {
  for (const auto& [epoch, factor] : scheduling_)
    if (factor > 1) return true;
  return false;
}

void GradientAccumulationScheduler::on_train_start(Trainer& trainer, TrainModule& module) {
  EMBER_CHECK(module.automatic_optimization, ValueError,
              "[GradientAccumulationScheduler] automatic gradient accumulation is not supported with manual "
              "optimization (automatic_optimization = false): remove the callback or switch to automatic "
              "optimization");
  EMBER_CHECK(trainer.options().accumulate_grad_batches == 1, ValueError,
              "[GradientAccumulationScheduler] the Trainer has accumulate_grad_batches = ",
              trainer.options().accumulate_grad_batches,
              " and the GradientAccumulationScheduler callback is used: either remove accumulate_grad_batches "
              "from the Trainer or remove the callback");
  EMBER_CHECK(!trainer.options().cuda_graphs || !going_to_accumulate_grad_batches(), ValueError,
              "[GradientAccumulationScheduler] the Trainer has cuda_graphs = true, whose captured step is one whole "
              "step (forward, backward, optimizer): it cannot accumulate ",
              join_keys_or_values(scheduling_, false), " batches. Remove the callback or cuda_graphs");
}

void GradientAccumulationScheduler::on_train_epoch_start(Trainer& trainer, TrainModule& /*module*/) {
  trainer.set_accumulate_grad_batches(get_accumulate_grad_batches(trainer.current_epoch()));
}

}  // namespace ember::train
