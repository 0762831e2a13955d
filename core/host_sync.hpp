// Host reads: a process-wide count of the places where the host waits for a tensor's value
// (Tensor::item, Tensor::to_vector, blocking device-to-host copies). Tests and benchmarks use it to
// check that a training step never synchronises; CPU tensors' item()/to_vector() count too, so the
// check runs on machines without a GPU.
#pragma once
#include <cstdint>

namespace ember {

// Host reads so far in this process (all threads).
int64_t host_reads();

namespace detail {
void count_host_read();
// While alive on this thread, reads are counted once: item()/to_vector() count themselves, not the copy
// to the host they make.
class HostReadScope {
 public:
  HostReadScope();
  ~HostReadScope();
  HostReadScope(const HostReadScope&) = delete;
  HostReadScope& operator=(const HostReadScope&) = delete;
  static bool active();
};
}  // namespace detail

}  // namespace ember
