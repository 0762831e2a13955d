// GraphPools: the graph pools' bookkeeping (see graph_pools.hpp).
#include "kernels/graph_pools.hpp"

#include <utility>

#include "core/error.hpp"

namespace ember::kernels {

void GraphPools::begin(uint64_t id, uintptr_t stream) {
  EMBER_CHECK(!capture_.count(stream), Error, "[cuda graph] the stream already captures into a graph pool");
  if (!pools_.count(id)) pools_.emplace(id, Pool{std::make_unique<BlockPool>(system_alloc_, system_free_), true});
  capture_[stream] = id;
}

std::vector<void*> GraphPools::end(uintptr_t stream) {
  capture_.erase(stream);
  if (capturing()) return {};
  for (auto it = pools_.begin(); it != pools_.end();) maybe_drop((it++)->first);
  return std::exchange(deferred_, {});
}

void GraphPools::release(uint64_t id) {
  auto it = pools_.find(id);
  if (it == pools_.end()) return;
  it->second.graph_alive = false;
  maybe_drop(id);
}

std::optional<uint64_t> GraphPools::pool_for(uintptr_t stream) const {
  auto it = capture_.find(stream);
  if (it == capture_.end()) return std::nullopt;
  return it->second;
}

void* GraphPools::allocate(uint64_t id, size_t nbytes, uintptr_t stream) {
  // Only while capturing: a full pool keeps its cache (cudaFree would invalidate the capture).
  void* p = pools_.at(id).blocks->allocate(nbytes, stream, /*may_release=*/false);
  EMBER_CHECK(p != nullptr, OutOfMemoryError, "[cuda allocator] out of memory allocating ", nbytes,
              " bytes for a CUDA graph's pool");
  owner_[p] = id;
  return p;
}

bool GraphPools::free(void* p) {
  auto own = owner_.find(p);
  if (own == owner_.end()) return false;
  const uint64_t id = own->second;
  owner_.erase(own);
  pools_.at(id).blocks->free(p);
  maybe_drop(id);
  return true;
}

bool GraphPools::defer(void* p) {
  if (!capturing()) return false;
  deferred_.push_back(p);
  return true;
}

void GraphPools::maybe_drop(uint64_t id) {
  auto it = pools_.find(id);
  if (it == pools_.end() || it->second.graph_alive || capturing()) return;
  BlockPool& b = *it->second.blocks;
  if (b.stats().allocated_bytes != 0) return;
  b.release_cached();
  dropped_system_allocations_ += b.stats().system_allocations;
  pools_.erase(it);
}

int64_t GraphPools::allocated_bytes() const {
  int64_t n = 0;
  for (const auto& [id, p] : pools_) n += p.blocks->stats().allocated_bytes;
  return n;
}
int64_t GraphPools::reserved_bytes() const {
  int64_t n = 0;
  for (const auto& [id, p] : pools_) n += p.blocks->stats().reserved_bytes;
  return n;
}
int64_t GraphPools::system_allocations() const {
  int64_t n = dropped_system_allocations_;
  for (const auto& [id, p] : pools_) n += p.blocks->stats().system_allocations;
  return n;
}

}  // namespace ember::kernels
