// DDPShardedStrategy: dist::ShardedDataParallel hooked into the Trainer's seams (see ddp_sharded.hpp),
// with the optimizer-state consolidation of sharded_state.hpp for checkpoints.
#include "train/plugins/ddp_sharded.hpp"

#include "core/error.hpp"
#include "core/ops/creation.hpp"
#include "train/plugins/sharded_checkpoint.hpp"
#include "train/plugins/sharded_state.hpp"

namespace ember::train {

DDPShardedStrategy::DDPShardedStrategy(DDPShardedStrategyOptions options)
    : DDPStrategy(DDPStrategyOptions{.bucket_cap_mb = options.bucket_cap_mb,
                                     .timeout = options.timeout,
                                     .broadcast_buffers = options.broadcast_buffers}),
      sharded_options_(options) {
  EMBER_CHECK(options.stage == 1 || options.stage == 2, ValueError, "[DDPShardedStrategy] stage must be 1 or 2, got ",
              options.stage);
}

void DDPShardedStrategy::setup_training(nn::Module& model, const std::vector<std::shared_ptr<optim::Optimizer>>& opts,
                                        Precision& precision) {
  sdp_.emplace(model, *grad_comm_,
               dist::ShardedOptions{.stage = sharded_options_.stage,
                                    .bucket_cap_mb = sharded_options_.bucket_cap_mb,
                                    .broadcast_buffers = sharded_options_.broadcast_buffers});
  // State an optimizer made at construction (Adagrad) for parameters other ranks own goes.
  owners_.clear();
  optimizer_order_.clear();
  for (const auto& opt : opts) {
    optimizer_order_.push_back(opt.get());
    owners_[opt.get()] = optimizer_owners(*opt, *sdp_);
    drop_unowned_state(*opt, owners_[opt.get()], global_rank());
  }
  scaler_ = precision.scaler();
  if (scaler_ != nullptr) {
    dist::Communicator* comm = comm_;
    scaler_->set_found_inf_sync([comm](bool found) { return comm->any(found); });
  }
}

void DDPShardedStrategy::teardown_training() {
  if (scaler_ != nullptr) scaler_->set_found_inf_sync(nullptr);
  scaler_ = nullptr;
  sdp_.reset();
}

void DDPShardedStrategy::before_training_step() {
  if (sdp_) sdp_->sync_buffers();
}

std::shared_ptr<void> DDPShardedStrategy::block_backward_sync() {
  return sdp_ ? std::make_shared<dist::ShardedDataParallel::NoSync>(*sdp_) : nullptr;
}

Tensor DDPShardedStrategy::clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  if (!sdp_) return Strategy::clip_grad_norm(params, max_norm);
  return sdp_->clip_grad_norm_(max_norm);
}

void DDPShardedStrategy::clip_grad_value(const std::vector<Tensor>& params, double clip_value) {
  if (!sdp_) return Strategy::clip_grad_value(params, clip_value);
  sdp_->clip_grad_value_(clip_value);
}

bool DDPShardedStrategy::optimizer_step(optim::Optimizer& opt, Precision& precision) {
  const bool stepped = precision.optimizer_step(opt);
  // Also after a skipped step (a scaler's Inf/NaN): every rank must issue the same collectives.
  if (sdp_) sdp_->gather_parameters();
  return stepped;
}

optim::StateDict DDPShardedStrategy::optimizer_state(const optim::Optimizer& opt) {
  auto it = owners_.find(&opt);
  if (it == owners_.end() || comm_ == nullptr) return opt.state_dict();  // not one of a sharded fit's
  if (sharded_options_.save_sharded) return shard_state_dict(opt.state_dict(), it->second, global_rank());
  return consolidate_state_dict(opt.state_dict(), it->second, *comm_, 0);
}

void DDPShardedStrategy::save_checkpoint(const Checkpoint& checkpoint, const std::string& path,
                                         const CheckpointWriter& write) {
  if (!sharded_options_.save_sharded || comm_ == nullptr || owners_.empty())
    return Strategy::save_checkpoint(checkpoint, path, write);
  // owners_ is keyed by address: the Trainer's optimizers in checkpoint order are what make_checkpoint
  // numbered, so the index lists owners in the order optimizer_states.<i> entries name.
  std::vector<std::vector<int>> owners;
  for (const optim::Optimizer* opt : optimizer_order_) owners.push_back(owners_.at(opt));
  save_sharded_checkpoint(checkpoint, path, owners, *comm_, write);
}

void DDPShardedStrategy::remove_checkpoint(const std::string& path, CheckpointIO& io) {
  if (!sharded_options_.save_sharded) return io.remove_checkpoint(path);
  remove_sharded_checkpoint(path, world_size(), io);
}

void DDPShardedStrategy::copy_checkpoint(const std::string& from, const std::string& to, CheckpointIO& io) {
  if (!sharded_options_.save_sharded) return io.copy_checkpoint(from, to);
  copy_sharded_checkpoint(from, to, world_size(), io);
}

void DDPShardedStrategy::load_optimizer_state(optim::Optimizer& opt, const optim::StateDict& state) {
  auto it = owners_.find(&opt);
  if (it == owners_.end()) return opt.load_state_dict(state);
  opt.load_state_dict(shard_state_dict(state, it->second, global_rank()));
}

}  // namespace ember::train
