// Deferred device errors' slots (kernels/deferred_error.hpp): one record per device in mapped pinned
// host memory, so a kernel writes it directly and the host reads it after a sync without a copy.
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "kernels/cuda/runtime.hpp"
#include "kernels/deferred_error.hpp"

namespace ember::kernels::cuda {
namespace {
std::mutex g_mutex;
std::vector<DeferredError*> g_slots;    // host pointers by device; null until first used
std::vector<void*> g_device_ptrs;       // the same slots as the devices address them
std::map<int, std::string> g_poisoned;  // by device, under g_mutex
}  // namespace

void poison_device(int device, const std::string& why) {
  std::lock_guard lock(g_mutex);
  g_poisoned.emplace(device, why);
}

void clear_poisoned_devices() {
  std::lock_guard lock(g_mutex);
  g_poisoned.clear();
}

DeferredError* deferred_error_slot(int device) {
  std::lock_guard lock(g_mutex);
  if (static_cast<int>(g_slots.size()) <= device) {
    g_slots.resize(device + 1, nullptr);
    g_device_ptrs.resize(device + 1, nullptr);
  }
  if (g_slots[device] == nullptr) {
    DeviceGuard g(device);
    // The first use may come inside a CUDA-graph capture: relaxed mode for the allocation.
    void* p = nullptr;
    void* on_device = nullptr;
    cudaError_t err = [&] {
      RelaxedCaptureGuard relaxed;
      cudaError_t e = cudaHostAlloc(&p, sizeof(DeferredError), cudaHostAllocMapped | cudaHostAllocPortable);
      if (e == cudaSuccess) e = cudaHostGetDevicePointer(&on_device, p, 0);
      if (e != cudaSuccess && p != nullptr) cudaFreeHost(p);
      return e;
    }();
    EMBER_CUDA_CHECK(err);
    g_slots[device] = new (p) DeferredError{};
    g_device_ptrs[device] = on_device;
  }
  return static_cast<DeferredError*>(g_device_ptrs[device]);
}

void check_deferred_errors(int device) {
  DeferredError found;
  {
    std::lock_guard lock(g_mutex);
    for (const auto& [d, why] : g_poisoned)  // empty unless a collective was aborted
      if (device < 0 || d == device)
        throw DistError(detail::cat_str("[cuda] the results on cuda:", d,
                                        " are not trusted: a collective on it was aborted, and the work that "
                                        "waited for it went on with partial data (",
                                        why, ")"));
    for (int d = 0; d < static_cast<int>(g_slots.size()); ++d) {
      if ((device >= 0 && d != device) || g_slots[d] == nullptr) continue;
      volatile DeferredError* s = g_slots[d];
      if (s->code == 0) continue;
      found.code = s->code;
      for (int i = 0; i < 4; ++i) found.args[i] = s->args[i];
      s->code = 0;  // raised once
      break;
    }
  }
  if (found.code != 0) raise_deferred_error(found);
}

}  // namespace ember::kernels::cuda
