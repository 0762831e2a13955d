// Checkpoint files: safetensors with the run's state as JSON metadata.
#include "train/checkpoint.hpp"

#include "core/error.hpp"

namespace ember::train {
namespace {
constexpr const char* kStateKey = "ember_checkpoint";
}

TensorMap Checkpoint::weights() const {
  TensorMap out;
  for (const auto& [k, v] : tensors)
    if (k.rfind(kOptimizerPrefix, 0) != 0) out.emplace(k, v);
  return out;
}

void Checkpoint::save(const std::string& path) const { ember::save(path, tensors, {{kStateKey, state.dump()}}); }

Checkpoint Checkpoint::load(const std::string& path) {
  Metadata meta;
  Checkpoint c;
  c.tensors = ember::load(path, &meta);
  auto it = meta.find(kStateKey);
  EMBER_CHECK(it != meta.end(), ValueError, "[Checkpoint] ", path,
              " is a safetensors file but not an Ember checkpoint (no \"", kStateKey, "\" metadata)");
  try {
    c.state = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    throw IOError(detail::cat_str("[Checkpoint] ", path, ": the state metadata is damaged (", e.what(), ")"));
  }
  EMBER_CHECK(c.state.is_object(), IOError, "[Checkpoint] ", path, ": the state metadata is not a JSON object");
  return c;
}

}  // namespace ember::train
