// DistributedDataParallel: the bucket buffers (the model check and bucket plan are in replica.cpp), the gradient
// hooks that launch bucket all-reduces during backward, and the end-of-backward step that writes the
// mean gradients back.
#include "dist/ddp.hpp"

#include <algorithm>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops/creation.hpp"
#include "dist/replica.hpp"

namespace ember::dist {

// One flat buffer per bucket: the gradients of its parameters back to back, then one slot per parameter
// saying whether the rank had a gradient for it (the reduced slot counts the ranks that had one; none:
// the gradient stays undefined, so an optimizer skips the parameter as it would in one process).
struct DistributedDataParallel::Bucket {
  std::vector<size_t> params;
  std::vector<int64_t> offsets;
  int64_t grads_numel = 0;
  Tensor flat;
  size_t ready = 0;         // parameters whose gradient arrived in this backward
  bool all_present = true;  // at the last launch, this rank had every parameter's gradient
  Work work;
};

DistributedDataParallel::DistributedDataParallel(ModelTensors model, Communicator& comm, DDPOptions options)
    : comm_(comm), options_(options) {
  EMBER_CHECK(options_.bucket_cap_mb > 0, ValueError, "[DistributedDataParallel] bucket_cap_mb must be > 0, got ",
              options_.bucket_cap_mb);
  detail::check_same_model(comm_, model.parameters, model.buffers, "DistributedDataParallel");
  params_ = detail::trainable(std::move(model.parameters), comm_, "DistributedDataParallel");
  for (auto& [name, t] : model.buffers) buffers_.push_back(std::move(t));
  bucket_of_.resize(params_.size());
  arrived_.resize(params_.size());
  for (std::vector<size_t>& plan : detail::plan_buckets(params_, options_.bucket_cap_mb * 1024.0 * 1024.0)) {
    auto b = std::make_unique<Bucket>();
    for (size_t k : plan) {
      b->params.push_back(k);
      b->offsets.push_back(b->grads_numel);
      b->grads_numel += params_[k].numel();
      bucket_of_[k] = buckets_.size();
    }
    buckets_.push_back(std::move(b));
  }
  for (auto& b : buckets_) {
    const Tensor& p0 = params_[b->params.front()];
    b->flat =
        zeros({b->grads_numel + static_cast<int64_t>(b->params.size())}, {.dtype = p0.dtype(), .device = p0.device()});
  }
  sync_parameters();
  for (size_t k = 0; k < params_.size(); ++k)
    hooks_.push_back(params_[k].register_post_accumulate_grad_hook([this, k](const Tensor&) { on_grad_ready(k); }));
}

DistributedDataParallel::~DistributedDataParallel() {
  for (auto& h : hooks_) h.remove();
  for (auto& b : buckets_) {
    try {
      b->work.wait();  // a backward that threw may have left reductions in flight on our buffers
    } catch (...) {
    }
  }
}

void DistributedDataParallel::sync_parameters() { detail::broadcast_replica(comm_, params_, buffers_); }

void DistributedDataParallel::sync_buffers() {
  if (comm_.world_size() == 1 || !options_.broadcast_buffers) return;
  std::vector<Work> works;
  for (const Tensor& b : buffers_) works.push_back(comm_.broadcast_async(b, 0));
  for (Work& w : works) w.wait();
}

std::vector<std::vector<size_t>> DistributedDataParallel::bucket_layout() const {
  std::vector<std::vector<size_t>> layout;
  for (const auto& b : buckets_) layout.push_back(b->params);
  return layout;
}

void DistributedDataParallel::on_grad_ready(size_t param) {
  if (!sync_ || comm_.world_size() == 1) return;
  if (!in_backward_) {  // the first gradient of this backward
    for (auto& b : buckets_) {
      b->work.wait();  // only left over when an earlier backward threw
      b->ready = 0;
    }
    std::fill(arrived_.begin(), arrived_.end(), char{0});
    next_launch_ = 0;
    launched_early_ = 0;
    detail::queue_end_of_backward(in_backward_, [this] { finish(); });
  }
  Bucket& b = *buckets_[bucket_of_[param]];
  if (arrived_[param]) {  // accumulated again by a nested backward: fine until its bucket has left
    EMBER_CHECK(bucket_of_[param] >= next_launch_, AutogradError, "[DistributedDataParallel] parameter ", param, " (",
                describe(params_[param]),
                ") got more gradient after its bucket's all-reduce had started in this backward, so the mean "
                "would leave it out. It is used both inside an activation-checkpointed block (nn::checkpoint, "
                "whose recompute runs a nested backward) and elsewhere, or in two such blocks: keep a shared "
                "weight's uses outside checkpointed blocks, or inside one");
    return;
  }
  arrived_[param] = 1;
  ++b.ready;
  while (next_launch_ < buckets_.size() && buckets_[next_launch_]->ready == buckets_[next_launch_]->params.size()) {
    ++launched_early_;
    launch(next_launch_++);
  }
}

// Packs the bucket's gradients (whatever .grad holds now, so gradients accumulated under no_sync are
// included), divided by the world size, and starts its all-reduce. The presence slots are filled on the
// device (no host-to-device copy, which would wait for the backward queued so far).
void DistributedDataParallel::launch(size_t index) {
  autograd::NoGradGuard no_grad;
  Bucket& b = *buckets_[index];
  Tensor slots = b.flat.narrow(0, b.grads_numel, static_cast<int64_t>(b.params.size()));
  slots.fill_(1);
  b.all_present = true;
  for (size_t j = 0; j < b.params.size(); ++j) {
    const Tensor& p = params_[b.params[j]];
    Tensor slice = b.flat.narrow(0, b.offsets[j], p.numel());
    const Tensor g = p.grad();
    if (g.defined()) {
      slice.copy_(g.reshape({p.numel()}));
    } else {
      slice.zero_();
      slots.narrow(0, static_cast<int64_t>(j), 1).zero_();
      b.all_present = false;
    }
  }
  b.flat.narrow(0, 0, b.grads_numel)
      .div_(full({}, comm_.world_size(), {.dtype = b.flat.dtype(), .device = b.flat.device()}));
  b.work = comm_.all_reduce_async(b.flat, ReduceOp::kSum);
}

void DistributedDataParallel::finish() {
  for (size_t i = next_launch_; i < buckets_.size(); ++i) launch(i);  // parameters this backward did not reach
  next_launch_ = buckets_.size();
  autograd::NoGradGuard no_grad;
  for (auto& bp : buckets_) {
    Bucket& b = *bp;
    b.work.wait();
    // Only a parameter this rank had no gradient for may have had none on every rank: then the counts
    // are read (a host synchronisation); when this rank had them all, each count is at least 1.
    Tensor counts;
    if (!b.all_present)
      counts = b.flat.narrow(0, b.grads_numel, static_cast<int64_t>(b.params.size())).to(Device()).to(kF64);
    for (size_t j = 0; j < b.params.size(); ++j) {
      if (counts.defined() && counts.data_ptr<double>()[j] == 0) continue;  // no rank had a gradient
      Tensor p = params_[b.params[j]];
      Tensor mean = b.flat.narrow(0, b.offsets[j], p.numel()).view(p.shape());
      Tensor g = p.grad();
      if (g.defined())
        g.copy_(mean);
      else
        p.set_grad(mean.clone());
    }
  }
}

}  // namespace ember::dist
