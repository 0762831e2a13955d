// Pieces DistributedDataParallel and ShardedDataParallel share: what they are built from (ModelTensors)
// and the no-sync scope (Replica, NoSync); internal to dist/: the check that every rank
// holds the same model, the trainable-parameter filter, the bucket plan, broadcasting rank 0's replica,
// and the end-of-backward callback that a reducer queues from its first gradient hook.
#pragma once
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/tensor.hpp"
#include "dist/communicator.hpp"

namespace ember::dist::detail {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

inline NamedTensors unnamed(const std::vector<Tensor>& tensors) {
  NamedTensors out;
  for (const Tensor& t : tensors) out.emplace_back(std::string(), t);
  return out;
}
// The module a handle (nn::Linear, shared_ptr, raw pointer) points to.
template <class H>
const auto& target(const H& h) {
  if constexpr (std::is_pointer_v<H>)
    return *h;
  else
    return *h.operator->();
}
// Names where the module gives them (named_parameters()), else empty names.
template <class M>
NamedTensors named_parameters_of(const M& m) {
  if constexpr (requires { m.named_parameters(); })
    return m.named_parameters();
  else
    return unnamed(m.parameters());
}
template <class M>
NamedTensors named_buffers_of(const M& m) {
  if constexpr (requires { m.named_buffers(); })
    return m.named_buffers();
  else
    return unnamed(m.buffers());
}

// Raises DistError on every rank when the ranks' parameters or buffers differ in count, name, shape,
// dtype or requires_grad; `who` ("DistributedDataParallel") starts the message.
void check_same_model(Communicator& comm, const NamedTensors& parameters, const NamedTensors& buffers, const char* who);
// The parameters that require gradients, each checked to be a contiguous leaf the communicator takes.
std::vector<Tensor> trainable(NamedTensors parameters, const Communicator& comm, const char* who);
// Buckets of parameter indices in reverse order (roughly the order backward produces gradients): a new
// bucket when the dtype or device changes or the previous one reached cap_bytes.
std::vector<std::vector<size_t>> plan_buckets(const std::vector<Tensor>& params, double cap_bytes);
// Rank 0's parameters and buffers to every rank.
void broadcast_replica(Communicator& comm, const std::vector<Tensor>& params, const std::vector<Tensor>& buffers);
// Queues `finish` to run when the current backward ends and sets `in_backward` until then (also when a
// throwing backward discards the callback without running it).
void queue_end_of_backward(bool& in_backward, std::function<void()> finish);

}  // namespace ember::dist::detail

namespace ember::dist {

// A model's named parameters and buffers, from what the user holds: a module (parameters()/buffers(),
// named_* where available: dist does not depend on nn), a module handle (nn::Linear, a shared_ptr),
// named tensors (names may be empty) or plain tensors (the rank check then reports positions only).
struct ModelTensors {
  using NamedTensors = detail::NamedTensors;
  template <class M>
  requires requires(const M& m) {
    m.parameters();
    m.buffers();
  }
  ModelTensors(const M& module)  // NOLINT(google-explicit-constructor): DDP(model, comm) reads naturally
      : parameters(detail::named_parameters_of(module)), buffers(detail::named_buffers_of(module)) {}
  template <class H>
  requires requires(const H& h) {
    h->parameters();
    h->buffers();
  }
  ModelTensors(const H& handle)  // NOLINT(google-explicit-constructor)
      : ModelTensors(detail::target(handle)) {}
  ModelTensors(NamedTensors p, NamedTensors b) : parameters(std::move(p)), buffers(std::move(b)) {}
  ModelTensors(const std::vector<Tensor>& p, const std::vector<Tensor>& b)
      : parameters(detail::unnamed(p)), buffers(detail::unnamed(b)) {}

  NamedTensors parameters, buffers;
};

class NoSync;

// A synchronised replica's no-sync switch (the base of DistributedDataParallel and ShardedDataParallel).
class Replica {
 public:
  // While the returned NoSync lives, backward leaves every gradient local (they accumulate); the first
  // synchronised backward after it reduces the accumulated gradients. For gradient accumulation: no
  // communication on the first N-1 micro-batches.
  [[nodiscard]] NoSync no_sync();
  bool require_backward_grad_sync() const { return sync_; }

 protected:
  Replica() = default;
  ~Replica() = default;
  bool sync_ = true;

 private:
  friend class NoSync;
};

class NoSync {
 public:
  explicit NoSync(Replica& r) : r_(r), prev_(r.sync_) { r.sync_ = false; }
  ~NoSync() { r_.sync_ = prev_; }
  NoSync(const NoSync&) = delete;
  NoSync& operator=(const NoSync&) = delete;

 private:
  Replica& r_;
  bool prev_;
};

inline NoSync Replica::no_sync() { return NoSync(*this); }

}  // namespace ember::dist
