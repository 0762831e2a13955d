// The block arithmetic of the CUDA caching allocator, as plain C++ so that CPU tests cover it: memory
// comes from the system in segments, a request takes the best-fitting free block of its stream's pool
// (small requests and large ones have separate pools) and splits off the rest, and a freed block
// merges with its free neighbours. The system calls (cudaMalloc/cudaFree) are passed in.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <set>
#include <unordered_map>

namespace ember::kernels {

struct BlockPoolStats {
  int64_t allocated_bytes = 0;  // in blocks handed out
  int64_t reserved_bytes = 0;   // in segments held from the system
  int64_t segments = 0;
  int64_t system_allocations = 0;  // segments ever requested from the system
  int64_t system_frees = 0;
};

class BlockPool {
 public:
  static constexpr size_t kAlign = 512;                   // every block size is a multiple
  static constexpr size_t kSmallLimit = size_t{1} << 20;  // requests up to this use the small pool
  static constexpr size_t kSmallSegment = size_t{2} << 20;
  static constexpr size_t kMidSegment = size_t{20} << 20;  // for requests below 10 MiB
  static constexpr size_t kLargeRound = size_t{2} << 20;

  // system_alloc returns nullptr when the system has no memory left.
  using SystemAlloc = std::function<void*(size_t)>;
  using SystemFree = std::function<void(void*)>;

  BlockPool(SystemAlloc system_alloc, SystemFree system_free)
      : system_alloc_(std::move(system_alloc)), system_free_(std::move(system_free)) {}
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  static size_t round_size(size_t nbytes);
  // The segment requested from the system for a block of `size` (rounded) bytes.
  static size_t segment_size(size_t size);

  // A block of at least nbytes for work on `stream`; nullptr when the system is out of memory even
  // after the wholly free cached segments were released. may_release = false keeps the cache (while a
  // CUDA graph captures, cudaFree would invalidate the capture): nullptr at once then.
  void* allocate(size_t nbytes, uintptr_t stream, bool may_release = true);
  // Returns a block to its stream's pool; the caller knows no queued work still uses it.
  void free(void* p);
  // Gives every wholly free segment back to the system.
  void release_cached();

  size_t block_size(const void* p) const;
  uintptr_t block_stream(const void* p) const;
  const BlockPoolStats& stats() const { return stats_; }
  // Free blocks, counted per pool (for tests of splitting and merging).
  size_t free_blocks() const { return small_.size() + large_.size(); }

 private:
  struct Block {
    char* ptr;
    size_t size;
    uintptr_t stream;
    bool small;
    bool allocated = false;
    Block* prev = nullptr;  // neighbours within one segment
    Block* next = nullptr;
  };
  struct Order {  // best fit: stream, then size, then address
    bool operator()(const Block* a, const Block* b) const {
      if (a->stream != b->stream) return a->stream < b->stream;
      if (a->size != b->size) return a->size < b->size;
      return a->ptr < b->ptr;
    }
  };
  using Pool = std::set<Block*, Order>;

  Pool& pool_of(bool small) { return small ? small_ : large_; }
  Block* take_free(size_t size, uintptr_t stream, bool small);
  Block* new_segment(size_t size, uintptr_t stream, bool small, bool may_release);
  void merge(Block* into_prev, Block* next);

  SystemAlloc system_alloc_;
  SystemFree system_free_;
  Pool small_, large_;
  std::unordered_map<const void*, Block*> live_;  // allocated blocks by address
  BlockPoolStats stats_;
};

}  // namespace ember::kernels
