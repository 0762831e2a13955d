// DistributedDataParallel: keeps a model's replicas equal across the ranks of a communicator. It starts
// them from rank 0's parameters and buffers, and after every backward every rank holds the mean of all
// ranks' gradients. Gradients go into buckets of about bucket_cap_mb (in reverse parameter order, roughly
// the order backward produces them); a bucket all-reduces asynchronously as soon as each of its
// parameters has its gradient, while backward goes on, and the end of backward waits for them all.
// Each rank divides its gradients by the world size before the sum (as PyTorch's DDP), so f16 sums do not
// overflow where the mean would not. A gradient that grows after its bucket's all-reduce started (a
// parameter reached again by a nested backward: a weight used inside an activation-checkpointed block and
// elsewhere) raises AutogradError, as PyTorch's DDP does, instead of leaving that part out of the mean.
// On a GPU nothing in this is a host synchronisation unless a rank lacks a parameter's gradient.
// Construction first compares the ranks' models (count, names, shapes, dtypes of parameters and buffers)
// in one small all-gather, so different models raise DistError on every rank instead of mixing weights.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/tensor.hpp"
#include "dist/communicator.hpp"
#include "dist/process_group.hpp"
#include "dist/replica.hpp"

namespace ember::dist {

struct DDPOptions {
  double bucket_cap_mb = 25.0;
  // sync_buffers() (which the Trainer calls before each training step, as PyTorch's DDP does in forward)
  // broadcasts rank 0's buffers, e.g. BatchNorm's running statistics; false: each rank keeps its own.
  bool broadcast_buffers = true;
};

class DistributedDataParallel : public Replica {
 public:
  using NamedTensors = detail::NamedTensors;

  // A module, a module handle, or its parameters and buffers (dist/replica.hpp's ModelTensors).
  explicit DistributedDataParallel(ModelTensors model, Communicator& comm = world(), DDPOptions options = {});
  DistributedDataParallel(NamedTensors parameters, NamedTensors buffers, Communicator& comm = world(),
                          DDPOptions options = {})
      : DistributedDataParallel(ModelTensors(std::move(parameters), std::move(buffers)), comm, options) {}
  DistributedDataParallel(const std::vector<Tensor>& parameters, const std::vector<Tensor>& buffers,
                          Communicator& comm = world(), DDPOptions options = {})
      : DistributedDataParallel(ModelTensors(parameters, buffers), comm, options) {}
  ~DistributedDataParallel();
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  using NoSync = dist::NoSync;  // no_sync() and require_backward_grad_sync() come from Replica

  // Rank 0's parameters and buffers to every rank (the constructor does this).
  void sync_parameters();
  // Rank 0's buffers to every rank (nothing when broadcast_buffers is false or the world has one rank).
  void sync_buffers();

  Communicator& communicator() const { return comm_; }
  // Parameter indices (into the parameters given, those requiring gradients) of each bucket, in
  // reduction order.
  std::vector<std::vector<size_t>> bucket_layout() const;
  // Buckets whose all-reduce started inside backward (not at its end) in the last synchronised backward.
  int64_t buckets_launched_early() const { return launched_early_; }

  struct Bucket;

 private:
  void on_grad_ready(size_t param);
  void launch(size_t bucket);
  void finish();  // queued at the end of each synchronised backward

  std::vector<Tensor> params_, buffers_;
  Communicator& comm_;
  DDPOptions options_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<size_t> bucket_of_;  // per parameter
  std::vector<char> arrived_;      // per parameter: its gradient arrived in this backward
  std::vector<HookHandle> hooks_;
  bool in_backward_ = false;  // a finish() is queued
  size_t next_launch_ = 0;    // buckets launch in order, so every rank issues the same sequence
  int64_t launched_early_ = 0;
};

using DDP = DistributedDataParallel;

}  // namespace ember::dist
