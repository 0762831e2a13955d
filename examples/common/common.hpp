// What the Trainer-based examples share: the Trainer options they start from, and the first-N subset
// their short runs (tests, --data.limit_*) train on.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ember.hpp"

namespace ember_examples {

// The options a command line then overrides: one process or DDP over whatever mpirun/srun started, and
// in verbose runs the progress bar, model summary, CSV/SVG logs and a checkpoint under root_dir.

inline ember::train::TrainerOptions trainer_defaults(int64_t epochs, const std::string& accelerator, bool verbose,
                                                     const std::string& root_dir) {
  return {.max_epochs = epochs,
          .accelerator = accelerator,
          .devices = -1,  // one process alone, or DDP over the processes mpirun/srun started
          .enable_checkpointing = verbose,
          .enable_progress_bar = verbose,
          .enable_model_summary = verbose,
          .logger = verbose,
          .default_root_dir = root_dir};
}

// The first n samples of ds (all of them when n <= 0 or n >= its size).
inline std::shared_ptr<const ember::data::Dataset> first_n(std::shared_ptr<const ember::data::Dataset> ds, int64_t n) {
  if (n <= 0 || n >= ds->size()) return ds;
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
  return std::make_shared<ember::data::Subset>(ds, idx);
}

}  // namespace ember_examples
