// CUDA runtime helpers shared by the .cu files: error checking with file and line, the stream each
// device's work goes to, a device guard, operand addresses, and launch geometry.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <new>
#include <optional>
#include <type_traits>

#include "core/device.hpp"
#include "core/tensor.hpp"
#include "kernels/cuda_device.hpp"

// Throws ember::Error naming the failed call, file, line and CUDA's message.
#define EMBER_CUDA_CHECK(expr) ::ember::kernels::cuda::check_error((expr), #expr, __FILE__, __LINE__)

namespace ember::kernels::cuda {

void check_error(cudaError_t err, const char* expr, const char* file, int line);

// The stream this thread's work on `device` goes to: the legacy default stream unless a StreamGuard
// (core/stream.hpp) made another current. Kernels, library calls and copies all take it.
cudaStream_t current_stream(int device);

// The pinned host block at host_ptr is in use by queued work on `stream` of `device` (allocator.cu).
void record_host_use(void* host_ptr, int device, cudaStream_t stream);

// Checks that d is a CUDA device of this machine and returns its index.
int device_index(Device d, const char* op);

// Makes `device` current for the guard's lifetime (kernels launch on the current device).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  // For destructors and unwinding: a failure to switch (after a sticky device fault) is ignored.
  DeviceGuard(int device, std::nothrow_t) noexcept;
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  void keep_first_device() noexcept;
  int prev_ = -1;
  int cur_ = -1;
};

// The process's working device: the first set_device chose or, before one, the first given device memory.
// Pinned host memory is allocated in its context, so no thread opens a context on GPU 0 for it.
void note_working_device(int device);
// Makes the working device current (the calling thread's own device before the process has one).
DeviceGuard working_device_guard();

// Whether the work an event recorded is done. cudaErrorNotReady is cleared from this thread's last-error
// state (cudaGetLastError after the next kernel launch would report it); any other error throws.
bool event_done(cudaEvent_t event);

// Relaxed stream-capture mode on this thread for the guard's lifetime. Resource set-up that is not stream
// work (cudaMalloc, cudaHostAlloc, a library handle's creation) may then run while this thread captures a
// CUDA graph: the thread-local mode of Ember's captures rejects it as "potentially unsafe" and invalidates
// the capture otherwise.
class RelaxedCaptureGuard {
 public:
  RelaxedCaptureGuard();
  ~RelaxedCaptureGuard();
  RelaxedCaptureGuard(const RelaxedCaptureGuard&) = delete;
  RelaxedCaptureGuard& operator=(const RelaxedCaptureGuard&) = delete;

 private:
  cudaStreamCaptureMode prev_ = cudaStreamCaptureModeRelaxed;
};

// Raises a DeviceError unless t lives on a CUDA device, and a DTypeError unless its dtype is `dtype`
// (when given). See dptr.
void check_operand(const Tensor& t, std::optional<DType> dtype);

// The device address of t's first element as a T*, null for an undefined tensor. Host code hands every
// tensor to a kernel or library call through this: a host tensor would give the device a host address
// (a fault, or a silent wrong read), so it raises instead. When T is an element type (float, int64_t,
// half ...) t's dtype must be T's; byte and workspace views (char, unsigned long long, CUDA's own types)
// are only checked for their device.
template <class T>
T* dptr(const Tensor& t) {
  using E = std::remove_const_t<T>;
  constexpr bool element = contains_v<E, TypeList<float, double, half, bfloat16, int32_t, int64_t, uint8_t, bool>>;
  if constexpr (element)
    check_operand(t, dtype_of<E>());
  else
    check_operand(t, std::nullopt);
  return t.defined() ? static_cast<T*>(t.raw_data()) : nullptr;
}

inline constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t work, int64_t per_block) {
  int64_t b = (work + per_block - 1) / per_block;
  constexpr int64_t kMaxBlocks = int64_t{1} << 30;  // grid-stride loops cover the rest
  return static_cast<unsigned>(b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b));
}

}  // namespace ember::kernels::cuda
