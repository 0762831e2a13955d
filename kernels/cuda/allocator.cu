// The CUDA caching allocator, one per device: sizes round up to 512 B below 1 MiB and to 2 MiB
// multiples above, freed blocks wait in per-size free lists for reuse (cudaMalloc and cudaFree
// synchronise the device, so a training step must not call them), and an allocation that fails
// releases the cache and retries before raising OutOfMemoryError.
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/error.hpp"
#include "kernels/cuda/runtime.hpp"

namespace ember::kernels::cuda {
namespace {

constexpr size_t kSmallStep = 512;
constexpr size_t kSmallLimit = size_t{1} << 20;
constexpr size_t kLargeStep = size_t{2} << 20;

size_t round_size(size_t n) {
  if (n == 0) n = 1;
  if (n < kSmallLimit) return (n + kSmallStep - 1) / kSmallStep * kSmallStep;
  return (n + kLargeStep - 1) / kLargeStep * kLargeStep;
}

// All work runs on the device's legacy default stream (runtime.hpp), so a block freed by a tensor
// may be handed out again at once: any later use is ordered after the kernels that used it.
class CudaCachingAllocator final : public Allocator {
 public:
  explicit CudaCachingAllocator(int device) : device_(device) {}

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
      DeviceGuard g(device_);
      cudaError_t err = cudaMalloc(&p, sz);
      if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        release_all_locked();
        err = cudaMalloc(&p, sz);
      }
      if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        cudaGetLastError();
        throw OutOfMemoryError(detail::cat_str("[cuda allocator] out of memory on cuda:", device_, " allocating ",
                                               nbytes, " bytes (in use: ", stats_.current_bytes,
                                               " bytes, peak: ", stats_.peak_bytes, " bytes, device free: ", free_b,
                                               " of ", total_b, " bytes)"));
      }
      EMBER_CUDA_CHECK(err);
      ++stats_.system_allocations;
    }
    stats_.current_bytes += static_cast<int64_t>(sz);
    stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.current_bytes);
    stats_.reserved_bytes = stats_.current_bytes + stats_.cached_bytes;
    return p;
  }

  void deallocate(void* p, size_t nbytes) override {
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
  void empty_cache() override {
    std::lock_guard lock(mu_);
    release_all_locked();
  }

 private:
  void release_all_locked() {
    DeviceGuard g(device_);
    for (auto& [sz, blocks] : free_)
      for (void* p : blocks) EMBER_CUDA_CHECK(cudaFree(p));
    free_.clear();
    stats_.cached_bytes = 0;
    stats_.reserved_bytes = stats_.current_bytes;
  }

  int device_;
  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  MemoryStats stats_;
};

}  // namespace

Allocator& allocator(int device) {
  int index = device_index(Device(Device::Kind::CUDA, device), "cuda allocator");
  // Never destroyed: tensors may outlive static teardown, and cudaFree after the runtime unloads fails.
  static auto* allocators = [] {
    auto* v = new std::vector<std::unique_ptr<CudaCachingAllocator>>();
    for (int d = 0; d < device_count(); ++d) v->push_back(std::make_unique<CudaCachingAllocator>(d));
    return v;
  }();
  return *(*allocators)[static_cast<size_t>(index)];
}

}  // namespace ember::kernels::cuda
