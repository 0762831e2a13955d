// The NCCL backend. Each collective runs on this communicator's own stream after an event recorded on
// the device's stream (so it sees the data the caller's kernels wrote); Work::wait() makes the device's
// stream wait for the collective's end event. Tensors in flight stay referenced until their end event
// has fired, so the caching allocator never hands their memory out while NCCL still uses it.
// Timeouts: the communicator is nonblocking (every NCCL call returns at once and is polled against the
// timeout), and a watchdog thread polls ncclCommGetAsyncError and the oldest collective in flight; past
// the timeout it prints the error, aborts the communicator (ncclCommAbort ends its kernels, so streams
// waiting on them drain) and every later use raises DistError, as does every later host read of the
// device's results (kernels::cuda::poison_device). Never run on a GPU so far.
#include "dist/nccl.hpp"

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#include "core/error.hpp"
#include "core/ops/creation.hpp"
#include "kernels/cuda/runtime.hpp"
#include "kernels/deferred_error.hpp"

namespace ember::dist {
namespace {

using Clock = std::chrono::steady_clock;

std::string nccl_failure(ncclResult_t rc, const char* op) {
  return detail::cat_str("[dist::", op, "] NCCL failed: ", ncclGetErrorString(rc),
                         rc == ncclSystemError || rc == ncclRemoteError ? " (a peer or the network failed)" : "");
}

void check_nccl(ncclResult_t rc, const char* op) {
  if (rc != ncclSuccess) throw DistError(nccl_failure(rc, op));
}

// Why the communicator became unusable; shared with the Work handles, which may outlive it.
struct Failure {
  std::mutex mutex;
  std::string why;
  std::string get() {
    std::lock_guard lock(mutex);
    return why;
  }
};

ncclDataType_t nccl_type(DType dt) {
  switch (dt) {
    case DType::F32:
      return ncclFloat32;
    case DType::F64:
      return ncclFloat64;
    case DType::F16:
      return ncclFloat16;
    case DType::BF16:
      return ncclBfloat16;
    case DType::I32:
      return ncclInt32;
    case DType::I64:
      return ncclInt64;
    case DType::U8:
    case DType::Bool:  // one byte of 0 or 1: max is "any", min is "all"
      return ncclUint8;
  }
  return ncclUint8;
}

// Events are shared by the in-flight list and the Work handles that may still wait on them. The last
// owner may be any thread: the deleter makes the event's device current (a thread on no device would
// otherwise open a context on GPU 0).
using Event = std::shared_ptr<std::remove_pointer_t<cudaEvent_t>>;
Event make_event(int device) {
  cudaEvent_t e;
  EMBER_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return Event(e, [device](cudaEvent_t x) {
    kernels::cuda::DeviceGuard g(device);
    cudaEventDestroy(x);
  });
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kAvg:
      return ncclAvg;
    case ReduceOp::kProduct:
      return ncclProd;
    case ReduceOp::kMin:
      return ncclMin;
    case ReduceOp::kMax:
      return ncclMax;
  }
  return ncclSum;
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(int device, Communicator& bootstrap)
      : Communicator(bootstrap.rank(), bootstrap.world_size()), device_(device) {
    set_timeout(bootstrap.timeout());
    // NCCL's unique id goes from rank 0 to the others over the bootstrap group (MPI).
    ncclUniqueId id;
    if (rank() == 0) check_nccl(ncclGetUniqueId(&id), "init");
    Tensor bytes = zeros({static_cast<int64_t>(sizeof(id))}, {.dtype = kU8});
    if (rank() == 0) std::memcpy(bytes.raw_data(), &id, sizeof(id));
    bootstrap.broadcast(bytes, 0);
    std::memcpy(&id, bytes.raw_data(), sizeof(id));
    kernels::cuda::DeviceGuard guard(device_);
    EMBER_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;  // calls return at once: they are polled against the timeout, and abort can end them
    const ncclResult_t rc = ncclCommInitRankConfig(&comm_, world_size(), id, rank(), &config);
    try {
      settle(rc, nullptr, "init");
    } catch (...) {
      cudaStreamDestroy(stream_);
      throw;
    }
    try {
      watchdog_ = std::thread([this] { watch(); });
    } catch (const std::system_error& e) {  // EAGAIN: the thread or process limit is reached
      ncclCommDestroy(comm_);
      cudaStreamDestroy(stream_);
      std::throw_with_nested(DistError(
          detail::cat_str("[dist] could not start the nccl communicator's watchdog thread: ", e.code().message())));
    }
  }
  ~NcclCommunicator() override {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    watchdog_.join();
    kernels::cuda::DeviceGuard guard(device_);
    std::lock_guard lock(mutex_);
    // Collectives still in flight get the timeout to finish; then the communicator is aborted, not waited on.
    const auto deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout()));
    while (comm_ != nullptr && !in_flight_.empty()) {
      release_finished();
      if (!in_flight_.empty() && Clock::now() > deadline)
        fail_locked(timeout_message(in_flight_.front().op, timeout()));
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    if (comm_ != nullptr) {
      try {
        settle(ncclCommFinalize(comm_), nullptr, "finalize");
      } catch (...) {  // settle aborted it
      }
    }
    if (comm_ != nullptr) ncclCommDestroy(comm_);
    cudaStreamSynchronize(stream_);  // after an abort its kernels have ended
    in_flight_.clear();
    cudaStreamDestroy(stream_);
  }
  std::string backend() const override { return "nccl"; }
  bool accepts(Device d) const override { return d.is_cuda() && d.index == device_; }

 protected:
  Device control_device() const override { return Device(Device::Kind::CUDA, device_); }

  Work submit(Op op) override {
    kernels::cuda::DeviceGuard guard(device_);
    Event end = make_event(device_);
    {
      std::lock_guard lock(mutex_);
      if (const std::string why = failure_->get(); !why.empty())
        return done(std::make_exception_ptr(DistError(unusable(op, why))));
      release_finished();
      const cudaStream_t compute = kernels::cuda::current_stream(device_);
      Event ready = make_event(device_);
      EMBER_CUDA_CHECK(cudaEventRecord(ready.get(), compute));
      EMBER_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready.get(), 0));
      try {
        launch(op);
      } catch (...) {  // settled by an abort, perhaps half enqueued: op's tensors are freed only after its stream
        cudaStreamSynchronize(stream_);
        cudaGetLastError();
        throw;
      }
      EMBER_CUDA_CHECK(cudaEventRecord(end.get(), stream_));
      in_flight_.push_back({end, op, Clock::now()});
    }
    cv_.notify_all();
    if (op.kind == Kind::kBarrier) {  // NCCL has no barrier: the host waits for a one-element all-reduce
      cudaError_t state;
      while ((state = cudaEventQuery(end.get())) == cudaErrorNotReady && failure_->get().empty())
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      if (state == cudaErrorNotReady) cudaGetLastError();  // not an error: cleared from the last-error state
      if (const std::string why = failure_->get(); !why.empty()) throw DistError(why);  // the watchdog's timeout
      EMBER_CUDA_CHECK(state);
    }

    auto state = std::make_shared<Work::State>();
    const int device = device_;
    state->on_wait = [end, device, failure = failure_] {
      if (const std::string why = failure->get(); !why.empty()) throw DistError(why);
      kernels::cuda::DeviceGuard g(device);
      EMBER_CUDA_CHECK(cudaStreamWaitEvent(kernels::cuda::current_stream(device), end.get(), 0));
    };
    state->device_done = [end, device] {
      kernels::cuda::DeviceGuard g(device);
      return kernels::cuda::event_done(end.get());
    };
    state->finish();
    return Work(std::move(state));
  }

 private:
  std::string unusable(const Op& op, const std::string& why) const {
    return detail::cat_str("[dist::", kind_name(op.kind),
                           "] the nccl communicator is unusable after an earlier failure (", why, "); ",
                           describe_op(op), " was not started");
  }

  // Records the failure, tells the user at once (the main thread may be blocked in a CUDA call outside
  // Ember, waiting on the collective's kernels) and aborts the communicator. Needs mutex_ (or no watchdog).
  void fail_locked(const std::string& why) {
    {
      std::lock_guard lock(failure_->mutex);
      if (!failure_->why.empty()) return;
      failure_->why = why;
    }
    mark_collective_failed();
    std::cerr << why << std::endl;
    // Before the abort lets the streams waiting on the collective drain: a host read that returns
    // then (the gradients' mean, a checkpoint's weights) raises instead of passing on partial data.
    kernels::cuda::poison_device(device_, why);
    if (comm_ != nullptr) ncclCommAbort(comm_);
    comm_ = nullptr;
  }

  // A nonblocking NCCL call returns ncclInProgress while it works in the background; the communicator's
  // state says when it is done or failed. Waits for it at most the timeout; a failure aborts. `op`: the
  // collective being enqueued, or null for the communicator's own setup and teardown (`what`).
  void settle(ncclResult_t rc, const Op* op, const char* what) {
    const auto start = Clock::now();
    const double limit = timeout();
    while (rc == ncclInProgress) {
      if (std::chrono::duration<double>(Clock::now() - start).count() > limit) {
        const std::string why = op != nullptr
                                    ? timeout_message(*op, limit)
                                    : detail::cat_str("[dist::nccl] the communicator's ", what, " timed out after ",
                                                      limit, " s on rank ", rank(), " of ", world_size(),
                                                      " (a rank stopped, died, or never created its communicator)");
        fail_locked(why);
        throw DistError(why);
      }
      std::this_thread::yield();
      if (const ncclResult_t q = ncclCommGetAsyncError(comm_, &rc); q != ncclSuccess) rc = q;
    }
    if (rc != ncclSuccess) {
      const std::string why = nccl_failure(rc, what);
      fail_locked(why);
      throw DistError(why);
    }
  }

  // The watchdog: NCCL's asynchronous errors (a peer died) and collectives in flight longer than the timeout.
  void watch() {
    std::unique_lock lock(mutex_);
    while (!stop_) {
      const double limit = timeout();
      cv_.wait_for(lock, std::chrono::duration<double>(std::clamp(limit / 20, 0.01, 1.0)));
      if (stop_ || comm_ == nullptr) continue;
      try {
        kernels::cuda::DeviceGuard guard(device_);
        ncclResult_t async = ncclSuccess;
        if (ncclCommGetAsyncError(comm_, &async) == ncclSuccess && async != ncclSuccess && async != ncclInProgress) {
          fail_locked(detail::cat_str(nccl_failure(async, "nccl"), " (an asynchronous error on rank ", rank(), " of ",
                                      world_size(), ")"));
          continue;
        }
        // The oldest collective not yet done (finished ones are released by submit, on the caller's thread).
        for (const Flight& f : in_flight_) {
          if (kernels::cuda::event_done(f.end.get())) continue;
          if (std::chrono::duration<double>(Clock::now() - f.start).count() > limit)
            fail_locked(timeout_message(f.op, limit));
          break;
        }
      } catch (const std::exception& e) {  // a CUDA error: the next collective meets it too
        std::cerr << "[dist::nccl watchdog] " << e.what() << std::endl;
      }
    }
  }

  void launch(const Op& op) {
    const char* name = kind_name(op.kind);
    switch (op.kind) {
      case Kind::kAllReduce:
        return settle(ncclAllReduce(op.out.raw_data(), op.out.raw_data(), static_cast<size_t>(op.out.numel()),
                                    nccl_type(op.out.dtype()), nccl_op(op.reduce), comm_, stream_),
                      &op, name);
      case Kind::kBroadcast:
        return settle(
            ncclBroadcast(op.out.raw_data(), op.out.raw_data(), op.out.nbytes(), ncclUint8, op.root, comm_, stream_),
            &op, name);
      case Kind::kAllGather:
        return settle(ncclAllGather(op.in.raw_data(), op.out.raw_data(), op.in.nbytes(), ncclUint8, comm_, stream_),
                      &op, name);
      case Kind::kReduceScatter:
        return settle(ncclReduceScatter(op.in.raw_data(), op.out.raw_data(), static_cast<size_t>(op.out.numel()),
                                        nccl_type(op.out.dtype()), nccl_op(op.reduce), comm_, stream_),
                      &op, name);
      case Kind::kBarrier:
        if (!barrier_.defined()) barrier_ = zeros({1}, {.dtype = kF32, .device = control_device()});
        return settle(ncclAllReduce(barrier_.raw_data(), barrier_.raw_data(), 1, ncclFloat32, ncclSum, comm_, stream_),
                      &op, name);
    }
  }

  // Drops the references of collectives whose end event has fired (oldest first: the stream is in order).
  void release_finished() {
    while (!in_flight_.empty() && kernels::cuda::event_done(in_flight_.front().end.get())) in_flight_.pop_front();
  }

  struct Flight {
    Event end;
    Op op;  // its tensors stay referenced until `end` fires
    Clock::time_point start;
  };

  int device_;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;  // null once aborted
  Tensor barrier_;
  std::mutex mutex_;  // the NCCL calls (submit, watchdog, destructor), in_flight_, stop_
  std::condition_variable cv_;
  bool stop_ = false;
  std::deque<Flight> in_flight_;
  std::shared_ptr<Failure> failure_ = std::make_shared<Failure>();
  std::thread watchdog_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(int device, Communicator& bootstrap) {
  return std::make_unique<NcclCommunicator>(device, bootstrap);
}

}  // namespace ember::dist
