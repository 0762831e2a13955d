// A data loader's saved position moved to another world size (a checkpoint written by N ranks resumed
// by M). Under a DistributedSampler rank r reads positions r, r + R, ... of the epoch's order, so the
// first k batches of every rank together are the first k x batch_size x R examples of that order: a
// position maps exactly when the global batch (batch_size x ranks) is unchanged, or at an epoch
// boundary (batch 0), whatever the batch sizes. Anything else is a ValueError that says so.
#pragma once
#include <nlohmann/json.hpp>

#include "train/data/loader.hpp"

namespace ember::train {

// `saved` (a DataLoader::state_dict() of one rank of the saving run) as `loader`'s state:
// the same epoch, seed and position in the epoch's global order. A state of the same world
// size only has its sampler's rank replaced.
nlohmann::json map_loader_state(const nlohmann::json& saved, const data::DataLoader& loader);

}  // namespace ember::train
