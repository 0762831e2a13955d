// Sharded checkpoints (DDPShardedStrategyOptions::save_sharded): instead of consolidating optimizer
// state on rank 0, every rank r of N writes "<path>.shard-<r>-of-<N>.safetensors" holding its owned
// optimizer entries, and rank 0 then writes "<path>" itself with the weights, the run state and, under
// the metadata key "optimizer_shards", the index: {"world_size": N, "files": [suffixes appended to
// <path>], "owners": [per optimizer, the owner rank of each parameter]}. Any strategy with any rank
// count loads it: complete_sharded_checkpoint reads every shard back into the checkpoint's tensors,
// after which it is the consolidated checkpoint (each rank then keeps its own subset).
#pragma once
#include <string>
#include <vector>

#include "dist/communicator.hpp"
#include "train/checkpoint.hpp"
#include "train/plugins/checkpoint_io.hpp"

namespace ember::train {

inline constexpr const char* kOptimizerShardsKey = "optimizer_shards";

// ".shard-<r>-of-<n>.safetensors": appended to the index's path.
std::string shard_suffix(int rank, int world_size);

// Every rank calls it with its checkpoint (whose optimizer_states.* tensors are its owned entries) and
// `owners` (per optimizer). Each rank writes its shard through `write`; after a barrier rank 0 writes the
// index file (so an index on disk means every shard was written), then a last barrier.
void save_sharded_checkpoint(const Checkpoint& checkpoint, const std::string& path,
                             const std::vector<std::vector<int>>& owners, dist::Communicator& comm,
                             const std::function<void(const Checkpoint&, const std::string&)>& write);

// A checkpoint with an "optimizer_shards" index gets every shard's entries (read through `io`); one
// without it is left alone. A missing or damaged shard, or one whose entries do not match the index, is
// an IOError/FormatError naming the shard's file.
void complete_sharded_checkpoint(Checkpoint& checkpoint, CheckpointIO& io);

// The index and its shards (written by `world_size` ranks): removed (the index first) or copied (the
// shards first), so a set is never seen half there.
void remove_sharded_checkpoint(const std::string& path, int world_size, CheckpointIO& io);
void copy_sharded_checkpoint(const std::string& from, const std::string& to, int world_size, CheckpointIO& io);

}  // namespace ember::train
