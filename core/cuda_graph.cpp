// CudaGraph and CudaGraphCapture over kernels/cuda_device.hpp's graph entries (see cuda_graph.hpp).
#include "core/cuda_graph.hpp"

#include <atomic>
#include <cstring>
#include <exception>

#include "core/allocator.hpp"
#include "core/error.hpp"
#include "kernels/cuda_device.hpp"

namespace ember {
namespace {
namespace kc = kernels::cuda;

uint64_t next_pool_id() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1);
}

Device checked_cuda(Device d) {
  EMBER_CHECK(d.is_cuda(), DeviceError, "[cuda graph] needs a CUDA device, got ", d);
  EMBER_CHECK(d.index >= 0 && d.index < kc::device_count(), DeviceError, "[cuda graph] device ", d,
              " is not available (this machine has ", kc::device_count(), " CUDA devices)");
  return d;
}
}  // namespace

CudaGraph::CudaGraph(Device device, size_t slot_bytes)
    : device_(checked_cuda(device)), slot_bytes_(slot_bytes), pool_id_(next_pool_id()) {}

CudaGraph::~CudaGraph() {
  capture_abort();
  try {
    reset();
  } catch (...) {  // destructors do not throw; the CUDA error is gone with the graph
  }
}

void CudaGraph::capture_begin() {
  EMBER_CHECK(!captured() && !capturing_, Error,
              "[cuda graph] capture_begin on a graph that is already captured or capturing: reset() it first");
  const int dev = device_.index;
  void* stream = kc::current_stream_handle(dev);
  EMBER_CHECK(stream != nullptr, DeviceError,
              "[cuda graph] capture cannot use the legacy default stream: capture under a StreamGuard of a new "
              "Stream (CudaGraphCapture does)");
  // As torch.cuda.graph: the eager steps before (a warm-up's activations) leave memory cached that the
  // graph's pool cannot use and that cannot be released while capturing; give it back first.
  if (!graph::is_capturing(dev)) {
    kc::synchronize(dev);
    allocator_for(device_).empty_cache();
  }
  slots_ = std::make_unique<graph::SlotTable>(slot_bytes_);
  if (device_slots_ == nullptr) device_slots_ = kc::device_malloc_raw(dev, slot_bytes_);
  ctx_ = graph::CaptureContext{dev, graph::CaptureContext::Mode::kCapture, slots_.get(),
                               static_cast<char*>(device_slots_)};
  graph::set_active(dev, &ctx_);
  try {
    kc::begin_graph_pool(dev, pool_id_, stream);
    try {
      kc::graph_capture_begin(dev, stream);
    } catch (...) {
      kc::end_graph_pool(dev, stream);
      throw;
    }
  } catch (...) {
    graph::set_active(dev, nullptr);
    throw;
  }
  capture_stream_ = stream;
  capturing_ = true;
}

void CudaGraph::capture_end() {
  EMBER_CHECK(capturing_, Error, "[cuda graph] capture_end without capture_begin");
  const int dev = device_.index;
  EMBER_CHECK(kc::current_stream_handle(dev) == capture_stream_, Error,
              "[cuda graph] capture_end on another stream than the capture began on");
  capturing_ = false;
  graph::set_active(dev, nullptr);
  void* exec = nullptr;
  try {
    exec = kc::graph_capture_end(dev, capture_stream_);
  } catch (...) {
    kc::end_graph_pool(dev, capture_stream_);
    throw;
  }
  kc::end_graph_pool(dev, capture_stream_);
  exec_ = exec;
}

void CudaGraph::capture_abort() noexcept {
  if (!capturing_) return;
  capturing_ = false;
  const int dev = device_.index;
  graph::set_active(dev, nullptr);
  kc::graph_capture_abort(dev, capture_stream_);
  try {
    kc::end_graph_pool(dev, capture_stream_);
  } catch (...) {
  }
}

void CudaGraph::replay() {
  EMBER_CHECK(captured(), Error, "[cuda graph] replay of a graph that was not captured");
  const int dev = device_.index;
  EMBER_CHECK(!graph::is_capturing(dev), Error, "[cuda graph] replay while a graph captures on this thread");
  void* stream = kc::current_stream_handle(dev);
  const size_t used = slots_->used();
  if (used > 0) {
    slots_->refresh();
    const int k = static_cast<int>(replays_ % 2);
    if (staging_[k] == nullptr) {
      staging_[k] = kc::pinned_malloc_raw(slot_bytes_);
      staging_event_[k] =
          std::shared_ptr<void>(kc::event_create(dev, false), [dev](void* e) { kc::event_destroy(dev, e); });
    }
    // The copy from this buffer two replays ago must have read it before it is overwritten.
    if (staging_used_[k]) kc::event_synchronize(dev, staging_event_[k].get());
    std::memcpy(staging_[k], slots_->host(), used);
    kc::copy_to_device_async(dev, device_slots_, staging_[k], used, stream);
    kc::event_record(dev, staging_event_[k].get(), stream);
    staging_used_[k] = true;
  }
  kc::graph_launch(dev, exec_, stream);
  ++replays_;
}

void CudaGraph::rerun(const std::function<void()>& fn) {
  EMBER_CHECK(captured(), Error, "[cuda graph] rerun on a graph that was not captured");
  const int dev = device_.index;
  graph::CaptureContext ctx{dev, graph::CaptureContext::Mode::kRerun, slots_.get(), static_cast<char*>(device_slots_)};
  graph::set_active(dev, &ctx);
  slots_->begin_rerun();
  try {
    fn();
  } catch (...) {
    graph::set_active(dev, nullptr);
    try {
      slots_->end_rerun();
    } catch (...) {
    }
    throw;
  }
  graph::set_active(dev, nullptr);
  slots_->end_rerun();
}

void CudaGraph::reset() {
  EMBER_CHECK(!capturing_, Error, "[cuda graph] reset while capturing: end or abort the capture first");
  const int dev = device_.index;
  // A sync raises the errors kernels deferred (an index out of range in the last replay): the graph's
  // memory is freed first, then the first such error is raised.
  std::exception_ptr error;
  auto wait = [&error](auto&& sync) {
    try {
      sync();
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  };
  if (exec_ != nullptr || staging_used_[0] || staging_used_[1]) {
    // The last replays may still read the slot table and the staging buffers.
    wait([dev] { kc::stream_synchronize(dev, kc::current_stream_handle(dev)); });
  }
  kc::graph_destroy(dev, exec_);
  exec_ = nullptr;
  for (int k = 0; k < 2; ++k) {
    if (staging_used_[k]) wait([&] { kc::event_synchronize(dev, staging_event_[k].get()); });
    kc::pinned_free_raw(staging_[k]);
    staging_[k] = nullptr;
    staging_event_[k].reset();
    staging_used_[k] = false;
  }
  kc::device_free_raw(dev, device_slots_);
  device_slots_ = nullptr;
  slots_.reset();
  kc::release_graph_pool(dev, pool_id_);
  pool_id_ = next_pool_id();  // a new capture gets a fresh pool; the old one returns when its blocks do
  replays_ = 0;
  if (error) std::rethrow_exception(error);
}

CudaGraphCapture::CudaGraphCapture(CudaGraph& g)
    : graph_(g), prev_(Stream::current(g.device())), stream_(g.device()), exceptions_(std::uncaught_exceptions()) {
  stream_.wait(prev_);  // the capture's inputs were written by work queued on the previous stream
  guard_.emplace(stream_);
  try {
    graph_.capture_begin();
  } catch (...) {
    guard_.reset();
    throw;
  }
}

void CudaGraphCapture::finish() {
  if (done_) return;
  done_ = true;
  try {
    graph_.capture_end();
  } catch (...) {
    guard_.reset();
    throw;
  }
  guard_.reset();
  prev_.wait(stream_);  // later eager work is ordered after the capture stream's (upload) work
}

CudaGraphCapture::~CudaGraphCapture() noexcept(false) {
  if (done_) return;
  if (std::uncaught_exceptions() > exceptions_) {
    done_ = true;
    graph_.capture_abort();
    guard_.reset();
    return;
  }
  finish();
}

bool is_capturing(Device device) { return device.is_cuda() && graph::is_capturing(device.index); }

}  // namespace ember
