// Allocators and Storage. The CPU allocator is a caching one: 64-byte aligned blocks, size-binned free
// lists, so steady-state training reuses blocks instead of mapping fresh pages every step.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/device.hpp"

namespace ember {

struct MemoryStats {
  int64_t current_bytes = 0;       // bytes in live blocks handed to tensors (rounded block sizes)
  int64_t peak_bytes = 0;          // high-water mark of current_bytes since the last reset
  int64_t cached_bytes = 0;        // bytes held in free lists, ready for reuse
  int64_t reserved_bytes = 0;      // current + cached: what the process holds from the system
  int64_t allocations = 0;         // allocate() calls
  int64_t system_allocations = 0;  // of those, how many went to the system (cache misses)
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* p, size_t nbytes) noexcept = 0;  // called from ~Storage: never throws
  virtual MemoryStats stats() const = 0;
  virtual void reset_peak() = 0;
  virtual void empty_cache() = 0;
};

Allocator& cpu_allocator();
Allocator& allocator_for(Device d);
MemoryStats memory_stats(Device d = kCPU);
void reset_peak_memory_stats(Device d = kCPU);
void empty_cache(Device d = kCPU);

// A block of memory on one device; views of a tensor share one Storage. The version counter lives
// here so that in-place writes through any view are seen by every view (autograd checks it).
class Storage {
 public:
  Storage(size_t nbytes, Device device);
  // Memory from a given allocator (pinned host memory).
  Storage(size_t nbytes, Device device, Allocator& allocator);
  // Wraps memory the caller owns and keeps alive (no deallocation).
  Storage(void* external, size_t nbytes, Device device, std::shared_ptr<void> keepalive);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  uint32_t version() const { return version_.load(std::memory_order_relaxed); }
  // op names the in-place op, for autograd's "modified in place by" errors.
  void bump_version(const char* op = "an in-place op") {
    last_writer_ = op;
    version_.fetch_add(1, std::memory_order_relaxed);
  }
  const char* last_writer() const { return last_writer_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  Allocator* allocator_ = nullptr;
  std::shared_ptr<void> keepalive_;
  std::atomic<uint32_t> version_{0};
  const char* last_writer_ = "";
};

}  // namespace ember
