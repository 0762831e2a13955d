// The process-wide deterministic-algorithms switch (torch.use_deterministic_algorithms): when on,
// kernels that would otherwise add floats with atomics (CUDA scatter_add, index_add, embedding
// backward) take a path whose summation order is fixed, so a run repeats bit for bit.
#pragma once
#include <atomic>

namespace ember {

namespace detail {
inline std::atomic<bool> deterministic_flag{false};
}  // namespace detail

inline void set_deterministic(bool on) { detail::deterministic_flag.store(on, std::memory_order_relaxed); }
inline bool deterministic() { return detail::deterministic_flag.load(std::memory_order_relaxed); }

// Sets the switch for a scope and restores the previous value (the Trainer's `deterministic` option).
class DeterministicGuard {
 public:
  explicit DeterministicGuard(bool on) : prev_(deterministic()) { set_deterministic(on); }
  ~DeterministicGuard() { set_deterministic(prev_); }
  DeterministicGuard(const DeterministicGuard&) = delete;
  DeterministicGuard& operator=(const DeterministicGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace ember
