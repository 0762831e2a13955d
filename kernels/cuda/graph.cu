// CUDA graph capture, instantiation and launch behind opaque handles (core/cuda_graph.hpp holds the
// logic). Capture is thread-local (cudaStreamCaptureModeThreadLocal): a forbidden call on the
// capturing thread (a synchronisation, a blocking copy) fails the capture, while other threads (loader
// workers pinning memory, loggers) go on unaffected, which global mode would not allow. The caching
// allocator switches to relaxed mode only around its own cudaMalloc.
#include "core/error.hpp"
#include "kernels/cuda/runtime.hpp"

namespace ember::kernels::cuda {
namespace {
struct GraphHandle {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
};
cudaStream_t as_stream(void* s) { return s == nullptr ? cudaStreamLegacy : static_cast<cudaStream_t>(s); }
}  // namespace

void graph_capture_begin(int device, void* stream) {
  EMBER_CHECK(stream != nullptr, DeviceError,
              "[cuda graph] capture cannot use the legacy default stream: capture under a StreamGuard of a new Stream");
  DeviceGuard g(device);
  EMBER_CUDA_CHECK(cudaStreamBeginCapture(static_cast<cudaStream_t>(stream), cudaStreamCaptureModeThreadLocal));
}

void* graph_capture_end(int device, void* stream) {
  DeviceGuard g(device);
  cudaGraph_t graph = nullptr;
  cudaError_t err = cudaStreamEndCapture(static_cast<cudaStream_t>(stream), &graph);
  if (err == cudaErrorStreamCaptureInvalidated || err == cudaErrorStreamCaptureUnsupported) {
    cudaGetLastError();
    if (graph) cudaGraphDestroy(graph);
    throw Error(detail::cat_str("[cuda graph] the capture was invalidated (", cudaGetErrorName(err),
                                "): an operation that cannot be captured ran on the capturing thread (a "
                                "synchronisation, a blocking copy, a legacy-stream launch); EMBER_CUDA_SYNC must be "
                                "off while capturing"));
  }
  if (err != cudaSuccess && graph) cudaGraphDestroy(graph);
  EMBER_CUDA_CHECK(err);
  cudaGraphExec_t exec = nullptr;
  err = cudaGraphInstantiate(&exec, graph, 0);
  // Uploading now keeps the first replay's cost out of timed steps.
  if (err == cudaSuccess) err = cudaGraphUpload(exec, static_cast<cudaStream_t>(stream));
  if (err != cudaSuccess) {
    if (exec) cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    EMBER_CUDA_CHECK(err);
  }
  return new GraphHandle{graph, exec};
}

void graph_capture_abort(int device, void* stream) {
  if (stream == nullptr) return;
  DeviceGuard g(device, std::nothrow);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(static_cast<cudaStream_t>(stream), &status) != cudaSuccess) {
    cudaGetLastError();
    return;
  }
  if (status == cudaStreamCaptureStatusNone) return;
  cudaGraph_t graph = nullptr;
  cudaStreamEndCapture(static_cast<cudaStream_t>(stream), &graph);  // no throw: called while unwinding
  cudaGetLastError();
  if (graph) cudaGraphDestroy(graph);
}

void graph_launch(int device, void* exec, void* stream) {
  DeviceGuard g(device);
  EMBER_CUDA_CHECK(cudaGraphLaunch(static_cast<GraphHandle*>(exec)->exec, as_stream(stream)));
  EMBER_CUDA_CHECK(cudaGetLastError());
}

void graph_destroy(int device, void* exec) {
  if (exec == nullptr) return;
  auto* h = static_cast<GraphHandle*>(exec);
  DeviceGuard g(device);
  if (h->exec) cudaGraphExecDestroy(h->exec);
  if (h->graph) cudaGraphDestroy(h->graph);
  delete h;
}

bool stream_is_capturing(int device, void* stream) {
  DeviceGuard g(device);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  EMBER_CUDA_CHECK(cudaStreamIsCapturing(as_stream(stream), &status));
  return status != cudaStreamCaptureStatusNone;
}

void* device_malloc_raw(int device, size_t nbytes) {
  DeviceGuard g(device);
  void* p = nullptr;
  EMBER_CUDA_CHECK(cudaMalloc(&p, nbytes));
  return p;
}
void device_free_raw(int device, void* p) {
  if (p == nullptr) return;
  DeviceGuard g(device);
  cudaFree(p);  // no throw: called from destructors
}
void* pinned_malloc_raw(size_t nbytes) {
  const DeviceGuard guard = working_device_guard();  // in the working device's context, as all pinned memory
  void* p = nullptr;
  EMBER_CUDA_CHECK(cudaHostAlloc(&p, nbytes, cudaHostAllocPortable));
  return p;
}
void pinned_free_raw(void* p) {
  if (p != nullptr) cudaFreeHost(p);
}
void copy_to_device_async(int device, void* dst, const void* host_src, size_t nbytes, void* stream) {
  if (nbytes == 0) return;
  DeviceGuard g(device);
  EMBER_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, nbytes, cudaMemcpyHostToDevice, as_stream(stream)));
}

}  // namespace ember::kernels::cuda
