// CUDA runtime glue: error reporting, device discovery (no driver means no devices, not an error),
// device guards, each thread's current stream, streams and events, synchronisation and byte copies
// between any two devices.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/graph_capture.hpp"
#include "core/host_sync.hpp"
#include "kernels/cuda/runtime.hpp"
#include "kernels/deferred_error.hpp"

namespace ember::kernels::cuda {

namespace {
// EMBER_CUDA_SYNC=1: every launch check also waits for the kernel, so an error names the launch site.
bool sync_after_launch() {
  static const bool on = [] {
    const char* v = std::getenv("EMBER_CUDA_SYNC");
    return v != nullptr && std::strcmp(v, "0") != 0 && *v != '\0';
  }();
  return on;
}
// Whether this thread's current stream captures a CUDA graph (a device sync would invalidate it).
bool current_stream_capturing() {
  int device = 0;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaGetDevice(&device) != cudaSuccess || cudaStreamIsCapturing(current_stream(device), &status) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return status != cudaStreamCaptureStatusNone;
}
}  // namespace

void check_error(cudaError_t err, const char* expr, const char* file, int line) {
  if (err == cudaSuccess && sync_after_launch() && std::strcmp(expr, "cudaGetLastError()") == 0 &&
      !current_stream_capturing()) {
    err = cudaDeviceSynchronize();
    if (err != cudaSuccess) {
      cudaGetLastError();
      throw Error(detail::cat_str("[cuda] the kernel launched at ", file, ":", line, " failed (EMBER_CUDA_SYNC=1): ",
                                  cudaGetErrorName(err), ": ", cudaGetErrorString(err)));
    }
  }
  if (err == cudaSuccess) return;
  cudaGetLastError();  // clear a non-sticky error so later calls start clean
  throw Error(detail::cat_str("[cuda] ", expr, " failed at ", file, ":", line, ": ", cudaGetErrorName(err), ": ",
                              cudaGetErrorString(err)));
}

int device_count() {
  static int count = [] {
    int n = 0;
    // Without a driver this returns an error ("driver version is insufficient"): that means no devices.
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

bool is_available() { return device_count() > 0; }

int device_index(Device d, const char* op) {
  EMBER_CHECK(d.is_cuda(), DeviceError, "[", op, "] expected a CUDA device, got ", d);
  EMBER_CHECK(d.index >= 0 && d.index < device_count(), DeviceError, "[", op, "] device ", d,
              " is not available (this machine has ", device_count(), " CUDA devices)");
  return d.index;
}

void check_operand(const Tensor& t, std::optional<DType> dtype) {
  if (!t.defined()) return;
  EMBER_CHECK(t.device().is_cuda(), DeviceError, "[cuda] a CUDA kernel was handed a tensor on ", t.device(), ": ",
              describe(t));
  EMBER_CHECK(!dtype || t.dtype() == *dtype, DTypeError, "[cuda] a CUDA kernel expected a ", *dtype, " tensor, got ",
              describe(t));
}

namespace {
// Whether this thread's current device is one it chose (set_device, or its first guard's).
thread_local bool tl_device_chosen = false;
}  // namespace

void set_device(int device) {
  device_index(Device(Device::Kind::CUDA, device), "set_device");
  EMBER_CUDA_CHECK(cudaSetDevice(device));
  tl_device_chosen = true;
  note_working_device(device);
}

int current_device() {
  int d = 0;
  if (cudaGetDevice(&d) != cudaSuccess) {  // no driver: cuda:0, which the caller's checks then refuse
    cudaGetLastError();
    return 0;
  }
  return d;
}

namespace {
std::atomic<int> g_working_device{-1};
}  // namespace

void note_working_device(int device) {
  int none = -1;
  g_working_device.compare_exchange_strong(none, device, std::memory_order_relaxed);
}

DeviceGuard working_device_guard() {
  const int d = g_working_device.load(std::memory_order_relaxed);
  if (d >= 0) return DeviceGuard(d);
  int cur = 0;
  EMBER_CUDA_CHECK(cudaGetDevice(&cur));
  return DeviceGuard(cur);
}

DeviceGuard::DeviceGuard(int device) : cur_(device) {
  EMBER_CUDA_CHECK(cudaGetDevice(&prev_));
  if (prev_ != cur_) EMBER_CUDA_CHECK(cudaSetDevice(cur_));
  keep_first_device();
}
DeviceGuard::DeviceGuard(int device, std::nothrow_t) noexcept : cur_(device) {
  if (cudaGetDevice(&prev_) != cudaSuccess || (prev_ != cur_ && cudaSetDevice(cur_) != cudaSuccess)) {
    cudaGetLastError();
    prev_ = cur_;  // nothing to put back
    return;
  }
  keep_first_device();
}
// A thread still on the default device 0 keeps its first guard's device: putting 0 back would open a
// context on GPU 0 (cudaSetDevice initialises one since CUDA 12) in a process that works elsewhere, from
// every loader thread and every DDP rank.
void DeviceGuard::keep_first_device() noexcept {
  if (!tl_device_chosen) {
    tl_device_chosen = true;
    if (prev_ == 0) prev_ = cur_;
  }
}
DeviceGuard::~DeviceGuard() {
  if (prev_ != cur_) cudaSetDevice(prev_);
}

RelaxedCaptureGuard::RelaxedCaptureGuard() { EMBER_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&prev_)); }
RelaxedCaptureGuard::~RelaxedCaptureGuard() { cudaThreadExchangeStreamCaptureMode(&prev_); }

namespace {
constexpr int kMaxDevices = 64;
// nullptr: the legacy default stream.
thread_local cudaStream_t tl_current[kMaxDevices] = {};
cudaStream_t as_stream(void* s) { return s == nullptr ? cudaStreamLegacy : static_cast<cudaStream_t>(s); }
}  // namespace

cudaStream_t current_stream(int device) {
  cudaStream_t s = device >= 0 && device < kMaxDevices ? tl_current[device] : nullptr;
  return s == nullptr ? cudaStreamLegacy : s;
}
void* current_stream_handle(int device) {
  device_index(Device(Device::Kind::CUDA, device), "Stream");
  return tl_current[device];
}
void set_current_stream_handle(int device, void* stream) {
  device_index(Device(Device::Kind::CUDA, device), "StreamGuard");
  EMBER_CHECK(device < kMaxDevices, DeviceError, "[StreamGuard] device index ", device, " too large");
  tl_current[device] = static_cast<cudaStream_t>(stream);
}

// Streams are recycled, never destroyed (as PyTorch's stream pool): the caching allocator keys free blocks
// and records events by stream handle, so a handle must stay valid, and mean the same queue, for as long as
// blocks or events may name it. A recycled stream keeps its queue order, so reuse is safe.
namespace {
struct SpareStreams {
  std::mutex mu;
  std::map<std::pair<int, int>, std::vector<cudaStream_t>> free;  // by (device, priority)
};
SpareStreams& spare_streams() {  // never destroyed: a static Stream may be dropped during exit
  static auto* s = new SpareStreams;
  return *s;
}
}  // namespace

void* stream_create(int device, int priority) {
  DeviceGuard g(device_index(Device(Device::Kind::CUDA, device), "Stream"));
  int least = 0, greatest = 0;  // CUDA clamps a priority to the device's range: so does the spare list's key
  EMBER_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  priority = std::clamp(priority, greatest, least);
  {
    SpareStreams& pool = spare_streams();
    std::lock_guard lock(pool.mu);
    auto& spare = pool.free[{device, priority}];
    if (!spare.empty()) {
      cudaStream_t s = spare.back();
      spare.pop_back();
      return s;
    }
  }
  cudaStream_t s = nullptr;
  // Non-blocking: no implicit ordering against the legacy default stream; events order the work.
  EMBER_CUDA_CHECK(cudaStreamCreateWithPriority(&s, cudaStreamNonBlocking, priority));
  return s;
}
void stream_destroy(int device, void* stream) {  // no throw: called from destructors
  if (stream == nullptr) return;
  int priority = 0;
  DeviceGuard g(device, std::nothrow);
  if (cudaStreamGetPriority(static_cast<cudaStream_t>(stream), &priority) != cudaSuccess) {
    cudaGetLastError();
    return;
  }
  try {
    SpareStreams& pool = spare_streams();
    std::lock_guard lock(pool.mu);
    pool.free[{device, priority}].push_back(static_cast<cudaStream_t>(stream));
  } catch (...) {  // out of memory for the list: the stream stays allocated, unlisted
  }
}
void stream_synchronize(int device, void* stream) {
  graph::check_host_read(device, "Stream::synchronize()");
  DeviceGuard g(device);
  EMBER_CUDA_CHECK(cudaStreamSynchronize(as_stream(stream)));
  check_deferred_errors(device);  // kernels' errors found since the last sync (deferred_error.hpp)
}
bool stream_query(int device, void* stream) {
  graph::check_host_read(device, "Stream::query()");
  DeviceGuard g(device);
  cudaError_t e = cudaStreamQuery(as_stream(stream));
  if (e == cudaErrorNotReady) {
    cudaGetLastError();
    return false;
  }
  EMBER_CUDA_CHECK(e);
  return true;
}
void stream_wait_event(int device, void* stream, void* event) {
  DeviceGuard g(device);
  EMBER_CUDA_CHECK(cudaStreamWaitEvent(as_stream(stream), static_cast<cudaEvent_t>(event), 0));
}
void* event_create(int device, bool timing) {
  DeviceGuard g(device_index(Device(Device::Kind::CUDA, device), "Event"));
  cudaEvent_t e = nullptr;
  EMBER_CUDA_CHECK(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming));
  return e;
}
void event_destroy(int device, void* event) {  // no throw: called from destructors
  if (event == nullptr) return;
  DeviceGuard g(device, std::nothrow);
  cudaEventDestroy(static_cast<cudaEvent_t>(event));
}
void event_record(int device, void* event, void* stream) {
  DeviceGuard g(device);
  EMBER_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(event), as_stream(stream)));
}
void event_synchronize(int device, void* event) {
  graph::check_host_read(device, "Event::synchronize()");
  DeviceGuard g(device);
  EMBER_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(event)));
  check_deferred_errors(device);  // this device's: another's belong to its own next sync
}
bool event_done(cudaEvent_t event) {
  const cudaError_t e = cudaEventQuery(event);
  if (e == cudaErrorNotReady) {
    cudaGetLastError();
    return false;
  }
  EMBER_CUDA_CHECK(e);
  return true;
}
bool event_query(int device, void* event) {
  graph::check_host_read(device, "Event::query()");
  DeviceGuard g(device);
  return event_done(static_cast<cudaEvent_t>(event));
}
float event_elapsed_ms(int device, void* start, void* end) {
  DeviceGuard g(device);
  float ms = 0;
  EMBER_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)));
  return ms;
}

void synchronize(int device) {
  graph::check_host_read(device, "synchronize()");
  if (device >= 0) {
    DeviceGuard g(device_index(Device(Device::Kind::CUDA, device), "synchronize"));
    EMBER_CUDA_CHECK(cudaDeviceSynchronize());
    check_deferred_errors(device);
    return;
  }
  for (int d = 0; d < device_count(); ++d) {
    DeviceGuard g(d);
    EMBER_CUDA_CHECK(cudaDeviceSynchronize());
  }
  check_deferred_errors();
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
  // Run on a CUDA side's device; unified addressing lets cudaMemcpyDefault tell the directions apart,
  // and a peer copy between two GPUs goes through cudaMemcpyPeer.
  if (dst_device.is_cuda() && src_device.is_cuda() && dst_device.index != src_device.index) {
    device_index(dst_device, "to");
    device_index(src_device, "to");
    {  // the source's producers may sit on a non-blocking stream, which the peer copy is not ordered after
      DeviceGuard g(src_device.index);
      EMBER_CUDA_CHECK(cudaStreamSynchronize(current_stream(src_device.index)));
      EMBER_CUDA_CHECK(cudaMemcpyPeer(dst, dst_device.index, src, src_device.index, nbytes));
    }
    DeviceGuard g(dst_device.index);
    EMBER_CUDA_CHECK(cudaDeviceSynchronize());
    return;
  }
  // On the current stream (which may not be the legacy one), then waited for when the host is involved.
  int dev = dst_device.is_cuda() ? device_index(dst_device, "to") : device_index(src_device, "to");
  // Every blocking read of device memory passes here (item(), to_vector(), to(kCPU), ops that read a
  // size or a loss to the host): during a capture there is nothing to read yet.
  if (dst_device.is_cpu())
    graph::check_host_read(
        dev, "a copy from the device to the host (item(), to_vector(), to(kCPU), or an op reading a result)");
  else if (src_device.is_cpu())
    EMBER_CHECK(!graph::is_capturing(dev), Error,
                "[cuda graph] a blocking copy from the host to the device (a tensor made on the host and moved, "
                "to(device) of CPU data) runs while a CUDA graph captures: the graph would not repeat it. Copy "
                "the data into the graph's static input tensors before replay()");
  DeviceGuard g(dev);
  cudaMemcpyKind kind = dst_device.is_cpu()   ? cudaMemcpyDeviceToHost
                        : src_device.is_cpu() ? cudaMemcpyHostToDevice
                                              : cudaMemcpyDeviceToDevice;
  cudaStream_t stream = current_stream(dev);
  EMBER_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, kind, stream));
  if (kind != cudaMemcpyDeviceToDevice) EMBER_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (kind == cudaMemcpyDeviceToHost) {  // a host read (every one passes here): counted, and raises what kernels found
    ember::detail::count_host_read();
    check_deferred_errors(dev);
  }
}

void copy_bytes_async(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  EMBER_CHECK(dst_device.is_cuda() != src_device.is_cuda(), DeviceError,
              "[to] a non-blocking copy goes between the host and a CUDA device, not ", src_device, " -> ", dst_device);
  const void* host = dst_device.is_cpu() ? dst : src;
  EMBER_CHECK(is_pinned(host), DeviceError, "[to] a non-blocking copy needs pinned host memory (Tensor::pin_memory)");
  int dev = dst_device.is_cuda() ? device_index(dst_device, "to") : device_index(src_device, "to");
  EMBER_CHECK(!graph::is_capturing(dev), Error,
              "[cuda graph] a non-blocking copy between pinned host memory and the device runs while a CUDA graph "
              "captures: each replay would copy whatever the host buffer then holds. Copy the data into the "
              "graph's static input tensors before replay()");
  DeviceGuard g(dev);
  cudaStream_t stream = current_stream(dev);
  EMBER_CUDA_CHECK(
      cudaMemcpyAsync(dst, src, nbytes, dst_device.is_cpu() ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice, stream));
  try {
    record_host_use(const_cast<void*>(host), dev, stream);
  } catch (...) {  // unrecorded, the host block could be reused while the copy still runs: wait for it
    cudaStreamSynchronize(stream);
    throw;
  }
}

}  // namespace ember::kernels::cuda
