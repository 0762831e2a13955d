// The built-in strategies (see strategy.hpp).
#include "train/plugins/strategy.hpp"

#include <cmath>

#include "core/error.hpp"
#include "nn/clip_grad.hpp"
#include "train/plugins/sharded_checkpoint.hpp"

namespace ember::train {

void Strategy::setup_environment(const dist::LaunchInfo& /*launch*/, bool cuda) {
  device_ = cuda ? Device(Device::Kind::CUDA, 0) : Device();
}

Tensor Strategy::clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  return nn::clip_grad_norm_(params, max_norm);
}

void Strategy::clip_grad_value(const std::vector<Tensor>& params, double clip_value) {
  nn::clip_grad_value_(params, clip_value);
}

void Strategy::save_checkpoint(const Checkpoint& checkpoint, const std::string& path, const CheckpointWriter& write) {
  if (is_global_zero()) write(checkpoint, path);
  barrier();
}

void Strategy::complete_checkpoint(Checkpoint& checkpoint, CheckpointIO& io) {
  complete_sharded_checkpoint(checkpoint, io);
}

void Strategy::barrier() const {
  if (comm_ != nullptr) comm_->barrier();
}

double Strategy::all_reduce(double value, dist::ReduceOp op) const {
  return comm_ != nullptr ? comm_->all_reduce_scalar(value, op) : value;
}

std::string Strategy::broadcast(const std::string& value, int root) const {
  return comm_ != nullptr ? comm_->broadcast_string(value, root) : value;
}

DDPStrategy::DDPStrategy(DDPStrategyOptions options) : options_(options) {
  EMBER_CHECK(options_.bucket_cap_mb > 0, ValueError, "[DDPStrategy] bucket_cap_mb must be > 0, got ",
              options_.bucket_cap_mb);
  EMBER_CHECK(!options_.timeout || (std::isfinite(*options_.timeout) && *options_.timeout > 0), ValueError,
              "[DDPStrategy] timeout must be a positive number of seconds, got ", options_.timeout.value_or(0));
}

void DDPStrategy::setup_environment(const dist::LaunchInfo& launch, bool cuda) {
  device_ = cuda ? Device(Device::Kind::CUDA, dist::local_cuda_device(launch, cuda_device_count())) : Device();
  // Each rank works on its own GPU from the start: nothing (the NCCL communicator, streams, loader
  // threads' pinned memory) then opens a context on GPU 0.
  if (cuda) set_device(device_);
  if (options_.timeout) dist::set_timeout(*options_.timeout);  // before the first collective
  comm_ = &dist::world();
  grad_comm_ = &dist::world(device_);
}

void DDPStrategy::setup_training(nn::Module& model, const std::vector<std::shared_ptr<optim::Optimizer>>& /*opts*/,
                                 Precision& /*precision*/) {
  // rank 0's weights everywhere, and a gradient reducer hooked into backward
  ddp_.emplace(
      model, *grad_comm_,
      dist::DDPOptions{.bucket_cap_mb = options_.bucket_cap_mb, .broadcast_buffers = options_.broadcast_buffers});
}

void DDPStrategy::before_training_step() {
  if (ddp_) ddp_->sync_buffers();  // as PyTorch's DDP before each forward
}

std::shared_ptr<void> DDPStrategy::block_backward_sync() {
  return ddp_ ? std::make_shared<dist::DistributedDataParallel::NoSync>(*ddp_) : nullptr;
}

}  // namespace ember::train
