// The NCCL backend. Each collective runs on this communicator's own stream after an event recorded on
// the device's stream (so it sees the data the caller's kernels wrote); Work::wait() makes the device's
// stream wait for the collective's end event. Tensors in flight stay referenced until their end event
// has fired, so the caching allocator never hands their memory out while NCCL still uses it.
#include "dist/nccl.hpp"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <deque>
#include <memory>
#include <type_traits>
#include <vector>

#include "core/error.hpp"
#include "core/ops/creation.hpp"
#include "kernels/cuda/runtime.hpp"

namespace ember::dist {
namespace {

void check_nccl(ncclResult_t rc, const char* op) {
  EMBER_CHECK(rc == ncclSuccess, DistError, "[dist::", op, "] NCCL failed: ", ncclGetErrorString(rc),
              rc == ncclSystemError || rc == ncclRemoteError ? " (a peer or the network failed)" : "");
}

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

// Events are shared by the in-flight list and the Work handles that may still wait on them.
using Event = std::shared_ptr<std::remove_pointer_t<cudaEvent_t>>;
Event make_event() {
  cudaEvent_t e;
  EMBER_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return Event(e, [](cudaEvent_t x) { cudaEventDestroy(x); });
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
    // NCCL's unique id goes from rank 0 to the others over the bootstrap group (MPI).
    ncclUniqueId id;
    if (rank() == 0) check_nccl(ncclGetUniqueId(&id), "init");
    Tensor bytes = zeros({static_cast<int64_t>(sizeof(id))}, {.dtype = kU8});
    if (rank() == 0) std::memcpy(bytes.raw_data(), &id, sizeof(id));
    bootstrap.broadcast(bytes, 0);
    std::memcpy(&id, bytes.raw_data(), sizeof(id));
    kernels::cuda::DeviceGuard guard(device_);
    EMBER_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    check_nccl(ncclCommInitRank(&comm_, world_size(), id, rank()), "init");
  }
  ~NcclCommunicator() override {
    kernels::cuda::DeviceGuard guard(device_);
    cudaStreamSynchronize(stream_);
    in_flight_.clear();
    ncclCommDestroy(comm_);
    cudaStreamDestroy(stream_);
  }
  std::string backend() const override { return "nccl"; }
  bool accepts(Device d) const override { return d.is_cuda() && d.index == device_; }

 protected:
  Device control_device() const override { return Device(Device::Kind::CUDA, device_); }

  Work submit(Op op) override {
    kernels::cuda::DeviceGuard guard(device_);
    release_finished();
    const cudaStream_t compute = kernels::cuda::current_stream(device_);
    Event ready = make_event(), end = make_event();
    EMBER_CUDA_CHECK(cudaEventRecord(ready.get(), compute));
    EMBER_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready.get(), 0));
    launch(op);
    EMBER_CUDA_CHECK(cudaEventRecord(end.get(), stream_));
    in_flight_.emplace_back(end, std::vector<Tensor>{op.out, op.in});

    auto state = std::make_shared<Work::State>();
    const int device = device_;
    state->on_wait = [end, device] {
      kernels::cuda::DeviceGuard g(device);
      EMBER_CUDA_CHECK(cudaStreamWaitEvent(kernels::cuda::current_stream(device), end.get(), 0));
    };
    state->device_done = [end] { return cudaEventQuery(end.get()) == cudaSuccess; };
    state->finish();
    return Work(std::move(state));
  }

 private:
  void launch(const Op& op) {
    switch (op.kind) {
      case Kind::kAllReduce:
        check_nccl(ncclAllReduce(op.out.raw_data(), op.out.raw_data(), static_cast<size_t>(op.out.numel()),
                                 nccl_type(op.out.dtype()), nccl_op(op.reduce), comm_, stream_),
                   "all_reduce");
        return;
      case Kind::kBroadcast:
        check_nccl(
            ncclBroadcast(op.out.raw_data(), op.out.raw_data(), op.out.nbytes(), ncclUint8, op.root, comm_, stream_),
            "broadcast");
        return;
      case Kind::kAllGather:
        check_nccl(ncclAllGather(op.in.raw_data(), op.out.raw_data(), op.in.nbytes(), ncclUint8, comm_, stream_),
                   "all_gather");
        return;
      case Kind::kReduceScatter:
        check_nccl(ncclReduceScatter(op.in.raw_data(), op.out.raw_data(), static_cast<size_t>(op.out.numel()),
                                     nccl_type(op.out.dtype()), nccl_op(op.reduce), comm_, stream_),
                   "reduce_scatter");
        return;
      case Kind::kBarrier: {
        // NCCL has no barrier: a one-element all-reduce, and the host waits for it.
        if (!barrier_.defined()) barrier_ = zeros({1}, {.dtype = kF32, .device = control_device()});
        check_nccl(ncclAllReduce(barrier_.raw_data(), barrier_.raw_data(), 1, ncclFloat32, ncclSum, comm_, stream_),
                   "barrier");
        EMBER_CUDA_CHECK(cudaStreamSynchronize(stream_));
        return;
      }
    }
  }

  // Drops the references of collectives whose end event has fired (oldest first: the stream is in order).
  void release_finished() {
    while (!in_flight_.empty() && cudaEventQuery(in_flight_.front().first.get()) == cudaSuccess) in_flight_.pop_front();
  }

  int device_;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  Tensor barrier_;
  std::deque<std::pair<Event, std::vector<Tensor>>> in_flight_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(int device, Communicator& bootstrap) {
  return std::make_unique<NcclCommunicator>(device, bootstrap);
}

}  // namespace ember::dist
