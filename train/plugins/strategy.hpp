// Strategies (Lightning's): where a run's processes and tensors live and how the processes cooperate:
// device placement, the model wrapper, gradient reduction and no_sync, gradient clipping across ranks,
// barriers and broadcasts, which rank writes files and how a checkpoint's optimizer state is gathered.
// The Trainer asks its strategy at each of these points and has no case of its own for any of them:
// a new way to distribute training is a new class (pass an instance as TrainerOptions::strategy_instance).
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dist/communicator.hpp"
#include "dist/ddp.hpp"
#include "dist/process_group.hpp"
#include "nn/module.hpp"
#include "nn/optim/optimizer.hpp"
#include "train/checkpoint.hpp"
#include "train/plugins/checkpoint_io.hpp"
#include "train/plugins/precision.hpp"

namespace ember::train {

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::string name() const = 0;
  // True when the run spans several processes, one per device (the Trainer then checks that the
  // launcher started devices x num_nodes of them).
  virtual bool distributed() const { return false; }

  // Once, from the Trainer's constructor: picks this process's device (`cuda`: a CUDA device, else the
  // CPU) and joins the process group. `launch` is what the cluster environment says about this process.
  virtual void setup_environment(const dist::LaunchInfo& launch, bool cuda);
  Device root_device() const { return device_; }
  // The CPU communicator of the group (decisions and metrics every rank shares); null on one process.
  dist::Communicator* communicator() const { return comm_; }
  int global_rank() const { return comm_ ? comm_->rank() : 0; }
  int world_size() const { return comm_ ? comm_->world_size() : 1; }
  bool is_global_zero() const { return global_rank() == 0; }

  // ---- a fit's model and optimizers ----
  // After configure_optimizers (and before a checkpoint is restored): DDP starts every replica from rank
  // 0's weights and hooks gradient reduction into backward; `precision` is the run's plugin.
  virtual void setup_training(nn::Module& /*model*/, const std::vector<std::shared_ptr<optim::Optimizer>>& /*opts*/,
                              Precision& /*precision*/) {}
  // The fit ended or failed: what setup_training hooked in is removed.
  virtual void teardown_training() {}
  // Before each training step's forward (DDP: rank 0's buffers, e.g. BatchNorm statistics, everywhere).
  virtual void before_training_step() {}
  // Held while backward should leave gradients local (the first N-1 batches of an accumulation window,
  // or a manual no_sync); null when the strategy reduces nothing.
  virtual std::shared_ptr<void> block_backward_sync() { return nullptr; }
  // Gradient clipping as nn::clip_grad_norm_ / clip_grad_value_ over the whole model's gradients (a
  // sharded strategy's norm spans every rank's shard); returns the total norm before clipping (0-dim).
  virtual Tensor clip_grad_norm(const std::vector<Tensor>& params, double max_norm);
  virtual void clip_grad_value(const std::vector<Tensor>& params, double clip_value);
  // One optimizer step through the precision plugin (a sharded strategy then sends every rank the
  // updated parameters); true when it stepped.
  virtual bool optimizer_step(optim::Optimizer& opt, Precision& precision) { return precision.optimizer_step(opt); }
  // True when a step must go through optimizer_step (a sharded strategy sends the updated parameters to
  // every rank afterwards): under manual optimisation a plain opt.step() is then an error, not diverged replicas.
  virtual bool requires_optimizer_step() const { return false; }

  // ---- checkpoints ----
  // opt's whole state on the rank that writes the checkpoint; every rank calls it (a sharded strategy
  // gathers the shards here).
  virtual optim::StateDict optimizer_state(const optim::Optimizer& opt) { return opt.state_dict(); }
  // A whole state, as optimizer_state gave it (from a run with any number of ranks), into opt.
  virtual void load_optimizer_state(optim::Optimizer& opt, const optim::StateDict& state) {
    opt.load_state_dict(state);
  }
  using CheckpointWriter = std::function<void(const Checkpoint&, const std::string&)>;
  // Every rank calls it with the checkpoint it built: rank 0 writes it through `write`, and no rank goes
  // on before the file is there.
  virtual void save_checkpoint(const Checkpoint& checkpoint, const std::string& path, const CheckpointWriter& write);
  // Every rank calls it on the checkpoint it loaded to resume, before the run state is restored: a
  // sharded checkpoint (save_sharded) gets its shard files' optimizer entries, whatever wrote it.
  virtual void complete_checkpoint(Checkpoint& checkpoint, CheckpointIO& io);
  // Rank 0 removes or copies a checkpoint this strategy saved (ModelCheckpoint): with its shard files.
  virtual void remove_checkpoint(const std::string& path, CheckpointIO& io) { io.remove_checkpoint(path); }
  virtual void copy_checkpoint(const std::string& from, const std::string& to, CheckpointIO& io) {
    io.copy_checkpoint(from, to);
  }

  // ---- collectives (on one process: identities) ----
  void barrier() const;
  double all_reduce(double value, dist::ReduceOp op) const;
  std::string broadcast(const std::string& value, int root = 0) const;

 protected:
  Device device_{};
  dist::Communicator* comm_ = nullptr;       // the CPU group (null: one process)
  dist::Communicator* grad_comm_ = nullptr;  // the group of device_'s tensors (gradients)
};

// One process on one device: "single_device" (and "auto" when the launcher started one process).
class SingleDeviceStrategy : public Strategy {
 public:
  std::string name() const override { return "single_device"; }
};

struct DDPStrategyOptions {
  double bucket_cap_mb = 25.0;  // gradient buckets, all-reduced while backward goes on
  // Seconds a collective may wait for the other ranks before it raises DistError; unset: the group's.
  std::optional<double> timeout = std::nullopt;
  bool broadcast_buffers = true;  // rank 0's buffers to every rank before each training step
};

// Data parallel ("ddp"): one process per device, each with a whole replica; gradients are averaged by
// dist::DistributedDataParallel during backward.
class DDPStrategy : public Strategy {
 public:
  explicit DDPStrategy(DDPStrategyOptions options = {});
  std::string name() const override { return "ddp"; }
  bool distributed() const override { return true; }
  void setup_environment(const dist::LaunchInfo& launch, bool cuda) override;
  void setup_training(nn::Module& model, const std::vector<std::shared_ptr<optim::Optimizer>>& opts,
                      Precision& precision) override;
  void teardown_training() override { ddp_.reset(); }
  void before_training_step() override;
  std::shared_ptr<void> block_backward_sync() override;
  // The reducer of the fit in progress (null outside one).
  dist::DistributedDataParallel* reducer() { return ddp_ ? &*ddp_ : nullptr; }

 protected:
  DDPStrategyOptions options_;
  std::optional<dist::DistributedDataParallel> ddp_;
};

}  // namespace ember::train
