// DistributedDataParallel: bucket layout, the gradient hooks that launch bucket all-reduces during
// backward, and the end-of-backward step that writes the mean gradients back.
#include "dist/ddp.hpp"

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops/creation.hpp"

namespace ember::dist {

// One flat buffer per bucket: the gradients of its parameters back to back, then one slot per parameter
// saying whether the rank had a gradient for it (the reduced slot counts the ranks that had one; none:
// the gradient stays undefined, so an optimizer skips the parameter as it would in one process).
struct DistributedDataParallel::Bucket {
  std::vector<size_t> params;
  std::vector<int64_t> offsets;
  int64_t grads_numel = 0;
  Tensor flat;
  size_t ready = 0;  // parameters whose gradient arrived in this backward
  Work work;
};

DistributedDataParallel::DistributedDataParallel(std::vector<Tensor> parameters, std::vector<Tensor> buffers,
                                                 Communicator& comm, DDPOptions options)
    : params_(std::move(parameters)), buffers_(std::move(buffers)), comm_(comm), options_(options) {
  EMBER_CHECK(options_.bucket_cap_mb > 0, ValueError, "[DistributedDataParallel] bucket_cap_mb must be > 0, got ",
              options_.bucket_cap_mb);
  std::erase_if(params_, [](const Tensor& p) { return !p.requires_grad(); });
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    EMBER_CHECK(p.is_leaf() && p.is_contiguous() && comm_.accepts(p.device()), ValueError,
                "[DistributedDataParallel] parameter ", i, " (", describe(p),
                ") must be a contiguous leaf on a device the ", comm_.backend(), " communicator takes");
  }
  // Reverse order, a new bucket when the dtype or device changes or the cap is reached.
  const double cap = options_.bucket_cap_mb * 1024.0 * 1024.0;
  bucket_of_.resize(params_.size());
  double bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const Tensor& p = params_[k];
    Bucket* b = buckets_.empty() ? nullptr : buckets_.back().get();
    if (!b || bytes >= cap || params_[b->params.front()].dtype() != p.dtype() ||
        params_[b->params.front()].device() != p.device()) {
      buckets_.push_back(std::make_unique<Bucket>());
      b = buckets_.back().get();
      bytes = 0;
    }
    b->params.push_back(k);
    b->offsets.push_back(b->grads_numel);
    b->grads_numel += p.numel();
    bytes += static_cast<double>(p.nbytes());
    bucket_of_[k] = buckets_.size() - 1;
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

void DistributedDataParallel::sync_parameters() {
  if (comm_.world_size() == 1) return;
  autograd::NoGradGuard no_grad;
  for (const Tensor& p : params_) comm_.broadcast(p, 0);
  for (const Tensor& b : buffers_) comm_.broadcast(b, 0);
}

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
    next_launch_ = 0;
    launched_early_ = 0;
    in_backward_ = true;
    // The flag drops with the callback, also when a throwing backward discards it without running it.
    struct Clear {
      explicit Clear(bool& f) : flag(f) {}
      ~Clear() { flag = false; }
      bool& flag;
    };
    autograd::queue_callback([this, clear = std::make_shared<Clear>(in_backward_)] { finish(); });
  }
  Bucket& b = *buckets_[bucket_of_[param]];
  ++b.ready;
  while (next_launch_ < buckets_.size() && buckets_[next_launch_]->ready == buckets_[next_launch_]->params.size()) {
    ++launched_early_;
    launch(next_launch_++);
  }
}

// Packs the bucket's gradients (whatever .grad holds now, so gradients accumulated under no_sync are
// included) and starts its all-reduce.
void DistributedDataParallel::launch(size_t index) {
  autograd::NoGradGuard no_grad;
  Bucket& b = *buckets_[index];
  std::vector<float> present(b.params.size());
  for (size_t j = 0; j < b.params.size(); ++j) {
    const Tensor& p = params_[b.params[j]];
    Tensor slice = b.flat.narrow(0, b.offsets[j], p.numel());
    const Tensor g = p.grad();
    present[j] = g.defined() ? 1.0f : 0.0f;
    if (g.defined())
      slice.copy_(g.reshape({p.numel()}));
    else
      slice.zero_();
  }
  Tensor slots = b.flat.narrow(0, b.grads_numel, static_cast<int64_t>(b.params.size()));
  slots.copy_(tensor_from(present, {static_cast<int64_t>(present.size())}, std::nullopt).to(b.flat.device()));
  b.work = comm_.all_reduce_async(b.flat, ReduceOp::kSum);
}

void DistributedDataParallel::finish() {
  for (size_t i = next_launch_; i < buckets_.size(); ++i) launch(i);  // parameters this backward did not reach
  next_launch_ = buckets_.size();
  autograd::NoGradGuard no_grad;
  for (auto& bp : buckets_) {
    Bucket& b = *bp;
    b.work.wait();
    Tensor counts = b.flat.narrow(0, b.grads_numel, static_cast<int64_t>(b.params.size())).to(Device()).to(kF64);
    const double* count = counts.data_ptr<double>();
    b.flat.narrow(0, 0, b.grads_numel)
        .div_(full({}, comm_.world_size(), {.dtype = b.flat.dtype(), .device = b.flat.device()}));
    for (size_t j = 0; j < b.params.size(); ++j) {
      if (count[j] == 0) continue;  // no rank had a gradient
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
