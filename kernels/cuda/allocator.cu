// The CUDA caching allocators. Device memory: one BlockPool (kernels/block_pool.hpp: best-fit split
// and merge over cudaMalloc'd segments, one pool per stream) per device, because cudaMalloc and
// cudaFree synchronise the device and a training step must not call them. A block is handed out for
// work on the current stream; one also used on other streams (record_stream) waits, once freed, for
// events on those streams before it is reused. Pinned host memory: cudaHostAlloc'd blocks cached by
// size, held back after a free until the async copies that use them are done. They are portable (pinned
// for every device's context) and allocated with the process's working device current, so a data loader
// thread (whose current device is 0) does not open a context on GPU 0 in a process that trains on GPU 3.
// CUDA graphs: while a graph captures on a stream, allocations on it come from a pool owned by that graph
// (kernels/graph_pools.hpp, CPU-tested): never handed to eager work, nothing cudaFree'd during a capture,
// ordinary frees held until the capture ends; cudaMalloc runs in relaxed capture mode.
#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "kernels/block_pool.hpp"
#include "kernels/cuda/runtime.hpp"
#include "kernels/graph_pools.hpp"

namespace ember::kernels::cuda {
namespace {

// A freed block that waits for work queued on other streams.
struct Pending {
  void* ptr;
  std::vector<cudaEvent_t> events;
};

// A stream that joined a capture by waiting on the capturing stream records into the graph too, but the
// graph's pool is the capturing stream's: its allocations would be eager memory the graph writes at every
// replay, and its uses of graph memory are not ordered with that pool's reuse. Ember's graphs capture one
// stream, so such a stream is an error rather than silent corruption.
void check_not_forked_into_capture(cudaStream_t stream, const char* what) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &status) != cudaSuccess) {
    cudaGetLastError();
    return;
  }
  EMBER_CHECK(status == cudaStreamCaptureStatusNone, Error, "[", what,
              "] a stream that joined a CUDA graph capture (it waited on the capturing stream) allocates or takes "
              "graph memory: Ember's CUDA graphs capture a single stream. Queue the captured work on the capture "
              "stream (CudaGraphCapture::stream()), or fork only work that uses memory made before the capture");
}

bool all_done(const std::vector<cudaEvent_t>& events) {
  for (cudaEvent_t e : events)
    if (!event_done(e)) return false;
  return true;
}

// cudaMalloc in relaxed capture mode: it is not a stream operation, and the capturing thread's
// thread-local mode would otherwise reject it as "potentially unsafe".
void* system_malloc(int device, size_t n) {
  note_working_device(device);
  DeviceGuard g(device);
  void* p = nullptr;
  cudaError_t err = [&] {
    RelaxedCaptureGuard relaxed;
    return cudaMalloc(&p, n);
  }();
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    return nullptr;
  }
  EMBER_CUDA_CHECK(err);
  return p;
}

class CudaCachingAllocator final : public Allocator {
 public:
  explicit CudaCachingAllocator(int device)
      : device_(device),
        pool_([this](size_t n) -> void* { return system_malloc(device_, n); },
              [this](void* p) {
                DeviceGuard g(device_);
                EMBER_CUDA_CHECK(cudaFree(p));
              }),
        graph_pools_(
            [this](size_t n) -> void* {
              void* q = system_malloc(device_, n);
              if (q == nullptr)
                throw OutOfMemoryError(detail::cat_str("[cuda allocator] out of memory on cuda:", device_, " taking ",
                                                       n,
                                                       " bytes for a CUDA graph's pool during capture (the cache "
                                                       "cannot be released while capturing)"));
              return q;
            },
            [this](void* q) {
              DeviceGuard g(device_);
              EMBER_CUDA_CHECK(cudaFree(q));
            }) {}

  void* allocate(size_t nbytes) override {
    const cudaStream_t stream = current_stream(device_);
    const auto key = reinterpret_cast<uintptr_t>(stream);
    std::lock_guard lock(mu_);
    ++allocations_;
    if (const std::optional<uint64_t> id = graph_pools_.pool_for(key)) {
      void* p = graph_pools_.allocate(*id, nbytes, key);
      peak_ = std::max(peak_, pool_.stats().allocated_bytes + graph_pools_.allocated_bytes());
      return p;
    }
    if (graph_pools_.capturing()) {  // another stream during a capture: no event queries, no cudaFree
      check_not_forked_into_capture(stream, "cuda allocator");
      void* p = pool_.allocate(nbytes, key, /*may_release=*/false);
      if (p == nullptr) throw_oom_locked(nbytes, /*released=*/false);
      peak_ = std::max(peak_, pool_.stats().allocated_bytes + graph_pools_.allocated_bytes());
      return p;
    }
    collect_pending_locked(false);
    void* p = pool_.allocate(nbytes, key);
    if (p == nullptr && !pending_.empty()) {  // wait for the held-back blocks, then try again
      collect_pending_locked(true);
      pool_.release_cached();
      p = pool_.allocate(nbytes, key);
    }
    if (p == nullptr) throw_oom_locked(nbytes);
    peak_ = std::max(peak_, pool_.stats().allocated_bytes + graph_pools_.allocated_bytes());
    return p;
  }

  // Called from ~Storage, so it never throws. After a sticky device fault (an illegal address) the events
  // and cudaFree below fail: the block is then left allocated, never reused, and the fault is reported by
  // the next synchronisation or launch instead of terminating the process while an exception unwinds.
  void deallocate(void* p, size_t /*nbytes*/) noexcept override {
    if (!p) return;
    std::lock_guard lock(mu_);
    try {
      if (graph_pools_.free(p)) {
        uses_.erase(p);  // graph memory: its work is ordered by the graph's own stream
        return;
      }
      if (graph_pools_.defer(p)) return;  // freed during a capture: once no capture is under way
      free_main_locked(p);
    } catch (const std::exception& e) {
      if (!warned_leak_) std::fprintf(stderr, "[cuda allocator] a freed block is not reused after: %s\n", e.what());
      warned_leak_ = true;
    }
  }

  // A capture begins on `stream` into the graph's pool `id`.
  void begin_pool(uint64_t id, cudaStream_t stream) {
    std::lock_guard lock(mu_);
    graph_pools_.begin(id, reinterpret_cast<uintptr_t>(stream));
  }
  // The capture on `stream` ended: frees held back during captures happen now.
  void end_pool(cudaStream_t stream) {
    std::lock_guard lock(mu_);
    for (void* p : graph_pools_.end(reinterpret_cast<uintptr_t>(stream))) free_main_locked(p);
  }
  // The graph owning pool `id` is gone: its memory returns once its blocks are freed.
  void release_pool(uint64_t id) {
    std::lock_guard lock(mu_);
    graph_pools_.release(id);
  }

 private:
  void free_main_locked(void* p) {
    auto it = uses_.find(p);
    if (it == uses_.end()) {
      pool_.free(p);  // used on its own stream only: later work there is ordered after the last use
      return;
    }
    Pending pend{p, {}};
    try {
      DeviceGuard g(device_);
      for (cudaStream_t s : it->second) {
        cudaEvent_t e = nullptr;
        EMBER_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
        pend.events.push_back(e);
        EMBER_CUDA_CHECK(cudaEventRecord(e, s));
      }
    } catch (...) {  // the block cannot be ordered after its other streams' work: it stays allocated
      for (cudaEvent_t e : pend.events) cudaEventDestroy(e);
      uses_.erase(it);
      throw;
    }
    uses_.erase(it);
    pending_.push_back(std::move(pend));
  }

 public:
  void record_stream(void* p, cudaStream_t stream) {
    std::lock_guard lock(mu_);
    EMBER_CHECK(pool_.block_size(p) > 0 || graph_pools_.owns(p), ValueError,
                "[record_stream] the pointer is not the start of a block of this device's allocator");
    // A capturing stream's work runs at replays; an event recorded on it at the free could not be waited on.
    if (graph_pools_.pool_for(reinterpret_cast<uintptr_t>(stream))) return;
    if (graph_pools_.capturing()) check_not_forked_into_capture(stream, "record_stream");
    if (graph_pools_.owns(p)) return;  // graph memory: ordered by the graph's own stream
    if (reinterpret_cast<uintptr_t>(stream) == pool_.block_stream(p)) return;
    auto& v = uses_[p];
    for (cudaStream_t s : v)
      if (s == stream) return;
    v.push_back(stream);
  }

  MemoryStats stats() const override {
    std::lock_guard lock(mu_);
    const BlockPoolStats& s = pool_.stats();
    MemoryStats m;
    m.current_bytes = s.allocated_bytes;
    m.reserved_bytes = s.reserved_bytes;
    m.system_allocations = s.system_allocations;
    m.current_bytes += graph_pools_.allocated_bytes();  // graph pools are the process's memory too
    m.reserved_bytes += graph_pools_.reserved_bytes();
    m.system_allocations += graph_pools_.system_allocations();
    m.peak_bytes = std::max(peak_, m.current_bytes);
    m.cached_bytes = m.reserved_bytes - m.current_bytes;
    m.allocations = allocations_;
    return m;
  }
  void reset_peak() override {
    std::lock_guard lock(mu_);
    peak_ = pool_.stats().allocated_bytes + graph_pools_.allocated_bytes();
  }
  void empty_cache() override {
    std::lock_guard lock(mu_);
    EMBER_CHECK(!graph_pools_.capturing(), Error,
                "[empty_cache] cannot release cached memory while a CUDA graph captures (cudaFree is not capturable)");
    collect_pending_locked(true);
    pool_.release_cached();
  }

 private:
  // Frees the held-back blocks whose events have completed (all of them, waiting, when wait is set).
  void collect_pending_locked(bool wait) {
    for (size_t i = 0; i < pending_.size();) {
      Pending& p = pending_[i];
      if (wait)
        for (cudaEvent_t e : p.events) EMBER_CUDA_CHECK(cudaEventSynchronize(e));
      if (wait || all_done(p.events)) {
        for (cudaEvent_t e : p.events) cudaEventDestroy(e);
        pool_.free(p.ptr);  // pending blocks are always the main pool's
        pending_[i] = std::move(pending_.back());
        pending_.pop_back();
      } else {
        ++i;
      }
    }
  }

  // released: whether the cache was given back before this (not while a CUDA graph captures).
  [[noreturn]] void throw_oom_locked(size_t nbytes, bool released = true) {
    size_t free_b = 0, total_b = 0;
    {
      DeviceGuard g(device_);
      cudaMemGetInfo(&free_b, &total_b);
      cudaGetLastError();
    }
    const BlockPoolStats& s = pool_.stats();
    throw OutOfMemoryError(detail::cat_str("[cuda allocator] out of memory on cuda:", device_, " allocating ", nbytes,
                                           " bytes (in use by tensors: ", s.allocated_bytes,
                                           " bytes, cached by the allocator: ", s.reserved_bytes - s.allocated_bytes,
                                           " bytes, peak in use: ", peak_, " bytes, device free: ", free_b, " of ",
                                           total_b, " bytes); ",
                                           released ? "the cache was released before this error"
                                                    : "the cache is not released while a CUDA graph captures "
                                                      "(cudaFree is not capturable)"));
  }

  int device_;
  mutable std::mutex mu_;
  BlockPool pool_;
  std::unordered_map<void*, std::vector<cudaStream_t>> uses_;  // streams besides the allocation stream
  std::vector<Pending> pending_;
  int64_t allocations_ = 0;
  int64_t peak_ = 0;
  GraphPools graph_pools_;  // CUDA graphs' pools (kernels/graph_pools.hpp)
  bool warned_leak_ = false;
};

std::vector<std::unique_ptr<CudaCachingAllocator>>& device_allocators() {
  // Never destroyed: tensors may outlive static teardown, and cudaFree after the runtime unloads fails.
  static auto* allocators = [] {
    auto* v = new std::vector<std::unique_ptr<CudaCachingAllocator>>();
    for (int d = 0; d < device_count(); ++d) v->push_back(std::make_unique<CudaCachingAllocator>(d));
    return v;
  }();
  return *allocators;
}

// Pinned host blocks by exact rounded size; a freed block with copies in flight waits on their events.
class PinnedAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    const size_t sz = BlockPool::round_size(nbytes);
    std::lock_guard lock(mu_);
    ++stats_.allocations;
    collect_locked();
    void* p = nullptr;
    auto it = free_.find(sz);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      stats_.cached_bytes -= static_cast<int64_t>(sz);
    } else {
      const DeviceGuard guard = working_device_guard();
      cudaError_t err = cudaHostAlloc(&p, sz, cudaHostAllocPortable);
      if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        release_locked();
        err = cudaHostAlloc(&p, sz, cudaHostAllocPortable);
      }
      if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        throw OutOfMemoryError(detail::cat_str("[pin_memory] cannot pin ", nbytes,
                                               " bytes of host memory (pinned in use: ", stats_.current_bytes,
                                               " bytes)"));
      }
      EMBER_CUDA_CHECK(err);
      ++stats_.system_allocations;
    }
    size_of_[p] = sz;
    stats_.current_bytes += static_cast<int64_t>(sz);
    stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.current_bytes);
    stats_.reserved_bytes = stats_.current_bytes + stats_.cached_bytes;
    return p;
  }

  void deallocate(void* p, size_t /*nbytes*/) noexcept override {
    if (!p) return;
    std::lock_guard lock(mu_);
    const size_t sz = size_of_.at(p);
    size_of_.erase(p);
    stats_.current_bytes -= static_cast<int64_t>(sz);
    stats_.cached_bytes += static_cast<int64_t>(sz);
    stats_.reserved_bytes = stats_.current_bytes + stats_.cached_bytes;
    auto it = uses_.find(p);
    if (it == uses_.end()) {
      free_[sz].push_back(p);
      return;
    }
    Pending waiting{p, {}};
    for (const CopyUse& u : it->second) waiting.events.push_back(u.event);
    pending_.push_back(std::move(waiting));
    pending_size_[p] = sz;
    uses_.erase(it);
  }

  bool owns(const void* p) {
    std::lock_guard lock(mu_);
    // A pointer inside a block counts too (a view's data pointer).
    auto it = size_of_.upper_bound(const_cast<void*>(p));
    if (it == size_of_.begin()) return false;
    --it;
    return static_cast<const char*>(p) < static_cast<const char*>(it->first) + it->second;
  }

  void record_use(void* p, int device, cudaStream_t stream) {
    std::lock_guard lock(mu_);
    auto it = size_of_.upper_bound(p);
    EMBER_CHECK(it != size_of_.begin(), ValueError, "[pin_memory] not a pinned block");
    --it;
    DeviceGuard g(device);
    std::vector<CopyUse>& uses = uses_[it->first];
    for (CopyUse& u : uses)
      if (u.device == device && u.stream == stream) {  // a stream runs in order: the later copy's event covers both
        EMBER_CUDA_CHECK(cudaEventRecord(u.event, stream));
        return;
      }
    cudaEvent_t e = nullptr;
    EMBER_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    const cudaError_t err = cudaEventRecord(e, stream);
    if (err != cudaSuccess) cudaEventDestroy(e);
    EMBER_CUDA_CHECK(err);
    uses.push_back({device, stream, e});
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
    collect_locked();
    release_locked();
  }

 private:
  void collect_locked() {
    for (size_t i = 0; i < pending_.size();) {
      if (all_done(pending_[i].events)) {
        for (cudaEvent_t e : pending_[i].events) cudaEventDestroy(e);
        void* p = pending_[i].ptr;
        free_[pending_size_.at(p)].push_back(p);
        pending_size_.erase(p);
        pending_[i] = std::move(pending_.back());
        pending_.pop_back();
      } else {
        ++i;
      }
    }
  }
  // Every cached block leaves the cache before it is freed, so a failed cudaFreeHost (it also returns
  // earlier asynchronous errors) never leaves a freed block to be handed out; the first error is raised.
  void release_locked() {
    const DeviceGuard guard = working_device_guard();
    cudaError_t first = cudaSuccess;
    for (auto& [sz, blocks] : std::exchange(free_, {}))
      for (void* p : blocks) {
        const cudaError_t err = cudaFreeHost(p);
        if (first == cudaSuccess) first = err;
        stats_.cached_bytes -= static_cast<int64_t>(sz);
      }
    stats_.reserved_bytes = stats_.current_bytes + stats_.cached_bytes;
    EMBER_CUDA_CHECK(first);
  }

  mutable std::mutex mu_;
  std::map<void*, size_t> size_of_;  // live blocks, ordered for the inside-a-block lookup
  std::unordered_map<size_t, std::vector<void*>> free_;
  // Copies in flight from or to a live block: one event per (device, stream), re-recorded by each later copy
  // (cudaStreamLegacy names a different queue on each device).
  struct CopyUse {
    int device;
    cudaStream_t stream;
    cudaEvent_t event;
  };
  std::unordered_map<void*, std::vector<CopyUse>> uses_;
  std::vector<Pending> pending_;
  std::unordered_map<void*, size_t> pending_size_;
  MemoryStats stats_;
};

PinnedAllocator& pinned() {
  static auto* a = new PinnedAllocator();  // never destroyed, as the device allocators
  return *a;
}

}  // namespace

Allocator& allocator(int device) {
  int index = device_index(Device(Device::Kind::CUDA, device), "cuda allocator");
  return *device_allocators()[static_cast<size_t>(index)];
}

void record_stream(int device, void* ptr, void* stream) {
  int index = device_index(Device(Device::Kind::CUDA, device), "record_stream");
  device_allocators()[static_cast<size_t>(index)]->record_stream(
      ptr, stream == nullptr ? cudaStreamLegacy : static_cast<cudaStream_t>(stream));
}

void begin_graph_pool(int device, uint64_t pool, void* stream) {
  int index = device_index(Device(Device::Kind::CUDA, device), "cuda graph");
  device_allocators()[static_cast<size_t>(index)]->begin_pool(pool, static_cast<cudaStream_t>(stream));
}
void end_graph_pool(int device, void* stream) {
  int index = device_index(Device(Device::Kind::CUDA, device), "cuda graph");
  device_allocators()[static_cast<size_t>(index)]->end_pool(static_cast<cudaStream_t>(stream));
}
void release_graph_pool(int device, uint64_t pool) {
  if (device < 0 || device >= device_count()) return;
  device_allocators()[static_cast<size_t>(device)]->release_pool(pool);
}

Allocator& pinned_allocator() {
  EMBER_CHECK(device_count() > 0, DeviceError, "[pin_memory] pinned memory needs a CUDA device, and none is available");
  return pinned();
}
bool is_pinned(const void* host_ptr) { return device_count() > 0 && pinned().owns(host_ptr); }
void record_host_use(void* host_ptr, int device, cudaStream_t stream) { pinned().record_use(host_ptr, device, stream); }

}  // namespace ember::kernels::cuda
