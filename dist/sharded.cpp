// ShardedDataParallel: the byte-balanced partition, bucket layouts grouped by owner, the hooks that pack
// and reduce (stage 1: all-reduce; stage 2: reduce-scatter) each bucket during backward, the parameter
// all-gather after the step, and the norm, clipping and Inf/NaN checks over the shards.
#include "dist/sharded.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <unordered_map>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/reduce.hpp"
#include "core/ops/shape.hpp"

namespace ember::dist {

namespace {
constexpr const char* kWho = "ShardedDataParallel";

// Where a bucket's tensors sit in its flat buffer: one region per rank holding the parameters that rank
// owns, back to back, then (for reductions) one slot per such parameter counting the ranks that had a
// gradient. Padded: every region is `chunk` long at r * chunk (reduce_scatter and all_gather need equal
// parts); compact: regions follow each other (all-reduce).
struct Layout {
  std::vector<int64_t> offset, slot;  // per bucket parameter, inside its owner's region
  std::vector<int64_t> start, len;    // per rank
  int64_t total = 0;
};

Layout make_layout(const std::vector<size_t>& bucket, const std::vector<Tensor>& params, const std::vector<int>& owners,
                   int world, bool with_slots, bool padded) {
  Layout l;
  l.offset.resize(bucket.size());
  l.slot.resize(bucket.size());
  l.len.assign(world, 0);
  std::vector<int64_t> count(world, 0);
  for (size_t j = 0; j < bucket.size(); ++j) {
    const int r = owners[bucket[j]];
    l.offset[j] = l.len[r];
    l.len[r] += params[bucket[j]].numel();
    ++count[r];
  }
  std::vector<int64_t> seen(world, 0);
  for (size_t j = 0; j < bucket.size(); ++j) {
    const int r = owners[bucket[j]];
    l.slot[j] = l.len[r] + seen[r]++;
  }
  if (with_slots)
    for (int r = 0; r < world; ++r) l.len[r] += count[r];
  l.start.resize(world);
  const int64_t chunk = std::max<int64_t>(1, *std::max_element(l.len.begin(), l.len.end()));
  for (int r = 0; r < world; ++r) {
    l.start[r] = padded ? r * chunk : l.total;
    l.total = padded ? (r + 1) * chunk : l.total + l.len[r];
  }
  return l;
}

Tensor flat_view(const Tensor& t) { return t.reshape({t.numel()}); }
}  // namespace

struct ShardedDataParallel::Bucket {
  std::vector<size_t> params;
  Layout reduce, gather;
  bool scatter = false;      // stage 2 with reduce_scatter (else all_reduce of the compact layout)
  Tensor flat, out;          // in flight: the packed gradients (stage 2: and this rank's reduced region)
  bool mine_present = true;  // at launch this rank had a gradient for every parameter it owns here
  size_t ready = 0;
  Work work;
};

std::vector<int> ShardedDataParallel::partition(const std::vector<int64_t>& bytes, int world_size) {
  EMBER_CHECK(world_size >= 1, ValueError, "[", kWho, "] partition: world_size must be >= 1, got ", world_size);
  double total = 0;
  for (int64_t b : bytes) {
    EMBER_CHECK(b >= 0, ValueError, "[", kWho, "] partition: a parameter size is negative (", b, ")");
    total += static_cast<double>(b);
  }
  std::vector<int> owners(bytes.size(), 0);
  double before = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const double mid = before + static_cast<double>(bytes[i]) / 2;
    const int r = total > 0 ? static_cast<int>(std::floor(mid * world_size / total)) : 0;
    owners[i] = std::clamp(r, i > 0 ? owners[i - 1] : 0, world_size - 1);  // monotone: contiguous runs
    before += static_cast<double>(bytes[i]);
  }
  return owners;
}

ShardedDataParallel::ShardedDataParallel(ModelTensors model, Communicator& comm, ShardedOptions options)
    : comm_(comm), options_(options) {
  EMBER_CHECK(options_.stage == 1 || options_.stage == 2, ValueError, "[", kWho, "] stage must be 1 or 2, got ",
              options_.stage);
  EMBER_CHECK(options_.bucket_cap_mb > 0, ValueError, "[", kWho, "] bucket_cap_mb must be > 0, got ",
              options_.bucket_cap_mb);
  detail::check_same_model(comm_, model.parameters, model.buffers, kWho);
  params_ = detail::trainable(std::move(model.parameters), comm_, kWho);
  for (auto& [name, t] : model.buffers) buffers_.push_back(std::move(t));
  std::vector<int64_t> bytes;
  for (const Tensor& p : params_) bytes.push_back(static_cast<int64_t>(p.nbytes()));
  owners_ = partition(bytes, comm_.world_size());

  const int world = comm_.world_size();
  bucket_of_.resize(params_.size());
  for (std::vector<size_t>& plan : detail::plan_buckets(params_, options_.bucket_cap_mb * 1024.0 * 1024.0)) {
    auto b = std::make_unique<Bucket>();
    b->params = std::move(plan);
    Layout padded = make_layout(b->params, params_, owners_, world, true, true);
    Layout compact = make_layout(b->params, params_, owners_, world, true, false);
    b->scatter = options_.stage == 2 && padded.total < 2 * compact.total;  // see the header
    b->reduce = b->scatter ? std::move(padded) : std::move(compact);
    b->gather = make_layout(b->params, params_, owners_, world, false, false);
    for (size_t k : b->params) bucket_of_[k] = buckets_.size();
    buckets_.push_back(std::move(b));
  }
  sync_parameters();
  for (size_t k = 0; k < params_.size(); ++k)
    hooks_.push_back(params_[k].register_post_accumulate_grad_hook([this, k](const Tensor&) { on_grad_ready(k); }));
}

ShardedDataParallel::~ShardedDataParallel() {
  for (auto& h : hooks_) h.remove();
  for (auto& b : buckets_) {
    try {
      b->work.wait();  // a backward that threw may have left reductions in flight on our buffers
    } catch (...) {
    }
  }
}

int ShardedDataParallel::owner(size_t param_index) const {
  EMBER_CHECK(param_index < owners_.size(), IndexError, "[", kWho, "] owner: parameter index ", param_index,
              " is out of range (", owners_.size(), " parameters)");
  return owners_[param_index];
}

int ShardedDataParallel::owner_of(const Tensor& param) const {
  if (!param.defined()) return -1;
  for (size_t k = 0; k < params_.size(); ++k)
    if (params_[k].impl_ptr() == param.impl_ptr()) return owners_[k];
  return -1;
}

std::vector<size_t> ShardedDataParallel::owned() const {
  std::vector<size_t> out;
  for (size_t k = 0; k < params_.size(); ++k)
    if (owners_[k] == comm_.rank()) out.push_back(k);
  return out;
}

std::vector<Tensor> ShardedDataParallel::owned_parameters() const {
  std::vector<Tensor> out;
  for (size_t k : owned()) out.push_back(params_[k]);
  return out;
}

void ShardedDataParallel::sync_parameters() { detail::broadcast_replica(comm_, params_, buffers_); }

void ShardedDataParallel::sync_buffers() {
  if (comm_.world_size() == 1 || !options_.broadcast_buffers) return;
  std::vector<Work> works;
  for (const Tensor& b : buffers_) works.push_back(comm_.broadcast_async(b, 0));
  for (Work& w : works) w.wait();
}

std::vector<std::vector<size_t>> ShardedDataParallel::bucket_layout() const {
  std::vector<std::vector<size_t>> layout;
  for (const auto& b : buckets_) layout.push_back(b->params);
  return layout;
}

// ---------------------------------------------------------------- gradient reduction
void ShardedDataParallel::on_grad_ready(size_t param) {
  if (!sync_ || comm_.world_size() == 1) return;
  if (!in_backward_) {  // the first gradient of this backward
    for (auto& b : buckets_) {
      b->work.wait();  // only left over when an earlier backward threw
      b->ready = 0;
      b->flat = b->out = Tensor();
    }
    next_launch_ = next_settle_ = 0;
    launched_early_ = 0;
    detail::queue_end_of_backward(in_backward_, [this] { finish(); });
  }
  ++buckets_[bucket_of_[param]]->ready;
  while (next_launch_ < buckets_.size() && buckets_[next_launch_]->ready == buckets_[next_launch_]->params.size()) {
    ++launched_early_;
    launch(next_launch_++);
    // At most two buckets in flight: their buffers are the only extra gradient memory.
    while (next_settle_ + 2 < next_launch_) settle(next_settle_++);
  }
}

// Packs the bucket's gradients (whatever .grad holds now, so gradients accumulated under no_sync count),
// drops the gradients of parameters other ranks own, and starts the reduction.
void ShardedDataParallel::launch(size_t index) {
  autograd::NoGradGuard no_grad;
  Bucket& b = *buckets_[index];
  const Tensor& p0 = params_[b.params.front()];
  b.flat = zeros({b.reduce.total}, {.dtype = p0.dtype(), .device = p0.device()});
  b.mine_present = true;
  for (size_t j = 0; j < b.params.size(); ++j) {
    Tensor p = params_[b.params[j]];
    const int r = owners_[b.params[j]];
    const Tensor g = p.grad();
    if (r == comm_.rank() && !g.defined()) b.mine_present = false;
    if (g.defined()) {
      b.flat.narrow(0, b.reduce.start[r] + b.reduce.offset[j], p.numel()).copy_(flat_view(g));
      b.flat.narrow(0, b.reduce.start[r] + b.reduce.slot[j], 1).fill_(1);
    }
    if (r != comm_.rank()) p.set_grad(Tensor());
  }
  // Divided before the sum, as DDP does (f16 sums must not overflow where the mean would not); the
  // presence slots are divided too, which leaves a zero count zero.
  b.flat.div_(full({}, comm_.world_size(), {.dtype = b.flat.dtype(), .device = b.flat.device()}));
  if (!b.scatter) {
    b.work = comm_.all_reduce_async(b.flat, ReduceOp::kSum);
  } else {
    const int64_t chunk = b.reduce.total / comm_.world_size();
    b.out = empty({chunk}, {.dtype = p0.dtype(), .device = p0.device()});
    b.work = comm_.reduce_scatter_async(b.out, b.flat.view({comm_.world_size(), chunk}), ReduceOp::kSum);
  }
}

void ShardedDataParallel::settle(size_t index) {
  autograd::NoGradGuard no_grad;
  Bucket& b = *buckets_[index];
  b.work.wait();
  const int me = comm_.rank();
  Tensor region = b.scatter ? b.out : b.flat.narrow(0, b.reduce.start[me], b.reduce.len[me]);
  std::vector<size_t> mine;
  int64_t grads_numel = 0;
  for (size_t j = 0; j < b.params.size(); ++j)
    if (owners_[b.params[j]] == me) {
      mine.push_back(j);
      grads_numel += params_[b.params[j]].numel();
    }
  if (!mine.empty()) {
    // The counts are read (a host synchronisation, inside backward) only when this rank lacked a gradient
    // it owns: otherwise each is at least 1.
    Tensor counts;
    if (!b.mine_present)
      counts = region.narrow(0, grads_numel, static_cast<int64_t>(mine.size())).to(Device()).to(kF64);
    Tensor grads = region.narrow(0, 0, grads_numel);
    for (size_t i = 0; i < mine.size(); ++i) {
      if (counts.defined() && counts.data_ptr<double>()[i] == 0) continue;  // no rank had one: stays undefined
      Tensor p = params_[b.params[mine[i]]];
      Tensor mean = grads.narrow(0, b.reduce.offset[mine[i]], p.numel()).view(p.shape());
      Tensor g = p.grad();
      if (g.defined())
        g.copy_(mean);
      else
        p.set_grad(mean.clone());
    }
  }
  b.flat = b.out = Tensor();
}

void ShardedDataParallel::finish() {
  for (size_t i = next_launch_; i < buckets_.size(); ++i) launch(i);  // parameters this backward did not reach
  next_launch_ = buckets_.size();
  for (; next_settle_ < buckets_.size(); ++next_settle_) settle(next_settle_);
}

// ---------------------------------------------------------------- after the step
void ShardedDataParallel::gather_parameters() {
  if (comm_.world_size() == 1) return;
  autograd::NoGradGuard no_grad;
  const int world = comm_.world_size(), me = comm_.rank();
  struct InFlight {
    size_t bucket;
    int owner;
    Tensor region;  // the owner's parameters of the bucket, back to back
    Work work;
  };
  std::deque<InFlight> flying;
  auto unpack = [&] {
    InFlight f = std::move(flying.front());
    flying.pop_front();
    f.work.wait();
    if (f.owner == me) return;
    const Bucket& b = *buckets_[f.bucket];
    for (size_t j = 0; j < b.params.size(); ++j) {
      if (owners_[b.params[j]] != f.owner) continue;
      Tensor p = params_[b.params[j]];
      p.copy_(f.region.narrow(0, b.gather.offset[j], p.numel()).view(p.shape()));
    }
  };
  // Parameter order (the reduction buckets backwards), each owner's region broadcast from it.
  for (size_t i = buckets_.size(); i-- > 0;) {
    const Bucket& b = *buckets_[i];
    const Tensor& p0 = params_[b.params.front()];
    for (int r = 0; r < world; ++r) {
      if (b.gather.len[r] == 0) continue;
      Tensor region = empty({b.gather.len[r]}, {.dtype = p0.dtype(), .device = p0.device()});
      if (r == me)
        for (size_t j = 0; j < b.params.size(); ++j)
          if (owners_[b.params[j]] == me)
            region.narrow(0, b.gather.offset[j], params_[b.params[j]].numel()).copy_(flat_view(params_[b.params[j]]));
      if (flying.size() == 2) unpack();  // at most two regions in flight
      Work w = comm_.broadcast_async(region, r);
      flying.push_back({i, r, std::move(region), std::move(w)});
    }
  }
  while (!flying.empty()) unpack();
}

Tensor ShardedDataParallel::clip_grad_norm_(double max_norm, double norm_type, bool error_if_nonfinite) {
  EMBER_CHECK(norm_type > 0 || std::isinf(norm_type), ValueError, "[", kWho,
              "] clip_grad_norm_: norm_type must be positive or inf, got ", norm_type);
  autograd::NoGradGuard no_grad;
  const bool inf = std::isinf(norm_type);
  const Device device = params_.empty() ? Device() : params_.front().device();
  std::vector<Tensor> grads, norms;
  for (const Tensor& p : owned_parameters()) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    EMBER_CHECK(g.is_floating_point(), DTypeError, "[", kWho, "] clip_grad_norm_ needs floating gradients, got ",
                describe(g));
    norms.push_back(norm(g, norm_type).to(device, kF64));
    grads.push_back(std::move(g));
  }
  // This rank's part stays on the device (no host read inside the step): the sum of the norms' p-th powers,
  // or for inf their maximum beside a NaN flag (a maximum may drop a NaN; a sum keeps it).
  Tensor part = zeros({inf ? 2 : 1}, {.dtype = kF64, .device = device});
  if (!norms.empty()) {
    const Tensor n = stack(norms);
    part = inf ? stack({n.max(), n.isnan().any().to(kF64)}) : n.pow(norm_type).sum().reshape({1});
  }
  comm_.all_reduce(part, inf ? ReduceOp::kMax : ReduceOp::kSum);
  const Tensor total = inf ? where(part[1] > 0, NAN, part[0]) : part[0].pow(1.0 / norm_type);
  if (error_if_nonfinite) {
    const double v = total.item<double>();
    EMBER_CHECK(std::isfinite(v), ValueError, "[", kWho, "] clip_grad_norm_: the total norm of order ", norm_type,
                " over every rank's gradients is non-finite (", v,
                "), so it cannot be clipped; set error_if_nonfinite=false to scale by it anyway");
  }
  // Scaled by min(1, coef) on the device: a factor of 1 leaves a gradient exactly as it was.
  const Tensor coef = (max_norm / (total + 1e-6)).clamp(std::nullopt, 1.0);
  for (Tensor& g : grads) g.mul_(coef.to(g.device(), g.dtype()));
  return total;
}

void ShardedDataParallel::clip_grad_value_(double clip_value) {
  autograd::NoGradGuard no_grad;
  for (const Tensor& p : owned_parameters()) {
    Tensor g = p.grad();
    if (g.defined()) g.clamp_(-clip_value, clip_value);
  }
}

bool ShardedDataParallel::found_nonfinite() {
  autograd::NoGradGuard no_grad;
  // Counted on the device over every gradient this rank owns, summed over the ranks, then read once
  // (one host read per step, not one per gradient).
  Tensor bad = zeros({1}, {.dtype = kF64, .device = params_.front().device()});
  for (const Tensor& p : owned_parameters()) {
    const Tensor g = p.grad();
    if (g.defined()) bad.add_(1.0 - all(isfinite(g)).to(kF64));
  }
  comm_.all_reduce(bad, ReduceOp::kSum);
  return bad.item<double>() > 0;
}

}  // namespace ember::dist
