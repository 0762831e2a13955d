// Host reads (see host_sync.hpp): an atomic counter, and a per-thread depth so nested reads count once.
#include "core/host_sync.hpp"

#include <atomic>

namespace ember {
namespace {
std::atomic<int64_t> g_reads{0};
thread_local int t_depth = 0;
}  // namespace

int64_t host_reads() { return g_reads.load(std::memory_order_relaxed); }

namespace detail {
void count_host_read() {
  if (t_depth == 0) g_reads.fetch_add(1, std::memory_order_relaxed);
}
HostReadScope::HostReadScope() {
  count_host_read();
  ++t_depth;
}
HostReadScope::~HostReadScope() { --t_depth; }
bool HostReadScope::active() { return t_depth > 0; }
}  // namespace detail

}  // namespace ember
