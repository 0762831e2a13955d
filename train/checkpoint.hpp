// Checkpoint: a run's state as one safetensors file. Tensors: the module's weights under its state_dict
// names (so safetensors' load_file + PyTorch's load_state_dict read them) and each optimizer's state
// tensors under "optimizer_states.<i>.<key>"; everything else (epoch, global_step, loop and loader
// positions, RNG, schedulers, callbacks, hyperparameters, Ember's version) is JSON in the metadata entry
// "ember_checkpoint". Ember's files also carry each tensor's dtype, shape and CRC-32 in "ember_integrity";
// loading checks them (files from elsewhere carry none and load unchecked). Writes are atomic; reads
// validate the file and report damage with the path.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.hpp"
#include "core/io/safetensors.hpp"

namespace ember::train {

inline constexpr const char* kOptimizerPrefix = "optimizer_states.";
// Logged metric objects' states (ember::metrics) of the epoch in progress: "metric_states.<name>.<state>".
inline constexpr const char* kMetricStatePrefix = "metric_states.";
// The parameters' gradients of a gradient-accumulation window in progress: "accumulated_grads.<param>".
inline constexpr const char* kAccumulatedGradPrefix = "accumulated_grads.";

struct CheckpointLoadOptions {
  bool verify_checksums = true;  // compare each tensor with the checksum the file carries (if any)
};

struct Checkpoint {
  TensorMap tensors;
  nlohmann::json state = nlohmann::json::object();
  std::string path;  // where it was loaded from (named in errors about its contents)

  // The module's weights alone (tensors without the optimizer and metric-state prefixes).
  TensorMap weights() const;
  bool weights_only() const {
    auto it = state.find("weights_only");
    return it != state.end() && it->is_boolean() && it->get<bool>();
  }

  // Atomic (temporary file, fsync, rename): a failure raises IOError and leaves an old file intact.
  void save(const std::string& path) const;
  // IOError for an unreadable or damaged file (a tensor whose bytes, dtype or shape differ from its
  // recorded checksum is named), ValueError for a file that is not an Ember checkpoint.
  static Checkpoint load(const std::string& path, const CheckpointLoadOptions& options = {});
};

// Reads a checkpoint's run state as untrusted input: a missing field, a wrong type or a value out of
// range is a FormatError naming the file, the field (a dotted path: "loops.batches_total") and the value.
class StateReader {
 public:
  StateReader(std::string path, const nlohmann::json& root) : path_(std::move(path)), root_(root) {}
  bool has(const std::string& field) const { return find(field) != nullptr; }
  const nlohmann::json& at(const std::string& field) const;
  int64_t integer(const std::string& field, int64_t lo, int64_t hi) const;
  uint64_t unsigned_integer(const std::string& field) const;
  bool boolean(const std::string& field) const;
  double number(const std::string& field, double lo, double hi) const;
  const nlohmann::json& object(const std::string& field) const;
  const nlohmann::json& array(const std::string& field) const;
  [[noreturn]] void fail(const std::string& field, const std::string& why) const { fail_at(field, find(field), why); }
  // Runs `load` (a part's own load_state_dict over this field) and reports what it throws as this field's.
  template <class F>
  void section(const std::string& field, F&& load) const {
    section_of(field, at(field), std::forward<F>(load));
  }
  // The same for a value found otherwise (a key that holds dots), named `label` in errors.
  template <class F>
  void section_of(const std::string& label, const nlohmann::json& value, F&& load) const {
    try {
      load(value);
    } catch (const FormatError&) {
      throw;
    } catch (const std::exception& e) {
      fail_at(label, &value, e.what());
    }
  }

 private:
  const nlohmann::json* find(const std::string& field) const;
  [[noreturn]] void fail_at(const std::string& field, const nlohmann::json* value, const std::string& why) const;
  std::string path_;
  const nlohmann::json& root_;
};

}  // namespace ember::train
