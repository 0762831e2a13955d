// Checkpoint: a run's state as one safetensors file. Tensors: the module's weights under its state_dict
// names (so safetensors' load_file + PyTorch's load_state_dict read them) and each optimizer's state
// tensors under "optimizer_states.<i>.<key>"; everything else (epoch, global_step, loop and loader
// positions, RNG, schedulers, callbacks, hyperparameters, Ember's version) is JSON in the metadata entry
// "ember_checkpoint". Writes are atomic; reads validate the file and report damage with the path.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "core/io/safetensors.hpp"

namespace ember::train {

inline constexpr const char* kOptimizerPrefix = "optimizer_states.";

struct Checkpoint {
  TensorMap tensors;
  nlohmann::json state = nlohmann::json::object();

  // The module's weights alone (tensors without the optimizer prefix).
  TensorMap weights() const;
  bool weights_only() const { return state.value("weights_only", false); }

  // Atomic (temporary file, fsync, rename): a failure raises IOError and leaves an old file intact.
  void save(const std::string& path) const;
  // IOError for an unreadable or damaged file, ValueError for a file that is not an Ember checkpoint.
  static Checkpoint load(const std::string& path);
};

}  // namespace ember::train
