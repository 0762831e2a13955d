// ShardedDataParallel: data parallelism with the optimizer state sharded over the ranks (ZeRO stage 1)
// and optionally the reduced gradients too (stage 2). The parameters are split into contiguous runs,
// one per rank, balanced by bytes; rank r "owns" its run. After backward a rank holds the mean gradient
// of its own parameters only (the others' gradients are undefined), so the user's own optimizer, which
// skips parameters without a gradient and makes state lazily, keeps state for the owned shard only.
// After optimizer.step(), gather_parameters() sends every parameter from its owner to every rank.
//
//   dist::ShardedDataParallel sdp(model, dist::world(), {.stage = 2});
//   optim::AdamW opt(model->parameters());          // every parameter: state appears for the owned ones
//   loss.backward();                                  // reduce(-scatter)s in buckets during backward
//   sdp.clip_grad_norm_(1.0);                         // the global norm over the shards
//   opt.step();
//   sdp.gather_parameters();                          // replicas equal again before the next forward
//
// Stage 1 all-reduces each bucket (as DDP) and drops the non-owned gradients; stage 2 reduce-scatters
// each bucket so a rank receives only its owned parameters' sums, and drops the non-owned gradients as
// soon as their bucket is packed. reduce_scatter needs equal parts, so a bucket whose owners' regions
// differ much in size (one owner: all the bucket) would be padded to world_size times its largest
// region; such a bucket (padding over 2x) all-reduces its compact buffer instead, which costs less in
// memory and no more on the wire. Like DDP it starts every replica from rank 0's tensors and refuses
// ranks whose models differ.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"
#include "dist/communicator.hpp"
#include "dist/process_group.hpp"
#include "dist/replica.hpp"

namespace ember::dist {

struct ShardedOptions {
  int stage = 2;  // 1: shard the optimizer state; 2: and the reduced gradients
  double bucket_cap_mb = 25.0;
  bool broadcast_buffers = true;  // sync_buffers() sends rank 0's buffers (as DDPOptions)
};

class ShardedDataParallel : public Replica {
 public:
  using NamedTensors = detail::NamedTensors;

  // A module, a module handle, or its parameters and buffers (dist/replica.hpp's ModelTensors).
  explicit ShardedDataParallel(ModelTensors model, Communicator& comm = world(), ShardedOptions options = {});
  ShardedDataParallel(NamedTensors parameters, NamedTensors buffers, Communicator& comm = world(),
                      ShardedOptions options = {})
      : ShardedDataParallel(ModelTensors(std::move(parameters), std::move(buffers)), comm, options) {}
  ShardedDataParallel(const std::vector<Tensor>& parameters, const std::vector<Tensor>& buffers,
                      Communicator& comm = world(), ShardedOptions options = {})
      : ShardedDataParallel(ModelTensors(parameters, buffers), comm, options) {}
  ~ShardedDataParallel();
  ShardedDataParallel(const ShardedDataParallel&) = delete;
  ShardedDataParallel& operator=(const ShardedDataParallel&) = delete;

  using NoSync = dist::NoSync;  // no_sync() and require_backward_grad_sync() come from Replica

  // ---- the partition
  // The owner rank of each of these parameter sizes (bytes) over world_size ranks: contiguous runs in
  // order, balanced by bytes (a parameter goes to the rank its byte midpoint falls in), deterministic.
  // Ranks may own nothing when there are fewer parameters than ranks.
  static std::vector<int> partition(const std::vector<int64_t>& bytes, int world_size);
  // The parameters (those requiring gradients, in the order given) and their owners.
  const std::vector<Tensor>& parameters() const { return params_; }
  int owner(size_t param_index) const;
  // The owner of a parameter tensor (the same TensorImpl); -1 when it is not one of parameters().
  int owner_of(const Tensor& param) const;
  std::vector<size_t> owned() const;  // this rank's parameter indices
  std::vector<Tensor> owned_parameters() const;
  int stage() const { return options_.stage; }

  // ---- replicas
  void sync_parameters();  // rank 0's parameters and buffers to every rank (the constructor does this)
  void sync_buffers();     // rank 0's buffers (unless broadcast_buffers is false)
  // Every rank gets every parameter's value from its owner: call after the optimizer step (which
  // changed only owned parameters). One broadcast per owner's region of each bucket (no padding), at
  // most two in flight; it returns when the replicas are equal (no overlap with the next forward).
  void gather_parameters();

  // ---- what the optimizer step needs from all ranks
  // The norm of all ranks' owned gradients together (= nn::clip_grad_norm_ over the full gradients),
  // then owned gradients scaled by min(1, max_norm / (norm + 1e-6)). Returns the total norm, a float64
  // 0-dim tensor on the parameters' device (no host sync unless error_if_nonfinite); every rank must call
  // it. norm_type: p > 0 or INFINITY.
  Tensor clip_grad_norm_(double max_norm, double norm_type = 2.0, bool error_if_nonfinite = false);
  // Clamps the owned gradients (elementwise, so local).
  void clip_grad_value_(double clip_value);
  // Whether any rank's owned gradients hold an Inf or NaN: the same answer on every rank.
  bool found_nonfinite();
  // Any rank's flag (a grad scaler's "found inf" must agree: GradScaler::set_found_inf_sync).
  bool any_rank(bool flag) { return comm_.any(flag); }

  Communicator& communicator() const { return comm_; }
  // Parameter indices of each reduction bucket, in reduction order (reverse parameter order).
  std::vector<std::vector<size_t>> bucket_layout() const;
  int64_t buckets_launched_early() const { return launched_early_; }

  struct Bucket;

 private:
  void on_grad_ready(size_t param);
  void launch(size_t bucket);
  void settle(size_t bucket);  // waits for a launched bucket and writes the owned mean gradients
  void finish();               // queued at the end of each synchronised backward

  std::vector<Tensor> params_, buffers_;
  std::vector<int> owners_;
  Communicator& comm_;
  ShardedOptions options_;
  std::vector<std::unique_ptr<Bucket>> buckets_;  // reduction: reverse parameter order
  std::vector<std::vector<size_t>> gather_plan_;  // gather: parameter order
  std::vector<size_t> bucket_of_;
  std::vector<HookHandle> hooks_;
  bool in_backward_ = false;
  size_t next_launch_ = 0, next_settle_ = 0;
  int64_t launched_early_ = 0;
};

}  // namespace ember::dist
