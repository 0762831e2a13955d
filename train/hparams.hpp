// load_from_checkpoint (Lightning's LightningModule.load_from_checkpoint): rebuilds a module from the
// hyperparameters its checkpoint recorded (save_hyperparameters) and loads the weights into it.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>

#include "core/device.hpp"
#include "core/error.hpp"
#include "train/checkpoint.hpp"
#include "train/module.hpp"

namespace ember::train {

struct LoadFromCheckpointOptions {
  bool strict = true;                                 // every weight present, none left over (load_state_dict's strict)
  std::optional<Device> map_location = std::nullopt;  // move the module there after loading
  // Replaces entries of the saved hyperparameters before the module is built (Lightning's **kwargs).
  nlohmann::json hparams_overrides = nlohmann::json::object();
};

namespace detail {
template <class M>
concept BuiltFromHparams = requires {
  typename M::Hparams;
}
&&std::is_constructible_v<M, typename M::Hparams>;

// The saved hyperparameters of a checkpoint (an empty object when it has none), with overrides applied.
nlohmann::json checkpoint_hparams(const Checkpoint& checkpoint, const nlohmann::json& overrides);
}  // namespace detail

// The module is built the first way that applies, so that constructor arguments read naturally in C++:
//   1. M(h.get<M::Hparams>()) when M declares `using Hparams = MyConfig;` (a struct with nlohmann's
//      to_json/from_json, e.g. NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT) and takes one;
//   2. M(const nlohmann::json& hparams);
//   3. M() (the checkpoint's hyperparameters are then recorded on it unless its constructor saved some).
// Then the weights are loaded (strict by default) and the module is moved to map_location.
template <class M>
requires std::derived_from<M, TrainModule> std::unique_ptr<M> load_from_checkpoint(
    const std::string& path, const LoadFromCheckpointOptions& options = {}) {
  const Checkpoint ck = Checkpoint::load(path);
  const nlohmann::json h = detail::checkpoint_hparams(ck, options.hparams_overrides);
  std::unique_ptr<M> m;
  if constexpr (detail::BuiltFromHparams<M>) {
    typename M::Hparams args;
    try {
      args = h.get<typename M::Hparams>();
    } catch (const nlohmann::json::exception& e) {
      throw ValueError(::ember::detail::cat_str("[load_from_checkpoint] the hyperparameters in ", path,
                                                " do not convert to the module's Hparams: ", e.what()));
    }
    m = std::make_unique<M>(args);
  } else if constexpr (std::is_constructible_v<M, const nlohmann::json&>) {
    m = std::make_unique<M>(h);
  } else {
    static_assert(std::is_default_constructible_v<M>,
                  "load_from_checkpoint<M>: M needs a constructor taking M::Hparams, a nlohmann::json of "
                  "hyperparameters, or nothing");
    m = std::make_unique<M>();
  }
  if (m->hparams().empty() && !h.empty()) m->save_hyperparameters(h);
  m->load_state_dict(ck.weights(), options.strict);
  if (options.map_location) m->to(*options.map_location);
  return m;
}

}  // namespace ember::train
