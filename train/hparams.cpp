// load_from_checkpoint's non-template part: the saved hyperparameters of a checkpoint.
#include "train/hparams.hpp"

namespace ember::train::detail {

nlohmann::json checkpoint_hparams(const Checkpoint& checkpoint, const nlohmann::json& overrides) {
  nlohmann::json h = nlohmann::json::object();
  if (auto it = checkpoint.state.find("hparams"); it != checkpoint.state.end() && !it->is_null()) {
    EMBER_CHECK(it->is_object(), FormatError, "[load_from_checkpoint] ", checkpoint.path,
                ": 'hparams' must be a JSON object, got ", it->type_name());
    h = *it;
  }
  EMBER_CHECK(overrides.is_object(), ValueError, "[load_from_checkpoint] hparams_overrides must be a JSON object, got ",
              overrides.type_name());
  h.update(overrides);
  return h;
}

}  // namespace ember::train::detail
