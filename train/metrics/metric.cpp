// Metric: state bookkeeping (declare, join, load, reset), forward's batch value, and the DDP join of
// every rank's state over a dist::Communicator.
#include "train/metrics/metric.hpp"

#include <algorithm>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/shape.hpp"
#include "dist/communicator.hpp"

namespace ember::metrics {

const char* reduce_name(Reduce reduce) {
  switch (reduce) {
    case Reduce::kSum:
      return "sum";
    case Reduce::kMax:
      return "max";
    case Reduce::kMin:
      return "min";
    case Reduce::kCat:
      return "cat";
  }
  return "?";
}

Tensor Metric::join(Reduce reduce, const Tensor& a, const Tensor& b) {
  switch (reduce) {
    case Reduce::kSum:
      return a + b;
    case Reduce::kMax:
      return maximum(a, b);
    case Reduce::kMin:
      return minimum(a, b);
    case Reduce::kCat:
      return cat({a, b}, 0);
  }
  return a;
}

void Metric::add_state(const std::string& name, const Tensor& empty, Reduce reduce) {
  EMBER_CHECK(!states_.contains(name), ValueError, "[", this->name(), "] the state '", name, "' is declared twice");
  EMBER_CHECK(reduce != Reduce::kCat || empty.dim() >= 1, ValueError, "[", this->name(), "] the cat state '", name,
              "' needs at least one dim");
  Tensor e = empty.to(device_);
  states_[name] = State{e, e, reduce};
}

const Tensor& Metric::state(const std::string& name) const {
  auto it = states_.find(name);
  EMBER_CHECK(it != states_.end(), ValueError, "[", this->name(), "] has no state '", name, "'");
  return it->second.value;
}

void Metric::set_state(const std::string& name, const Tensor& value) {
  auto it = states_.find(name);
  EMBER_CHECK(it != states_.end(), ValueError, "[", this->name(), "] has no state '", name, "'");
  it->second.value = value.to(it->second.empty.dtype());
}

void Metric::accumulate(const std::string& name, const Tensor& batch) {
  auto it = states_.find(name);
  EMBER_CHECK(it != states_.end(), ValueError, "[", this->name(), "] has no state '", name, "'");
  it->second.value = join(it->second.reduce, it->second.value, batch.to(it->second.empty.dtype()));
}

Reduce Metric::state_reduce(const std::string& name) const {
  auto it = states_.find(name);
  EMBER_CHECK(it != states_.end(), ValueError, "[", this->name(), "] has no state '", name, "'");
  return it->second.reduce;
}

void Metric::update(const Tensor& preds, const Tensor& target) {
  EMBER_CHECK(preds.defined(), ValueError, "[", name(), ".update] the predictions (or value) are an undefined tensor");
  if (preds.device() != device_) to(preds.device());
  autograd::NoGradGuard no_grad;  // a metric never records a graph
  update_state(preds.detach(), target.defined() ? target.detach() : target);
  ++update_count_;
}

Tensor Metric::forward(const Tensor& preds, const Tensor& target) {
  const TensorMap saved = state_dict();
  const int64_t count = update_count_;
  for (auto& [n, s] : states_) s.value = s.empty.to(device_);
  Tensor value;
  try {
    update(preds, target);
    value = compute();
  } catch (...) {  // a rejected batch leaves the accumulated state as it was
    for (auto& [n, s] : states_) s.value = saved.at(n).to(device_);
    update_count_ = count;
    throw;
  }
  // The accumulated state comes first, so a cat state keeps the order of the batches.
  for (auto& [n, s] : states_) s.value = join(s.reduce, saved.at(n).to(device_), s.value);
  update_count_ = count + 1;
  forward_value_ = value;
  return value;
}

void Metric::reset() {
  for (auto& [n, s] : states_) s.value = s.empty;
  forward_value_ = Tensor();
  update_count_ = 0;
}

Metric& Metric::to(Device device) {
  for (auto& [n, s] : states_) {
    s.value = s.value.to(device);
    s.empty = s.empty.to(device);
  }
  if (forward_value_.defined()) forward_value_ = forward_value_.to(device);
  device_ = device;
  return *this;
}

TensorMap Metric::state_dict() const {
  TensorMap out;
  for (const auto& [n, s] : states_) out.emplace(n, s.value);
  return out;
}

void Metric::load_state_dict(const TensorMap& state) {
  for (const auto& [n, t] : state)
    EMBER_CHECK(states_.contains(n), ValueError, "[", name(), ".load_state_dict] unknown state '", n, "'");
  std::map<std::string, Tensor> loaded;
  for (const auto& [n, s] : states_) {
    auto it = state.find(n);
    EMBER_CHECK(it != state.end() && it->second.defined(), ValueError, "[", name(), ".load_state_dict] the state '", n,
                "' is missing");
    const Tensor& t = it->second;
    EMBER_CHECK(t.dtype() == s.empty.dtype(), ValueError, "[", name(), ".load_state_dict] the state '", n, "' is ",
                describe(t), ", expected ", dtype_name(s.empty.dtype()));
    bool shape_ok = t.dim() == s.empty.dim();
    for (int64_t d = s.reduce == Reduce::kCat ? 1 : 0; shape_ok && d < t.dim(); ++d)
      shape_ok = t.size(d) == s.empty.size(d);
    EMBER_CHECK(shape_ok, ValueError, "[", name(), ".load_state_dict] the state '", n, "' is ", describe(t),
                ", expected the shape of ", describe(s.empty), s.reduce == Reduce::kCat ? " (any length)" : "");
    loaded[n] = t.to(device_, /*copy=*/true);
  }
  for (auto& [n, s] : states_) s.value = loaded.at(n);  // all or nothing
}

void Metric::merge_state(const TensorMap& other) {
  for (const auto& [n, t] : other)
    EMBER_CHECK(states_.contains(n), ValueError, "[", name(), ".merge_state] unknown state '", n, "'");
  for (auto& [n, s] : states_)
    if (auto it = other.find(n); it != other.end()) s.value = join(s.reduce, s.value, it->second.to(device_));
}

TensorMap Metric::synced_state(dist::Communicator& comm) const {
  TensorMap out;
  for (const auto& [n, s] : states_) {
    // A communicator that cannot take the state's device (MPI and CUDA states) works on a host copy.
    const Device at = comm.accepts(s.value.device()) ? s.value.device() : Device();
    Tensor local = s.value.to(at, /*copy=*/true).contiguous();
    if (s.reduce != Reduce::kCat) {
      comm.all_reduce(local, s.reduce == Reduce::kSum   ? dist::ReduceOp::kSum
                             : s.reduce == Reduce::kMax ? dist::ReduceOp::kMax
                                                        : dist::ReduceOp::kMin);
      out.emplace(n, local.to(device_));
      continue;
    }
    // Ranks hold different numbers of rows: gather the counts, pad to the longest, gather, trim.
    const std::vector<int64_t> rows = comm.all_gather_int64({local.size(0)});
    const int64_t longest = *std::max_element(rows.begin(), rows.end());
    if (longest == 0) {
      out.emplace(n, local.to(device_));
      continue;
    }
    Shape pad_shape = local.shape();
    pad_shape[0] = longest - local.size(0);
    Tensor padded = cat({local, zeros(pad_shape, {.dtype = local.dtype(), .device = at})}, 0);
    Tensor all = comm.all_gather(padded);
    std::vector<Tensor> parts;
    for (size_t r = 0; r < rows.size(); ++r) parts.push_back(all.select(0, int64_t(r)).narrow(0, 0, rows[r]));
    out.emplace(n, cat(parts, 0).to(device_));
  }
  return out;
}

}  // namespace ember::metrics
