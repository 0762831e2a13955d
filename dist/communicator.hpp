// dist::Communicator: the collectives every backend offers (all_reduce, broadcast, all_gather,
// reduce_scatter, barrier), each with an asynchronous form returning a Work handle. Backends: "single"
// (one process), "mpi" (CPU tensors), "nccl" (CUDA tensors). The base class checks every argument, so
// a backend sees only contiguous tensors of a dtype and device it takes.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/tensor.hpp"

namespace ember::dist {

enum class ReduceOp { kSum, kAvg, kProduct, kMin, kMax };
const char* reduce_op_name(ReduceOp op);

// A collective in flight. wait() returns once its result may be used: on CPU when the data is there,
// on CUDA once the device's stream is ordered after it. A failed collective rethrows its error from
// wait(). A default-made Work is complete.
class Work {
 public:
  struct State;
  Work() = default;
  explicit Work(std::shared_ptr<State> state) : state_(std::move(state)) {}
  void wait();
  bool is_completed() const;

 private:
  std::shared_ptr<State> state_;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  virtual std::string backend() const = 0;
  // The device kind its tensors live on (kCPU for "mpi", kCUDA for "nccl"; "single" takes both).
  virtual bool accepts(Device device) const = 0;

  // Every rank calls the same collectives in the same order with tensors of the same shape and dtype.
  // In place: every rank ends with the reduction of all ranks' `t` (kAvg: floating dtypes only).
  Work all_reduce_async(const Tensor& t, ReduceOp op = ReduceOp::kSum);
  // In place: every rank ends with rank `root`'s `t`.
  Work broadcast_async(const Tensor& t, int root = 0);
  // out [world_size, *in.shape]: out[r] is rank r's `in`.
  Work all_gather_async(const Tensor& out, const Tensor& in);
  // in [world_size, *out.shape]: out on rank r is the reduction over ranks of their in[r].
  Work reduce_scatter_async(const Tensor& out, const Tensor& in, ReduceOp op = ReduceOp::kSum);
  Work barrier_async();

  void all_reduce(const Tensor& t, ReduceOp op = ReduceOp::kSum) { all_reduce_async(t, op).wait(); }
  void broadcast(const Tensor& t, int root = 0) { broadcast_async(t, root).wait(); }
  Tensor all_gather(const Tensor& in);
  Tensor reduce_scatter(const Tensor& in, ReduceOp op = ReduceOp::kSum);
  void barrier() { barrier_async().wait(); }

  // Conveniences for control decisions (any backend): the same answer on every rank.
  double all_reduce_scalar(double value, ReduceOp op);
  bool any(bool flag) { return all_reduce_scalar(flag ? 1.0 : 0.0, ReduceOp::kMax) != 0.0; }
  double broadcast_scalar(double value, int root = 0);
  std::string broadcast_string(const std::string& s, int root = 0);

 protected:
  Communicator(int rank, int world_size) : rank_(rank), world_size_(world_size) {}

  enum class Kind { kAllReduce, kBroadcast, kAllGather, kReduceScatter, kBarrier };
  struct Op {
    Kind kind;
    Tensor out;  // written (all_reduce/broadcast: in place, so also the input)
    Tensor in;   // all_gather, reduce_scatter
    ReduceOp reduce = ReduceOp::kSum;
    int root = 0;
  };
  // Runs or queues one checked collective.
  virtual Work submit(Op op) = 0;
  // Where the conveniences above make their small tensors.
  virtual Device control_device() const { return Device(); }
  // A Work that is already complete (or failed with `error`).
  static Work done(std::exception_ptr error = nullptr);

 private:
  void check_tensor(const Tensor& t, const char* op, const char* what) const;
  int rank_, world_size_;
};

// What a backend fills in: completion (set by finish, from any thread), the error, what wait() does
// after completion in the waiting thread (CUDA: order the caller's stream), and the buffers that must
// live until then.
struct Work::State {
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;
  std::function<void()> on_wait;
  std::function<bool()> device_done;  // set: is_completed() also asks the device
  std::vector<Tensor> keep;
  void finish(std::exception_ptr e = nullptr);
};

// The one-process communicator: collectives are identities (all_gather adds the leading 1).
std::unique_ptr<Communicator> make_single_process_communicator();

}  // namespace ember::dist
