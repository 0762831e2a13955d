// The CUDA CPU emulator (tools/cuda_emu): launches (checked, then run by fibers.cpp's scheduler) and the
// part of the CUDA runtime API the backend calls, on host memory. Work runs when it is queued (every stream is
// always idle), except while a stream captures a CUDA graph: then kernels and copies are recorded and run
// at each cudaGraphLaunch, and the calls a real capture refuses (cudaMalloc in thread-local mode, a
// synchronisation of the capturing stream) fail and invalidate it. Launch configurations are checked
// against an H100's limits; a kernel that deadlocks at a barrier, or shuffles with a lane that exited,
// fails its launch with a message on stderr.
#include "emu.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "fibers.hpp"

struct CUgraph_st {
  std::vector<std::function<void()>> nodes;
  bool invalidated = false;
};
// A stream joins a capture by waiting on an event recorded in it, and rejoins the origin stream when the
// origin waits on an event recorded after its last captured work.
struct CUstream_st {
  int device = 0;
  int priority = 0;
  CUgraph_st* capture = nullptr;  // the graph being captured into, if any
  bool origin = false;            // the stream cudaStreamBeginCapture named
  bool rejoined = true;           // (a joined stream) no captured work since the origin last waited on it
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point when{};
  bool recorded = false;
  bool timing = true;
  CUgraph_st* capture = nullptr;  // recorded in this capture (while it is under way: see live_capture)
  CUstream_st* stream = nullptr;  // by this stream
};
struct CUgraphExec_st {
  std::vector<std::function<void()>> nodes;
};

namespace emu {
namespace {

// ---- Errors ----

thread_local cudaError_t t_last_error = cudaSuccess;

cudaError_t fail(cudaError_t e) {
  t_last_error = e;
  return e;
}
cudaError_t report(cudaError_t e, const std::string& what) {
  std::fprintf(stderr, "[cuda emulator] %s\n", what.c_str());
  return fail(e);
}

// ---- Devices and memory ----

int device_count() {
  static const int n = [] {
    const char* s = std::getenv("EMBER_CUDA_EMU_DEVICES");
    return s ? std::max(0, std::atoi(s)) : 1;
  }();
  return n;
}
thread_local int t_device = 0;

struct Allocation {
  size_t size;
  int device;  // -1: pinned host memory
};
std::mutex g_mem_mu;
std::map<uintptr_t, Allocation> g_allocs;
size_t g_device_bytes = 0;
constexpr size_t kDeviceMemory = size_t{80} << 30;

void* allocate(size_t n, int device) {
  void* p = std::aligned_alloc(256, (std::max<size_t>(n, 1) + 255) / 256 * 256);
  if (p == nullptr) return nullptr;
  std::lock_guard lock(g_mem_mu);
  g_allocs[reinterpret_cast<uintptr_t>(p)] = {n, device};
  if (device >= 0) g_device_bytes += n;
  return p;
}
// The allocation holding [p, p + n), or nullptr.
const Allocation* find_allocation(const void* p, size_t n) {
  std::lock_guard lock(g_mem_mu);
  const auto a = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocs.upper_bound(a);
  if (it == g_allocs.begin()) return nullptr;
  --it;
  if (a + n > it->first + std::max<size_t>(it->second.size, 1)) return nullptr;
  return &it->second;
}
bool is_device(const void* p, size_t n) {
  const Allocation* a = find_allocation(p, n);
  return a != nullptr && a->device >= 0;
}

// ---- Streams and capture ----

CUstream_st g_legacy_stream;
std::mutex g_stream_mu;
std::set<cudaStream_t> g_streams;
thread_local cudaStreamCaptureMode t_capture_mode = cudaStreamCaptureModeGlobal;
thread_local int t_thread_local_captures = 0;  // captures this thread began in thread-local mode
int g_global_captures = 0;                     // captures in global mode (any thread)

CUstream_st* stream_of(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return &g_legacy_stream;
  return s;
}
bool valid_stream(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return true;
  std::lock_guard lock(g_stream_mu);
  return g_streams.count(s) > 0;
}
// Whether a call CUDA counts as "potentially unsafe" during a capture fails now: this thread is not in
// relaxed mode and a capture it could disturb is under way.
bool unsafe_call_refused() {
  if (t_capture_mode == cudaStreamCaptureModeRelaxed) return false;
  return t_thread_local_captures > 0 || g_global_captures > 0;
}
void invalidate_captures() {
  std::lock_guard lock(g_stream_mu);
  for (cudaStream_t s : g_streams)
    if (s->capture) s->capture->invalidated = true;
}
cudaError_t refuse_in_capture(const char* call) {
  invalidate_captures();
  return report(cudaErrorStreamCaptureUnsupported,
                std::string(call) + " during a stream capture (not in relaxed mode): the capture is invalidated");
}

// The captures under way (an event keeps the graph it was recorded in, which may have ended since).
std::set<const CUgraph_st*> g_live_captures;
CUgraph_st* live_capture(const CUevent_st* e) {
  std::lock_guard lock(g_stream_mu);
  return e->capture && g_live_captures.count(e->capture) ? e->capture : nullptr;
}

// Queues work on a stream: runs it now, or records it while the stream captures.
cudaError_t enqueue(cudaStream_t s, std::function<void()> work, const char* what) {
  if (!valid_stream(s)) return report(cudaErrorInvalidResourceHandle, std::string(what) + " on an unknown stream");
  CUstream_st* st = stream_of(s);
  if (st->capture) {
    if (st->capture->invalidated) return fail(cudaErrorStreamCaptureInvalidated);
    st->capture->nodes.push_back(std::move(work));
    st->rejoined = false;
    return cudaSuccess;
  }
  // (Work on the legacy stream while a non-blocking stream captures is allowed, and runs now.)
  work();
  return cudaSuccess;
}

size_t g_max_dynamic_smem = 48 << 10;  // raised by cudaFuncSetAttribute(MaxDynamicSharedMemorySize)

bool check_config(const LaunchConfig& c, const char* name) {
  const uint64_t threads = uint64_t{c.block.x} * c.block.y * c.block.z;
  std::string why;
  if (threads == 0 || c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0)
    why = "an empty grid or block";
  else if (threads > 1024 || c.block.x > 1024 || c.block.y > 1024 || c.block.z > 64)
    why = "more than 1024 threads in a block (or a block dim above its limit)";
  else if (c.grid.x > 2147483647u || c.grid.y > 65535 || c.grid.z > 65535)
    why = "a grid dim above its limit (x 2^31-1, y and z 65535)";
  else if (c.smem > 232448)
    why = "more than 227 KB of dynamic shared memory";
  else if (c.smem > g_max_dynamic_smem)
    why = "more than 48 KB of dynamic shared memory without cudaFuncSetAttribute(MaxDynamicSharedMemorySize)";
  if (why.empty()) return true;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "launch of %s with grid (%u, %u, %u), block (%u, %u, %u), %zu bytes of shared memory: %s", name,
                c.grid.x, c.grid.y, c.grid.z, c.block.x, c.block.y, c.block.z, c.smem, why.c_str());
  report(cudaErrorInvalidConfiguration, buf);
  return false;
}

void execute(const LaunchConfig& c, Body body, void* ctx, const std::string& name) {
  const std::string error = run_fibers(c, body, ctx);
  if (!error.empty()) report(cudaErrorLaunchFailure, "kernel " + name + error);
}

}  // namespace

void run_grid(const LaunchConfig& cfg, const char* name, Body body, void* ctx, void (*copy)(void*, void**),
              void (*destroy)(void*)) {
  if (!check_config(cfg, name)) return;
  if (!valid_stream(cfg.stream)) {
    report(cudaErrorInvalidResourceHandle, std::string("launch of ") + name + " on an unknown stream");
    return;
  }
  CUstream_st* st = stream_of(cfg.stream);
  if (st->capture) {
    if (st->capture->invalidated) return;
    st->rejoined = false;
    void* owned = nullptr;
    copy(ctx, &owned);
    std::shared_ptr<void> keep(owned, destroy);
    const std::string n = name;
    st->capture->nodes.push_back([cfg, body, keep, n] { execute(cfg, body, keep.get(), n); });
    return;
  }
  execute(cfg, body, ctx, name);
}

void set_max_dynamic_smem(size_t bytes) { g_max_dynamic_smem = std::max(g_max_dynamic_smem, bytes); }

}  // namespace emu

using namespace emu;

// ---- The runtime API ----

extern "C" {

cudaError_t cudaGetLastError(void) {
  const cudaError_t e = t_last_error;
  t_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return t_last_error; }

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle:
      return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady:
      return "cudaErrorNotReady";
    case cudaErrorLaunchFailure:
      return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported:
      return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated:
      return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureWrongThread:
      return "cudaErrorStreamCaptureWrongThread";
    case cudaErrorStreamCaptureUnjoined:
      return "cudaErrorStreamCaptureUnjoined";
    case cudaErrorIllegalState:
      return "cudaErrorIllegalState";
    case cudaErrorNoDevice:
      return "cudaErrorNoDevice";
    default:
      return "cudaErrorUnknown";
  }
}
const char* cudaGetErrorString(cudaError_t e) { return cudaGetErrorName(e); }

cudaError_t cudaGetDeviceCount(int* n) {
  *n = device_count();
  return device_count() > 0 ? cudaSuccess : fail(cudaErrorNoDevice);
}
cudaError_t cudaGetDevice(int* d) {
  if (device_count() == 0) return fail(cudaErrorNoDevice);
  *d = t_device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) {
  if (d < 0 || d >= device_count()) return fail(cudaErrorInvalidDevice);
  t_device = d;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device < 0 || device >= device_count()) return fail(cudaErrorInvalidDevice);
  switch (attr) {  // an H100 SXM's
    case cudaDevAttrMultiProcessorCount:
      *value = 132;
      break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = 232448;
      break;
    case cudaDevAttrMaxSharedMemoryPerBlock:
      *value = 49152;
      break;
    case cudaDevAttrMaxThreadsPerBlock:
      *value = 1024;
      break;
    case cudaDevAttrWarpSize:
      *value = 32;
      break;
    case cudaDevAttrComputeCapabilityMajor:
      *value = 9;
      break;
    case cudaDevAttrComputeCapabilityMinor:
      *value = 0;
      break;
    default:
      return report(cudaErrorInvalidValue,
                    "cudaDeviceGetAttribute: attribute " + std::to_string(attr) + " is not emulated");
  }
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) {
  if (t_capture_mode != cudaStreamCaptureModeRelaxed && (t_thread_local_captures > 0 || g_global_captures > 0))
    return refuse_in_capture("cudaDeviceSynchronize");
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free, size_t* total) {
  std::lock_guard lock(g_mem_mu);
  *total = kDeviceMemory;
  *free = kDeviceMemory - std::min(kDeviceMemory, g_device_bytes);
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t n) {
  if (unsafe_call_refused()) return refuse_in_capture("cudaMalloc");
  {
    std::lock_guard lock(g_mem_mu);
    if (g_device_bytes + n > kDeviceMemory) {
      *p = nullptr;
      return fail(cudaErrorMemoryAllocation);
    }
  }
  *p = allocate(n, t_device);
  return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaFree(void* p) {
  if (p == nullptr) return cudaSuccess;
  std::lock_guard lock(g_mem_mu);
  auto it = g_allocs.find(reinterpret_cast<uintptr_t>(p));
  if (it == g_allocs.end() || it->second.device < 0)
    return report(cudaErrorInvalidValue, "cudaFree of a pointer cudaMalloc did not return");
  g_device_bytes -= it->second.size;
  g_allocs.erase(it);
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaHostAlloc(void** p, size_t n, unsigned int) {
  if (unsafe_call_refused()) return refuse_in_capture("cudaHostAlloc");
  *p = allocate(n, -1);
  return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaFreeHost(void* p) {
  if (p == nullptr) return cudaSuccess;
  std::lock_guard lock(g_mem_mu);
  auto it = g_allocs.find(reinterpret_cast<uintptr_t>(p));
  if (it == g_allocs.end() || it->second.device >= 0)
    return report(cudaErrorInvalidValue, "cudaFreeHost of a pointer cudaHostAlloc did not return");
  g_allocs.erase(it);
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaHostGetDevicePointer(void** d, void* h, unsigned int) {
  const Allocation* a = find_allocation(h, 1);
  if (a == nullptr || a->device >= 0)
    return report(cudaErrorInvalidValue, "cudaHostGetDevicePointer of memory cudaHostAlloc did not return");
  *d = h;
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const bool dd = is_device(dst, n), sd = is_device(src, n);
  const char* bad = nullptr;
  switch (kind) {
    case cudaMemcpyHostToDevice:
      bad = (!dd || sd) ? "a host-to-device copy whose operands are not host and device" : nullptr;
      break;
    case cudaMemcpyDeviceToHost:
      bad = (dd || !sd) ? "a device-to-host copy whose operands are not device and host" : nullptr;
      break;
    case cudaMemcpyDeviceToDevice:
      bad = (!dd || !sd) ? "a device-to-device copy of memory outside the device's allocations" : nullptr;
      break;
    default:
      break;
  }
  if (bad) return report(cudaErrorInvalidValue, std::string("cudaMemcpyAsync: ") + bad);
  return enqueue(
      stream, [dst, src, n] { std::memmove(dst, src, n); }, "cudaMemcpyAsync");
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  if (unsafe_call_refused()) return refuse_in_capture("cudaMemcpy");
  return cudaMemcpyAsync(dst, src, n, kind, nullptr);
}
cudaError_t cudaMemcpyPeer(void* dst, int, const void* src, int, size_t n) {
  if (unsafe_call_refused()) return refuse_in_capture("cudaMemcpyPeer");
  if (n && (!is_device(dst, n) || !is_device(src, n)))
    return report(cudaErrorInvalidValue, "cudaMemcpyPeer of memory outside the devices' allocations");
  std::memmove(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t n, cudaStream_t stream) {
  if (n && !is_device(p, n))
    return report(cudaErrorInvalidValue, "cudaMemsetAsync of memory outside the device's allocations");
  return enqueue(
      stream, [p, value, n] { std::memset(p, value, n); }, "cudaMemsetAsync");
}

cudaError_t cudaDeviceGetStreamPriorityRange(int* least, int* greatest) {
  *least = 0;
  *greatest = -5;
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithPriority(cudaStream_t* s, unsigned int, int priority) {
  auto* st = new CUstream_st();
  st->device = t_device;
  st->priority = priority;
  std::lock_guard lock(g_stream_mu);
  g_streams.insert(st);
  *s = st;
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int flags) {
  return cudaStreamCreateWithPriority(s, flags, 0);
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithPriority(s, 0, 0); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  std::lock_guard lock(g_stream_mu);
  if (g_streams.erase(s) == 0) return fail(cudaErrorInvalidResourceHandle);
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamGetPriority(cudaStream_t s, int* priority) {
  if (!valid_stream(s)) return fail(cudaErrorInvalidResourceHandle);
  *priority = stream_of(s)->priority;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (!valid_stream(s)) return fail(cudaErrorInvalidResourceHandle);
  if (stream_of(s)->capture) return refuse_in_capture("cudaStreamSynchronize of a capturing stream");
  if (stream_of(s) == &g_legacy_stream && unsafe_call_refused())
    return refuse_in_capture("cudaStreamSynchronize of the legacy stream");
  return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t s) {
  if (!valid_stream(s)) return fail(cudaErrorInvalidResourceHandle);
  if (stream_of(s)->capture) return refuse_in_capture("cudaStreamQuery of a capturing stream");
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int) {
  if (!valid_stream(s) || e == nullptr) return fail(cudaErrorInvalidResourceHandle);
  CUstream_st* st = stream_of(s);
  CUgraph_st* g = live_capture(e);
  if (g == nullptr) return cudaSuccess;  // everything queued so far has run
  if (st->capture == nullptr) {
    if (st == &g_legacy_stream) return refuse_in_capture("the legacy stream waiting on a capture's event");
    st->capture = g;  // joins the capture
    st->origin = false;
    st->rejoined = true;
    st->mode = e->stream ? e->stream->mode : cudaStreamCaptureModeGlobal;
    return cudaSuccess;
  }
  if (st->capture != g) return refuse_in_capture("a wait across two captures");
  if (st->origin && e->stream != nullptr && e->stream != st) e->stream->rejoined = true;
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int flags) {
  *e = new CUevent_st();
  (*e)->timing = !(flags & cudaEventDisableTiming);
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!valid_stream(s) || e == nullptr) return fail(cudaErrorInvalidResourceHandle);
  e->recorded = true;
  e->capture = stream_of(s)->capture;
  e->stream = stream_of(s);
  e->when = std::chrono::steady_clock::now();
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t e) {
  if (live_capture(e)) return refuse_in_capture("cudaEventQuery of an event recorded in a capture");
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (live_capture(e)) return refuse_in_capture("cudaEventSynchronize of an event recorded in a capture");
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!start->recorded || !end->recorded) return fail(cudaErrorInvalidResourceHandle);
  if (!start->timing || !end->timing) return fail(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void*, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || value > 232448) return fail(cudaErrorInvalidValue);
    set_max_dynamic_smem(static_cast<size_t>(value));
  }
  return cudaSuccess;
}

cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode* mode) {
  std::swap(*mode, t_capture_mode);
  return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
  if (!valid_stream(s)) return fail(cudaErrorInvalidResourceHandle);
  CUstream_st* st = stream_of(s);
  if (st == &g_legacy_stream) return report(cudaErrorStreamCaptureUnsupported, "capture of the legacy stream");
  if (st->capture) return fail(cudaErrorIllegalState);
  st->capture = new CUgraph_st();
  {
    std::lock_guard lock(g_stream_mu);
    g_live_captures.insert(st->capture);
  }
  st->origin = true;
  st->mode = mode;
  if (mode == cudaStreamCaptureModeThreadLocal) ++t_thread_local_captures;
  if (mode == cudaStreamCaptureModeGlobal) ++g_global_captures;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph) {
  if (!valid_stream(s)) return fail(cudaErrorInvalidResourceHandle);
  CUstream_st* st = stream_of(s);
  if (!st->capture || !st->origin) return fail(cudaErrorIllegalState);
  if (st->mode == cudaStreamCaptureModeThreadLocal) --t_thread_local_captures;
  if (st->mode == cudaStreamCaptureModeGlobal) --g_global_captures;
  cudaGraph_t g = st->capture;
  st->capture = nullptr;
  st->origin = false;
  bool unjoined = false;
  {
    std::lock_guard lock(g_stream_mu);
    g_live_captures.erase(g);
    for (cudaStream_t other : g_streams)
      if (other->capture == g) {
        unjoined = unjoined || !other->rejoined;
        other->capture = nullptr;
      }
  }
  if (unjoined) {
    delete g;
    *graph = nullptr;
    return report(cudaErrorStreamCaptureUnjoined,
                  "cudaStreamEndCapture: a stream that joined the capture did not rejoin");
  }
  if (g->invalidated) {
    delete g;
    *graph = nullptr;
    return fail(cudaErrorStreamCaptureInvalidated);
  }
  *graph = g;
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status) {
  if (!valid_stream(s)) return fail(cudaErrorInvalidResourceHandle);
  const CUstream_st* st = stream_of(s);
  *status = !st->capture
                ? cudaStreamCaptureStatusNone
                : (st->capture->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive);
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  *exec = new CUgraphExec_st{graph->nodes};
  return cudaSuccess;
}
cudaError_t cudaGraphUpload(cudaGraphExec_t, cudaStream_t s) {
  return valid_stream(s) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
  auto nodes = exec->nodes;
  return enqueue(
      s,
      [nodes] {
        for (const auto& n : nodes) n();
      },
      "cudaGraphLaunch");
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  delete g;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
  delete e;
  return cudaSuccess;
}

}  // extern "C"
