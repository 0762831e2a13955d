// CUDA graphs, as torch.cuda.CUDAGraph: capture the work queued on a side stream once, then replay it
// with one launch. Small models spend most of a step launching kernels; a replay costs one launch.
// What a graph needs to stay correct across replays:
//  - memory: while it captures, allocations come from a pool private to the graph (the caching
//    allocator's graph pools), kept as long as the graph, so replays write the same addresses;
//  - host reads (item(), to_vector(), copies to the host, synchronize()) raise an Error while capturing:
//    nothing has run, there is no value to read;
//  - values that change every step live in the graph's slot table (core/graph_capture.hpp): the RNG's
//    Philox seed and offset (refreshed by advancing the generator as the eager op would) and the fused
//    optimizer's scalars (lr from schedulers, Adam's bias corrections), written by re-running the
//    optimizer's host code with rerun(). The host copies the table (pinned, async, stream-ordered) before
//    each launch.
// Inputs are static: copy each step's batch into the tensors the capture read (copy_), and read results
// from the tensors it produced.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "core/device.hpp"
#include "core/graph_capture.hpp"
#include "core/stream.hpp"

namespace ember {

class CudaGraph {
 public:
  explicit CudaGraph(Device device = current_cuda_device(), size_t slot_bytes = size_t{64} << 10);
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Begins capturing the work this thread queues on the device's current stream, which must not be
  // the legacy default stream (CudaGraphCapture makes a side stream current). Error when already captured.
  void capture_begin();
  // Ends the capture and instantiates the graph.
  void capture_end();
  // Drops a capture that failed (no throw; for unwinding).
  void capture_abort() noexcept;
  // Refreshes the slots, copies them to the device and launches the graph on the current stream.
  void replay();
  // Runs fn with the fused optimizer's launches routed to this graph's slots instead of the device: the
  // optimizer's host code (step counts, lr) runs, its kernels do not (the graph holds them). Errors when
  // fn launches more, fewer or other launches than the capture did.
  void rerun(const std::function<void()>& fn);
  // Frees the graph; its pool's memory returns once the tensors made during capture are freed. An error
  // a kernel of the last replays deferred is raised after everything is freed.
  void reset();

  bool captured() const { return exec_ != nullptr; }
  bool capturing() const { return capturing_; }
  Device device() const { return device_; }
  uint64_t pool_id() const { return pool_id_; }
  const graph::SlotTable& slots() const { return *slots_; }
  int64_t replays() const { return replays_; }

 private:
  Device device_;
  size_t slot_bytes_;
  uint64_t pool_id_;
  void* exec_ = nullptr;
  bool capturing_ = false;
  void* capture_stream_ = nullptr;
  std::unique_ptr<graph::SlotTable> slots_;
  graph::CaptureContext ctx_;
  void* device_slots_ = nullptr;
  void* staging_[2] = {nullptr, nullptr};  // pinned; a replay waits only for the copy two replays back
  std::shared_ptr<void> staging_event_[2];
  bool staging_used_[2] = {false, false};
  int64_t replays_ = 0;
};

// Captures into g for its lifetime, on a new side stream made current (it first waits for the work
// queued on the stream that was current). finish() ends the capture; the destructor finishes when
// finish() was not called, or aborts the capture when an exception is unwinding.
class CudaGraphCapture {
 public:
  explicit CudaGraphCapture(CudaGraph& g);
  ~CudaGraphCapture() noexcept(false);
  CudaGraphCapture(const CudaGraphCapture&) = delete;
  CudaGraphCapture& operator=(const CudaGraphCapture&) = delete;
  void finish();
  const Stream& stream() const { return stream_; }

 private:
  CudaGraph& graph_;
  Stream prev_;
  Stream stream_;
  std::optional<StreamGuard> guard_;
  int exceptions_;
  bool done_ = false;
};

// Whether this thread captures a CUDA graph on the device.
bool is_capturing(Device device = current_cuda_device());

}  // namespace ember
