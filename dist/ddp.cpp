// DistributedDataParallel: the check that every rank holds the same model, bucket layout, the gradient
// hooks that launch bucket all-reduces during backward, and the end-of-backward step that writes the
// mean gradients back.
#include "dist/ddp.hpp"

#include <sstream>

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

namespace {

// A model's signature: a line per parameter, then per buffer: "parameter|buffer \t name \t shape dtype".
std::string signature_line(const char* kind, const std::string& name, const Tensor& t, bool parameter) {
  std::string n = name;
  for (char& c : n)
    if (c == '\t' || c == '\n') c = ' ';
  std::string what = t.defined() ? detail::cat_str(t.shape(), " ", t.dtype()) : std::string("undefined");
  if (parameter && t.defined() && !t.requires_grad()) what += " (requires_grad false)";
  return detail::cat_str(kind, "\t", n, "\t", what, "\n");
}

struct Entry {
  std::string name, what;
};
// The parameters' and the buffers' entries of a signature.
std::pair<std::vector<Entry>, std::vector<Entry>> parse_signature(const std::string& sig) {
  std::pair<std::vector<Entry>, std::vector<Entry>> out;
  std::istringstream in(sig);
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find('\t'), b = line.find('\t', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    Entry e{line.substr(a + 1, b - a - 1), line.substr(b + 1)};
    (line.compare(0, a, "parameter") == 0 ? out.first : out.second).push_back(std::move(e));
  }
  return out;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Where the entries of two ranks first differ: "parameter 2 is "fc.weight" [3, 4] float32 on rank 0 but ...".
std::string first_difference(const char* kind, const std::vector<Entry>& a, int ra, const std::vector<Entry>& b,
                             int rb) {
  auto text = [&](const std::vector<Entry>& v, size_t i) {
    if (i >= v.size()) return detail::cat_str("missing (", v.size(), " ", kind, "s)");
    return v[i].name.empty() ? v[i].what : detail::cat_str("\"", v[i].name, "\" ", v[i].what);
  };
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    if (i < a.size() && i < b.size() && a[i].name == b[i].name && a[i].what == b[i].what) continue;
    return detail::cat_str(kind, " ", i, " is ", text(a, i), " on rank ", ra, " but ", text(b, i), " on rank ", rb);
  }
  return {};
}

}  // namespace

void DistributedDataParallel::check_same_model(const NamedTensors& parameters, const NamedTensors& buffers) const {
  if (comm_.world_size() == 1) return;
  std::string sig;
  for (const auto& [name, t] : parameters) sig += signature_line("parameter", name, t, true);
  for (const auto& [name, t] : buffers) sig += signature_line("buffer", name, t, false);
  // One small all-gather of (hash, length); only when they differ do the ranks exchange the whole text.
  const std::vector<int64_t> all =
      comm_.all_gather_int64({static_cast<int64_t>(fnv1a(sig)), static_cast<int64_t>(sig.size())});
  bool same = true;
  for (int r = 1; r < comm_.world_size(); ++r) same = same && all[2 * r] == all[0] && all[2 * r + 1] == all[1];
  if (same) return;
  const std::vector<std::string> sigs = comm_.all_gather_string(sig);
  int other = 1;
  while (other + 1 < comm_.world_size() && sigs[other] == sigs[0]) ++other;
  const auto [p0, b0] = parse_signature(sigs[0]);
  const auto [pr, br] = parse_signature(sigs[other]);
  std::string where = first_difference("parameter", p0, 0, pr, other);
  if (where.empty()) where = first_difference("buffer", b0, 0, br, other);
  if (where.empty()) where = "their descriptions differ";
  throw DistError(detail::cat_str(
      "[DistributedDataParallel] the ranks hold different models: rank 0 has ", p0.size(), " parameters and ",
      b0.size(), " buffers, rank ", other, " has ", pr.size(), " parameters and ", br.size(), " buffers; ", where,
      ". Every rank must build the same model (layers, shapes, dtypes) before DDP, which starts them all from rank "
      "0's weights"));
}

DistributedDataParallel::DistributedDataParallel(NamedTensors parameters, NamedTensors buffers, Communicator& comm,
                                                 DDPOptions options)
    : comm_(comm), options_(options) {
  EMBER_CHECK(options_.bucket_cap_mb > 0, ValueError, "[DistributedDataParallel] bucket_cap_mb must be > 0, got ",
              options_.bucket_cap_mb);
  check_same_model(parameters, buffers);
  for (auto& [name, t] : parameters)
    if (t.requires_grad()) params_.push_back(std::move(t));
  for (auto& [name, t] : buffers) buffers_.push_back(std::move(t));
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
