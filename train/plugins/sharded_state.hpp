// Optimizer state under dist::ShardedDataParallel: each rank's optimizer holds state for the parameters
// it owns only (state.<index>.<name> entries of those indices). These functions turn the ranks' shards
// into one whole state dict on one rank (a consolidated checkpoint, the same file DDP writes) and a
// whole state dict into one rank's shard for any world size, so a run saved with N ranks resumes with M.
#pragma once
#include <vector>

#include "core/tensor.hpp"
#include "dist/communicator.hpp"
#include "dist/sharded.hpp"
#include "nn/optim/optimizer.hpp"

namespace ember::train {

// The owner rank of each of opt's parameters, numbered across its groups as state_dict() numbers them:
// its owner in `sharded`'s partition, or rank 0 for a parameter the wrapper does not manage (frozen, or
// not the wrapped model's: every rank steps it alike).
std::vector<int> optimizer_owners(const optim::Optimizer& opt, const dist::ShardedDataParallel& sharded);
// The same from the wrapped parameters and their owners (ShardedDataParallel::parameters(), owner()).
std::vector<int> optimizer_owners(const optim::Optimizer& opt, const std::vector<Tensor>& sharded_params,
                                  const std::vector<int>& param_owners);
// The owners a run with world_size ranks would use (ShardedDataParallel::partition of the wrapped
// parameters' bytes): for loading a checkpoint into a different number of ranks.
std::vector<int> optimizer_owners(const optim::Optimizer& opt, const std::vector<Tensor>& sharded_params,
                                  int world_size);

// The entries of `state` whose parameter `rank` owns; param_groups unchanged. What a rank gives its
// optimizer's load_state_dict (which resets the state of parameters without entries).
optim::StateDict shard_state_dict(const optim::StateDict& state, const std::vector<int>& owners, int rank);

// Every rank calls it with its optimizer's state_dict(): `root` receives the whole state (every rank's
// owned entries, as CPU tensors from the other ranks), the others a state without entries (param_groups
// kept). Entries a rank holds for parameters it does not own are ignored. `comm` must take CPU tensors
// (the CPU group); each rank's shard travels in one broadcast per dtype, so every rank briefly holds
// one other rank's shard.
optim::StateDict consolidate_state_dict(const optim::StateDict& local, const std::vector<int>& owners,
                                        dist::Communicator& comm, int root = 0);

// Drops opt's state for parameters other ranks own (Adagrad makes state for every parameter when it is
// built; lazily-made state never appears for them).
void drop_unowned_state(optim::Optimizer& opt, const std::vector<int>& owners, int rank);

// The bytes of a state dict's tensors (what a rank's optimizer state costs).
int64_t state_bytes(const optim::StateDict& state);

}  // namespace ember::train
