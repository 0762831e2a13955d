// Communicator: argument checks shared by every backend, the synchronous forms, the control
// conveniences, the messages of failed collectives, Work, and the one-process backend.
#include "dist/communicator.hpp"

#include <cmath>
#include <cstring>

#include "core/error.hpp"
#include "core/ops/creation.hpp"

namespace ember::dist {

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kAvg:
      return "avg";
    case ReduceOp::kProduct:
      return "product";
    case ReduceOp::kMin:
      return "min";
    case ReduceOp::kMax:
      return "max";
  }
  return "?";
}

namespace {
std::atomic<bool> g_collective_failed{false};
std::mutex g_run_failure_mutex;
std::string g_run_failure;
}  // namespace

bool collective_failed() { return g_collective_failed.load(); }
void mark_collective_failed() { g_collective_failed.store(true); }

void set_run_failure(const std::string& what) {
  std::lock_guard lock(g_run_failure_mutex);
  g_run_failure = what;
}

std::string run_failure() {
  std::lock_guard lock(g_run_failure_mutex);
  return g_run_failure;
}

// ---------------------------------------------------------------- Work
void Work::State::finish(std::exception_ptr e) {
  {
    std::lock_guard lock(mutex);
    // A finished collective cannot time out: drop the handler, and with it the operation it holds (its
    // tensors would otherwise live as long as anyone keeps this Work), before a waiter can see `done`.
    on_timeout = nullptr;
    error = std::move(e);
    done = true;
  }
  cv.notify_all();
}

void Work::wait() {
  if (!state_) return;
  std::unique_lock lock(state_->mutex);
  auto done = [&] { return state_->done; };
  if (!state_->on_timeout) {
    state_->cv.wait(lock, done);
  } else if (!state_->cv.wait_until(lock, state_->deadline, done)) {
    state_->error = std::exchange(state_->on_timeout, nullptr)();
    state_->done = true;
  }
  if (state_->error) std::rethrow_exception(state_->error);
  if (state_->on_wait) std::exchange(state_->on_wait, nullptr)();
  state_->keep.clear();
}

bool Work::is_completed() const {
  if (!state_) return true;
  std::lock_guard lock(state_->mutex);
  return state_->done && (state_->error || !state_->device_done || state_->device_done());
}

Work Communicator::done(std::exception_ptr error) {
  auto state = std::make_shared<Work::State>();
  state->finish(std::move(error));
  return Work(std::move(state));
}

// ---------------------------------------------------------------- timeouts and messages
void Communicator::set_timeout(double seconds) {
  EMBER_CHECK(std::isfinite(seconds) && seconds > 0, ValueError,
              "[dist::set_timeout] the timeout must be a positive number of seconds, got ", seconds);
  timeout_.store(seconds);
}

const char* Communicator::kind_name(Kind kind) {
  switch (kind) {
    case Kind::kAllReduce:
      return "all_reduce";
    case Kind::kBroadcast:
      return "broadcast";
    case Kind::kAllGather:
      return "all_gather";
    case Kind::kReduceScatter:
      return "reduce_scatter";
    case Kind::kBarrier:
      return "barrier";
  }
  return "?";
}

std::string Communicator::describe_op(Kind kind, int dtype, int64_t numel, ReduceOp reduce, int root) {
  std::string s = kind_name(kind);
  if (kind == Kind::kAllReduce || kind == Kind::kReduceScatter) s += detail::cat_str(" (", reduce_op_name(reduce), ")");
  if (kind == Kind::kBroadcast) s += detail::cat_str(" from rank ", root);
  if (dtype >= 0 && dtype < kNumDTypes)
    s += detail::cat_str(" of ", numel, " elements of ", static_cast<DType>(dtype));
  else if (dtype >= 0)
    s += detail::cat_str(" of ", numel, " elements of dtype #", dtype);
  if (kind == Kind::kAllGather) s += " per rank";
  return s;
}

std::string Communicator::describe_op(const Op& op) {
  const Tensor& t = op.in.defined() ? op.in : op.out;
  return describe_op(op.kind, t.defined() ? static_cast<int>(t.dtype()) : -1, t.defined() ? t.numel() : 0, op.reduce,
                     op.root);
}

std::string Communicator::timeout_message(const Op& op, double seconds) const {
  return detail::cat_str(
      "[dist::", kind_name(op.kind), "] timed out after ", seconds, " s on rank ", rank_, " of ", world_size_, " (",
      backend(), " backend): ", describe_op(op),
      " waited longer than the timeout for the other ranks. A rank stopped or died, or the ranks called different "
      "collectives (different max_epochs, dataset sizes or numbers of batches?). The communicator is unusable now; "
      "the process group ends the job (MPI_Abort) when it shuts down. The timeout is Trainer option ddp_timeout or "
      "dist::set_timeout (default ",
      kDefaultTimeout, " s)");
}

// ---------------------------------------------------------------- checks
void Communicator::check_tensor(const Tensor& t, const char* op, const char* what) const {
  EMBER_CHECK(t.defined(), ValueError, "[dist::", op, "] ", what, " is an undefined tensor");
  EMBER_CHECK(t.is_contiguous(), ValueError, "[dist::", op, "] ", what, " must be contiguous, got ", describe(t),
              " (call .contiguous() and copy the result back)");
  EMBER_CHECK(accepts(t.device()), DeviceError, "[dist::", op, "] the ", backend(), " backend does not take ", what,
              " ", describe(t), " on ", t.device());
}

namespace {
Shape with_leading(int64_t n, const Shape& s) {
  std::vector<int64_t> v{n};
  v.insert(v.end(), s.begin(), s.end());
  return Shape(v);
}

void check_reduce(ReduceOp op, const Tensor& t, const char* name) {
  EMBER_CHECK(op != ReduceOp::kAvg || is_floating(t.dtype()), DTypeError, "[dist::", name,
              "] avg needs a floating tensor, got ", describe(t));
  EMBER_CHECK(t.dtype() != kBool || op == ReduceOp::kMax || op == ReduceOp::kMin, DTypeError, "[dist::", name,
              "] a bool tensor reduces with max (any) or min (all), not ", reduce_op_name(op));
}
}  // namespace

Work Communicator::all_reduce_async(const Tensor& t, ReduceOp op) {
  check_tensor(t, "all_reduce", "the tensor");
  check_reduce(op, t, "all_reduce");
  return submit({.kind = Kind::kAllReduce, .out = t, .in = {}, .reduce = op});
}

Work Communicator::broadcast_async(const Tensor& t, int root) {
  check_tensor(t, "broadcast", "the tensor");
  EMBER_CHECK(root >= 0 && root < world_size_, ValueError, "[dist::broadcast] root ", root, " is not a rank of ",
              world_size_);
  return submit({.kind = Kind::kBroadcast, .out = t, .in = {}, .root = root});
}

Work Communicator::all_gather_async(const Tensor& out, const Tensor& in) {
  check_tensor(in, "all_gather", "the input");
  check_tensor(out, "all_gather", "the output");
  const Shape want = with_leading(world_size_, in.shape());
  EMBER_CHECK(out.shape() == want && out.dtype() == in.dtype() && out.device() == in.device(), ShapeError,
              "[dist::all_gather] the output must be [world_size, *input.shape] = ", want, " of ", in.dtype(), " on ",
              in.device(), ", got ", describe(out));
  return submit({.kind = Kind::kAllGather, .out = out, .in = in});
}

Work Communicator::reduce_scatter_async(const Tensor& out, const Tensor& in, ReduceOp op) {
  check_tensor(in, "reduce_scatter", "the input");
  check_tensor(out, "reduce_scatter", "the output");
  check_reduce(op, in, "reduce_scatter");
  const Shape want = with_leading(world_size_, out.shape());
  EMBER_CHECK(in.shape() == want && out.dtype() == in.dtype() && out.device() == in.device(), ShapeError,
              "[dist::reduce_scatter] the input must be [world_size, *output.shape] = ", want, " of ", out.dtype(),
              " on ", out.device(), ", got ", describe(in));
  return submit({.kind = Kind::kReduceScatter, .out = out, .in = in, .reduce = op});
}

Work Communicator::barrier_async() { return submit({.kind = Kind::kBarrier, .out = {}, .in = {}}); }

Tensor Communicator::all_gather(const Tensor& in) {
  Tensor out = empty(with_leading(world_size_, in.shape()), {.dtype = in.dtype(), .device = in.device()});
  all_gather_async(out, in).wait();
  return out;
}

Tensor Communicator::reduce_scatter(const Tensor& in, ReduceOp op) {
  EMBER_CHECK(in.defined() && in.dim() >= 1 && in.shape()[0] == world_size_, ShapeError,
              "[dist::reduce_scatter] the input's first dimension must be the world size ", world_size_, ", got ",
              describe(in));
  Shape shape(in.shape().begin() + 1, in.shape().end());
  Tensor out = empty(shape, {.dtype = in.dtype(), .device = in.device()});
  reduce_scatter_async(out, in, op).wait();
  return out;
}

double Communicator::all_reduce_scalar(double value, ReduceOp op) {
  if (world_size_ == 1) return value;
  Tensor t = full({1}, value, {.dtype = kF64, .device = control_device()});
  all_reduce(t, op);
  return t.to(Device()).item<double>();
}

double Communicator::broadcast_scalar(double value, int root) {
  if (world_size_ == 1) return value;
  Tensor t = full({1}, value, {.dtype = kF64, .device = control_device()});
  broadcast(t, root);
  return t.to(Device()).item<double>();
}

std::string Communicator::broadcast_string(const std::string& s, int root) {
  if (world_size_ == 1) return s;
  const Device dev = control_device();
  Tensor size = full({1}, static_cast<int64_t>(s.size()), {.dtype = kI64, .device = dev});
  broadcast(size, root);
  const int64_t n = size.to(Device()).item<int64_t>();
  Tensor bytes = zeros({n}, {.dtype = kU8});
  if (rank_ == root) std::memcpy(bytes.raw_data(), s.data(), s.size());
  if (!dev.is_cpu()) bytes = bytes.to(dev);
  broadcast(bytes, root);
  bytes = bytes.to(Device());
  return std::string(static_cast<const char*>(bytes.raw_data()), static_cast<size_t>(n));
}

std::vector<int64_t> Communicator::all_gather_int64(const std::vector<int64_t>& values) {
  if (world_size_ == 1) return values;
  const int64_t n = static_cast<int64_t>(values.size());
  Tensor mine = tensor_from(values, {n}, std::nullopt);
  const Device dev = control_device();
  Tensor all = all_gather(dev.is_cpu() ? mine : mine.to(dev)).to(Device()).contiguous();
  const int64_t* p = all.data_ptr<int64_t>();
  return std::vector<int64_t>(p, p + n * world_size_);
}

std::vector<std::string> Communicator::all_gather_string(const std::string& s) {
  if (world_size_ == 1) return {s};
  const std::vector<int64_t> sizes = all_gather_int64({static_cast<int64_t>(s.size())});
  int64_t longest = 1;
  for (int64_t n : sizes) longest = std::max(longest, n);
  Tensor mine = zeros({longest}, {.dtype = kU8});
  std::memcpy(mine.raw_data(), s.data(), s.size());
  const Device dev = control_device();
  Tensor all = all_gather(dev.is_cpu() ? mine : mine.to(dev)).to(Device()).contiguous();
  std::vector<std::string> out;
  for (int r = 0; r < world_size_; ++r)
    out.emplace_back(static_cast<const char*>(all.raw_data()) + r * longest, static_cast<size_t>(sizes[r]));
  return out;
}

// ---------------------------------------------------------------- one process
namespace {
class SingleProcess final : public Communicator {
 public:
  SingleProcess() : Communicator(0, 1) {}
  std::string backend() const override { return "single"; }
  bool accepts(Device) const override { return true; }

 protected:
  Work submit(Op op) override {
    // all_reduce/broadcast of one rank change nothing (avg divides by 1); the others copy.
    if (op.kind == Kind::kAllGather || op.kind == Kind::kReduceScatter) op.out.view(op.in.shape()).copy_(op.in);
    return done();
  }
};
}  // namespace

std::unique_ptr<Communicator> make_single_process_communicator() { return std::make_unique<SingleProcess>(); }

}  // namespace ember::dist
