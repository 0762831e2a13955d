// The sharded data-parallel strategy ("ddp_sharded", ZeRO stage 1 and 2): DDP's processes and launch,
// with dist::ShardedDataParallel in place of DDP's reducer. Each rank keeps the optimizer state of its
// shard of the parameters (stage 2: and only that shard's reduced gradients); after each optimizer step
// the updated parameters are gathered to every rank. Clipping uses the norm over every rank's shard; a
// 16-mixed scaler's Inf/NaN decision is shared by all ranks. Checkpoints hold the whole optimizer state,
// consolidated on rank 0 (the same file DDP writes), and load into any number of ranks.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dist/sharded.hpp"
#include "train/plugins/strategy.hpp"

namespace ember::train {

struct DDPShardedStrategyOptions {
  int stage = 2;                // 1: optimizer state sharded; 2: and gradients
  double bucket_cap_mb = 25.0;  // reduction and gather buckets
  std::optional<double> timeout = std::nullopt;
  bool broadcast_buffers = true;
  // Checkpoints: each rank writes its own optimizer-state shard ("<path>.shard-<r>-of-<N>.safetensors")
  // and rank 0 "<path>" with the weights, run state and an index, instead of consolidating on rank 0.
  // Any strategy and rank count loads either layout (see sharded_checkpoint.hpp).
  bool save_sharded = false;
};

class DDPShardedStrategy : public DDPStrategy {
 public:
  explicit DDPShardedStrategy(DDPShardedStrategyOptions options = {});
  std::string name() const override { return "ddp_sharded"; }
  void setup_training(nn::Module& model, const std::vector<std::shared_ptr<optim::Optimizer>>& opts,
                      Precision& precision) override;
  void teardown_training() override;
  void before_training_step() override;
  std::shared_ptr<void> block_backward_sync() override;
  // The global norm over every rank's shard (params: the Trainer's; the shard's owned gradients are used).
  Tensor clip_grad_norm(const std::vector<Tensor>& params, double max_norm) override;
  void clip_grad_value(const std::vector<Tensor>& params, double clip_value) override;
  // The precision plugin's step on this rank's shard, then every parameter from its owner to every rank.
  bool optimizer_step(optim::Optimizer& opt, Precision& precision) override;
  bool requires_optimizer_step() const override { return true; }
  // Every rank calls it (also after the fit): rank 0 gets the whole state, the others an empty one.
  optim::StateDict optimizer_state(const optim::Optimizer& opt) override;
  // A whole state (from any number of ranks): this rank's shard of it.
  void load_optimizer_state(optim::Optimizer& opt, const optim::StateDict& state) override;
  // save_sharded: every rank writes its shard, then rank 0 the index (else: rank 0 the whole file).
  void save_checkpoint(const Checkpoint& checkpoint, const std::string& path, const CheckpointWriter& write) override;
  // save_sharded: the index and this run's world_size shard files.
  void remove_checkpoint(const std::string& path, CheckpointIO& io) override;
  void copy_checkpoint(const std::string& from, const std::string& to, CheckpointIO& io) override;

  // The wrapper of the fit in progress (null outside one).
  dist::ShardedDataParallel* sharded() { return sdp_ ? &*sdp_ : nullptr; }

 private:
  DDPShardedStrategyOptions sharded_options_;
  std::optional<dist::ShardedDataParallel> sdp_;
  // Each optimizer's parameter owners, kept after the fit so a checkpoint saved then is still whole.
  std::map<const optim::Optimizer*, std::vector<int>> owners_;
  std::vector<const optim::Optimizer*> optimizer_order_;  // setup_training's order (the checkpoint's)
  GradScaler* scaler_ = nullptr;                          // whose Inf/NaN decision this strategy made global
};

}  // namespace ember::train
