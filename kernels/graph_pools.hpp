// The CUDA caching allocator's graph pools as plain C++, so that CPU tests cover them: while a CUDA
// graph captures on a stream, allocations on that stream come from a BlockPool owned by the graph (its
// blocks never go to eager work; a block freed during the capture is reused only by the same capture,
// whose stream order is the graph's order), blocks of the ordinary pools freed during any capture wait
// until no capture is under way (no event can be recorded or queried then), and a graph's pool returns
// its memory once the graph is gone and its last block is freed, never during a capture.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "kernels/block_pool.hpp"

namespace ember::kernels {

class GraphPools {
 public:
  // system_alloc throws when out of memory: returning null would make BlockPool release wholly free
  // segments, whose memory the graph captured so far may still use.
  GraphPools(BlockPool::SystemAlloc system_alloc, BlockPool::SystemFree system_free)
      : system_alloc_(std::move(system_alloc)), system_free_(std::move(system_free)) {}

  // A capture begins on `stream` into pool `id` (made on first use; a re-capture reuses it).
  void begin(uint64_t id, uintptr_t stream);
  // The capture on `stream` ended. When no capture is left, returns the ordinary blocks whose frees
  // waited (the caller frees them now) and drops the dead pools with no live block.
  std::vector<void*> end(uintptr_t stream);
  // The graph owning pool `id` is gone.
  void release(uint64_t id);

  bool capturing() const { return !capture_.empty(); }
  // The pool that allocations on `stream` come from, if it captures.
  std::optional<uint64_t> pool_for(uintptr_t stream) const;
  void* allocate(uint64_t id, size_t nbytes, uintptr_t stream);
  bool owns(const void* p) const { return owner_.count(p) != 0; }
  // Frees a graph-pool block; false when p is not one.
  bool free(void* p);
  // An ordinary block freed during a capture: kept until the captures end. False when none is under way.
  bool defer(void* p);

  int64_t allocated_bytes() const;
  int64_t reserved_bytes() const;
  int64_t system_allocations() const;
  size_t pools() const { return pools_.size(); }
  size_t deferred() const { return deferred_.size(); }

 private:
  struct Pool {
    std::unique_ptr<BlockPool> blocks;
    bool graph_alive = true;
  };
  void maybe_drop(uint64_t id);

  BlockPool::SystemAlloc system_alloc_;
  BlockPool::SystemFree system_free_;
  std::map<uint64_t, Pool> pools_;
  std::unordered_map<uintptr_t, uint64_t> capture_;  // capturing streams -> their pool
  std::unordered_map<const void*, uint64_t> owner_;  // live graph-pool blocks -> their pool
  std::vector<void*> deferred_;
  int64_t dropped_system_allocations_ = 0;  // of pools already dropped, so the count never falls
};

}  // namespace ember::kernels
