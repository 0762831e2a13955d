// The CUDA backend's host-side entry points that need no CUDA headers: device discovery, the caching
// allocator per device, byte copies across devices. A CPU-only build's (cuda_stubs.cpp): "built without CUDA support".
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/allocator.hpp"
#include "core/device.hpp"

namespace ember::kernels::cuda {

// Usable CUDA devices; 0 without CUDA support, driver or device (any runtime error counts as none).
int device_count();
bool is_available();
// Makes `device` the calling thread's current device (DeviceError when it is not there).
void set_device(int device);
// The calling thread's current device (0 without CUDA).
int current_device();
// Waits for all work queued on `device` (every device when -1).
void synchronize(int device = -1);
// The caching allocator of one device; DeviceError when the index is out of range.
Allocator& allocator(int device);
// Copies nbytes between buffers on any two devices (CPU or CUDA). Copies to or from the host return
// when done; device-to-device copies are ordered before all later work on the devices.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);
// The same copy queued on the current stream of the CUDA side without waiting for it: the host side
// must be pinned memory (see pinned_allocator), which stays reserved until the copy is done.
void copy_bytes_async(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);

// Page-locked host memory (cudaHostAlloc), cached; a block freed while an async copy still reads or
// writes it is reused only after that copy finished.
Allocator& pinned_allocator();
bool is_pinned(const void* host_ptr);

// Streams and events behind opaque handles (cudaStream_t / cudaEvent_t), for core/stream.hpp. A null
// stream handle is the device's legacy default stream.
void* stream_create(int device, int priority);
void stream_destroy(int device, void* stream);
void* current_stream_handle(int device);  // this thread's current stream of the device
void set_current_stream_handle(int device, void* stream);
void stream_synchronize(int device, void* stream);
bool stream_query(int device, void* stream);
void stream_wait_event(int device, void* stream, void* event);
void* event_create(int device, bool timing);
void event_destroy(int device, void* event);
void event_record(int device, void* event, void* stream);
void event_synchronize(int device, void* event);
bool event_query(int device, void* event);
float event_elapsed_ms(int device, void* start, void* end);
// Marks the device block at ptr (from the caching allocator) as used by work on `stream`: once freed,
// it is not handed out again before that work is done.
void record_stream(int device, void* ptr, void* stream);

// CUDA graphs (kernels/cuda/graph.cu, for core/cuda_graph.hpp). Capture runs in thread-local mode on a
// stream that is not the legacy default one; graph_capture_end instantiates and returns the executable.
void graph_capture_begin(int device, void* stream);
void* graph_capture_end(int device, void* stream);
// Ends a capture that failed (an exception inside it) and drops what was captured.
void graph_capture_abort(int device, void* stream);
void graph_launch(int device, void* exec, void* stream);
void graph_destroy(int device, void* exec);
bool stream_is_capturing(int device, void* stream);
// Raw device and pinned memory outside the caching allocators (a graph's slot table), and the async
// host-to-device copy of it, ordered on `stream`.
void* device_malloc_raw(int device, size_t nbytes);
void device_free_raw(int device, void* p);
void* pinned_malloc_raw(size_t nbytes);
void pinned_free_raw(void* p);
void copy_to_device_async(int device, void* dst, const void* host_src, size_t nbytes, void* stream);
// The caching allocator's graph pools: while pool `pool` is open on `stream`, allocations on that stream
// come from a pool owned by the graph (no cudaFree, no blocks freed by eager work); release_graph_pool
// gives it back once the graph is gone (its memory returns when its last block is freed).
void begin_graph_pool(int device, uint64_t pool, void* stream);
void end_graph_pool(int device, void* stream);
void release_graph_pool(int device, uint64_t pool);

}  // namespace ember::kernels::cuda
