// The caching CPU allocator: sizes round up to bins (at most 1/8 waste above 4 KiB), freed blocks go to
// a per-bin free list and are handed out again; on system OOM the cache is released and the call retried.
#include "core/allocator.hpp"

#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/error.hpp"
#include "kernels/cuda_device.hpp"

namespace ember {
namespace {

constexpr size_t kAlign = 64;

size_t round_size(size_t n) {
  if (n == 0) n = 1;
  if (n <= 4096) return (n + kAlign - 1) / kAlign * kAlign;
  // 8 bins per power of two: round up to a multiple of 2^(floor(log2 n) - 3).
  int lg = 63 - __builtin_clzll(n);
  size_t step = size_t{1} << (lg - 3);
  return (n + step - 1) / step * step;
}

class CpuCachingAllocator final : public Allocator {
 public:
  ~CpuCachingAllocator() override { release_all(); }

  void* allocate(size_t nbytes) override {
    size_t sz = round_size(nbytes);
    std::lock_guard lock(mu_);
    ++stats_.allocations;
    void* p = nullptr;
    auto it = free_.find(sz);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      stats_.cached_bytes -= static_cast<int64_t>(sz);
    } else {
      p = std::aligned_alloc(kAlign, sz);
      if (!p) {
        release_all_locked();
        p = std::aligned_alloc(kAlign, sz);
      }
      EMBER_CHECK(p, OutOfMemoryError, "[cpu allocator] out of memory allocating ", nbytes,
                  " bytes (in use: ", stats_.current_bytes, " bytes)");
      ++stats_.system_allocations;
    }
    stats_.current_bytes += static_cast<int64_t>(sz);
    stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.current_bytes);
    stats_.reserved_bytes = stats_.current_bytes + stats_.cached_bytes;
    return p;
  }

  void deallocate(void* p, size_t nbytes) noexcept override {
    if (!p) return;
    size_t sz = round_size(nbytes);
    std::lock_guard lock(mu_);
    free_[sz].push_back(p);
    stats_.current_bytes -= static_cast<int64_t>(sz);
    stats_.cached_bytes += static_cast<int64_t>(sz);
    stats_.reserved_bytes = stats_.current_bytes + stats_.cached_bytes;
  }

  MemoryStats stats() const override {
    std::lock_guard lock(mu_);
    return stats_;
  }
  void reset_peak() override {
    std::lock_guard lock(mu_);
    stats_.peak_bytes = stats_.current_bytes;
  }
  void empty_cache() override { release_all(); }

 private:
  void release_all() {
    std::lock_guard lock(mu_);
    release_all_locked();
  }
  void release_all_locked() {
    for (auto& [sz, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    stats_.cached_bytes = 0;
    stats_.reserved_bytes = stats_.current_bytes;
  }

  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  MemoryStats stats_;
};

}  // namespace

Allocator& cpu_allocator() {
  static auto* a = new CpuCachingAllocator();  // never destroyed: tensors may outlive static teardown
  return *a;
}

Allocator& allocator_for(Device d) {
  if (d.is_cuda()) return kernels::cuda::allocator(d.index);
  return cpu_allocator();
}

MemoryStats memory_stats(Device d) { return allocator_for(d).stats(); }
void reset_peak_memory_stats(Device d) { allocator_for(d).reset_peak(); }
void empty_cache(Device d) { allocator_for(d).empty_cache(); }

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device), allocator_(&allocator_for(device)) {
  data_ = allocator_->allocate(nbytes);
}

Storage::Storage(size_t nbytes, Device device, Allocator& allocator)
    : nbytes_(nbytes), device_(device), allocator_(&allocator) {
  data_ = allocator_->allocate(nbytes);
}

Storage::Storage(void* external, size_t nbytes, Device device, std::shared_ptr<void> keepalive)
    : data_(external), nbytes_(nbytes), device_(device), keepalive_(std::move(keepalive)) {}

Storage::~Storage() {
  if (allocator_) allocator_->deallocate(data_, nbytes_);
}

}  // namespace ember
