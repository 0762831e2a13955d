// dist::Communicator: the collectives every backend offers (all_reduce, broadcast, all_gather,
// reduce_scatter, barrier), each with an asynchronous form returning a Work handle. Backends: "single"
// (one process), "mpi" (CPU tensors), "nccl" (CUDA tensors). The base class checks every argument, so
// a backend sees only contiguous tensors of a dtype and device it takes. Every collective waits at most
// timeout() seconds for the other ranks; then it fails with DistError and the communicator is unusable.
#pragma once
#include <atomic>
#include <chrono>
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

// How long a collective waits for the other ranks by default: 30 minutes, as PyTorch's process groups.
inline constexpr double kDefaultTimeout = 1800.0;

// Whether a collective of this process timed out or failed in a backend, leaving its communicator
// unusable. The process group then ends the job (MPI_Abort) at shutdown instead of MPI_Finalize, which
// would wait for the other ranks forever. Backends call mark_collective_failed().
bool collective_failed();
void mark_collective_failed();

// This process's last Trainer run on several ranks raised an error (`what`) its peers may not share: they
// may wait for it in a collective forever. The Trainer sets it when such a run fails and clears it ("") when
// a later one succeeds. At shutdown the process group then waits at most kExitWait seconds for the other
// ranks; if they do not come, it ends the job with MPI_Abort instead of waiting in MPI_Finalize.
void set_run_failure(const std::string& what);
std::string run_failure();
inline constexpr double kExitWait = 30.0;

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

  // Seconds a collective may wait for the other ranks (from the moment this rank starts it) before it
  // fails with DistError naming the op, dtype, count, rank and seconds. After that every later
  // collective of this communicator fails at once: its peers are in an unknown state.
  void set_timeout(double seconds);
  double timeout() const { return timeout_.load(); }

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
  // Every rank's `values` (the same count on every rank), rank by rank: world_size() * values.size().
  std::vector<int64_t> all_gather_int64(const std::vector<int64_t>& values);
  // Every rank's string (any lengths), indexed by rank.
  std::vector<std::string> all_gather_string(const std::string& s);

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

  static const char* kind_name(Kind kind);
  // "all_reduce (sum) of 3 elements of float64", "broadcast from rank 1 of 12 elements of uint8", "barrier";
  // dtype < 0: no tensor.
  static std::string describe_op(Kind kind, int dtype, int64_t numel, ReduceOp reduce, int root);
  static std::string describe_op(const Op& op);
  // The DistError message of a collective that waited `seconds` for the other ranks.
  std::string timeout_message(const Op& op, double seconds) const;

 private:
  void check_tensor(const Tensor& t, const char* op, const char* what) const;
  int rank_, world_size_;
  std::atomic<double> timeout_{kDefaultTimeout};
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
  // Set: wait() gives up at `deadline`, calls on_timeout once (the backend marks itself unusable) and
  // throws the error it returns; the backend's own thread may stay blocked in the collective.
  std::chrono::steady_clock::time_point deadline{};
  std::function<std::exception_ptr()> on_timeout;
  void finish(std::exception_ptr e = nullptr);
};

// The one-process communicator: collectives are identities (all_gather adds the leading 1).
std::unique_ptr<Communicator> make_single_process_communicator();

}  // namespace ember::dist
