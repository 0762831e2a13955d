// The MPI backend for CPU tensors. One worker thread per communicator makes every MPI call in
// submission order, so an async collective overlaps the caller's computation (DDP's gradient buckets
// reduce while backward goes on) and MPI needs only MPI_THREAD_SERIALIZED. f16 and bf16, which MPI lacks,
// reduce in f32. The worker makes blocking calls (MPI's fastest path); the caller waits for each one at
// most the communicator's timeout, so a peer that never arrives gives a DistError instead of a hang. EMBER_DIST_DEBUG=1
// first compares every collective's signature across ranks, so a mismatch raises an error naming both sides instead of
// hanging or mixing data.
#include "dist/mpi.hpp"

#define OMPI_SKIP_MPICXX 1  // the C API only (MPI's C++ bindings are deprecated and warn)
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <system_error>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/half.hpp"

namespace ember::dist {
namespace {

bool g_mpi_owned = false;  // this library called MPI_Init (and so finalizes)

void check_mpi(int rc, const char* op) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw DistError(detail::cat_str("[dist::", op, "] MPI failed: ", std::string(text, len)));
}

MPI_Datatype mpi_type(DType dt) {
  switch (dt) {
    case DType::F32:
      return MPI_FLOAT;
    case DType::F64:
      return MPI_DOUBLE;
    case DType::I32:
      return MPI_INT32_T;
    case DType::I64:
      return MPI_INT64_T;
    case DType::U8:
      return MPI_UINT8_T;
    case DType::Bool:
      return MPI_C_BOOL;
    default:
      return MPI_FLOAT;  // f16 and bf16 travel as f32
  }
}

MPI_Op mpi_op(ReduceOp op, DType dt) {
  if (dt == kBool) return op == ReduceOp::kMin ? MPI_LAND : MPI_LOR;
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      return MPI_SUM;
    case ReduceOp::kProduct:
      return MPI_PROD;
    case ReduceOp::kMin:
      return MPI_MIN;
    case ReduceOp::kMax:
      return MPI_MAX;
  }
  return MPI_SUM;
}

bool is_half(DType dt) { return dt == DType::F16 || dt == DType::BF16; }

// f16/bf16 <-> f32 staging for reductions.
std::vector<float> widen(const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  if (t.dtype() == DType::F16) {
    const half* p = static_cast<const half*>(t.raw_data());
    for (size_t i = 0; i < v.size(); ++i) v[i] = p[i];
  } else {
    const bfloat16* p = static_cast<const bfloat16*>(t.raw_data());
    for (size_t i = 0; i < v.size(); ++i) v[i] = p[i];
  }
  return v;
}
void narrow_into(const Tensor& t, const std::vector<float>& v) {
  if (t.dtype() == DType::F16) {
    half* p = static_cast<half*>(t.raw_data());
    for (size_t i = 0; i < v.size(); ++i) p[i] = half(v[i]);
  } else {
    bfloat16* p = static_cast<bfloat16*>(t.raw_data());
    for (size_t i = 0; i < v.size(); ++i) p[i] = bfloat16(v[i]);
  }
}

// Divides n elements of a floating buffer by the world size (avg = sum / world_size, as PyTorch).
void divide(void* data, DType dt, int64_t n, int world) {
  if (dt == DType::F64) {
    double* p = static_cast<double*>(data);
    for (int64_t i = 0; i < n; ++i) p[i] /= world;
  } else {
    float* p = static_cast<float*>(data);
    for (int64_t i = 0; i < n; ++i) p[i] /= static_cast<float>(world);
  }
}

// MPI counts are ints: big buffers go in pieces.
constexpr int64_t kChunk = int64_t(1) << 30;

using Clock = std::chrono::steady_clock;

class MpiCommunicator final : public Communicator {
 public:
  // comms: duplicates of MPI_COMM_WORLD: one per dtype for all-reduces, one each for broadcast,
  // all_gather, reduce_scatter and barrier, then one for EMBER_DIST_DEBUG's checks. Collectives on
  // one communicator match in call order whatever they are, so ranks that diverged (one
  // at a barrier or an f64 all-reduce of the Trainer's stop flags, the other at an f32 gradient bucket)
  // would mix data or fail with a truncated message; on separate communicators they wait, and the
  // timeout names what each rank was doing.
  MpiCommunicator(std::vector<MPI_Comm> comms, int rank, int size)
      : Communicator(rank, size), comms_(std::move(comms)), debug_(std::getenv("EMBER_DIST_DEBUG") != nullptr) {
    try {
      worker_ = std::thread([this] { loop(); });
    } catch (const std::system_error& e) {  // EAGAIN: the thread or process limit is reached
      for (MPI_Comm& c : comms_) MPI_Comm_free(&c);
      std::throw_with_nested(DistError(
          detail::cat_str("[dist] could not start the mpi communicator's worker thread: ", e.code().message())));
    }
  }
  ~MpiCommunicator() override {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    if (timed_out_) {  // the worker may wait in MPI for peers that never come: the job cannot go on
      std::cerr << "[dist] an mpi communicator is destroyed after a collective timed out: ending the job with "
                   "MPI_Abort"
                << std::endl;
      mpi_abort(1);
    }
    worker_.join();
    // A failed collective may still be pending on these; freeing them could wait for peers that never come.
    if (broken_.empty())
      for (MPI_Comm& c : comms_) MPI_Comm_free(&c);
  }
  std::string backend() const override { return "mpi"; }
  bool accepts(Device d) const override { return d.is_cpu(); }

 protected:
  Work submit(Op op) override {
    auto state = std::make_shared<Work::State>();
    state->keep = {op.out, op.in};
    {
      std::lock_guard lock(mutex_);
      if (!broken_.empty()) {
        state->keep.clear();
        return done(std::make_exception_ptr(DistError(unusable(op))));
      }
      // The waiter gives up at the deadline: the worker stays blocked in MPI (a blocking collective is
      // as fast as MPI makes it; nonblocking ones polled for a deadline cost 2.4x on a 7.5 MB all-reduce).
      const double limit = timeout();
      state->deadline =
          Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limit));
      state->on_timeout = [this, op, limit] {
        DistError error(timeout_message(op, limit));
        {
          std::lock_guard lock(mutex_);
          if (broken_.empty()) broken_ = error.what();
          timed_out_ = true;
        }
        mark_collective_failed();
        return std::make_exception_ptr(error);
      };
      queue_.emplace_back(std::move(op), state);
    }
    cv_.notify_all();
    return Work(std::move(state));
  }

 private:
  std::string unusable(const Op& op) const {
    return detail::cat_str("[dist::", kind_name(op.kind),
                           "] the mpi communicator is unusable after an earlier failure (", broken_, "); ",
                           describe_op(op), " was not started");
  }

  void loop() {
    for (;;) {
      std::pair<Op, std::shared_ptr<Work::State>> job;
      std::string broken;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, and everything queued has run
        job = std::move(queue_.front());
        queue_.pop_front();
        broken = broken_;
      }
      if (!broken.empty()) {  // queued before the failure: fails as every later one does
        job.second->finish(std::make_exception_ptr(DistError(unusable(job.first))));
        continue;
      }
      try {
        if (debug_) {  // a mismatch raises on every rank alike and leaves the communicator usable
          const std::string mismatch = check_signature(job.first);
          if (!mismatch.empty()) {
            job.second->finish(std::make_exception_ptr(DistError(mismatch)));
            continue;
          }
        }
        run(job.first);
        job.first.out = job.first.in = Tensor();  // the waiter may free its tensors as soon as it wakes
        job.second->finish();
      } catch (const DistError& e) {  // a timeout or an MPI failure: the peers' state is unknown now
        {
          std::lock_guard lock(mutex_);
          broken_ = e.what();
        }
        mark_collective_failed();
        job.second->finish(std::current_exception());
      } catch (...) {
        job.second->finish(std::current_exception());
      }
    }
  }

  // The communicator of a collective: all-reduces by dtype, the other kinds one each (see the constructor).
  MPI_Comm comm(const Op& op) const {
    if (op.kind == Kind::kAllReduce) return comms_[static_cast<size_t>(op.out.dtype())];
    return comms_[kNumDTypes + static_cast<size_t>(op.kind) - 1];
  }

  // An MPI failure inside a collective, named as a timeout is.
  void check(int rc, const Op& op) const {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw DistError(detail::cat_str("[dist::", kind_name(op.kind), "] MPI failed on rank ", rank(), " of ",
                                    world_size(), " in ", describe_op(op), ": ", std::string(text, len),
                                    " (did the ranks call different collectives?)"));
  }

  // EMBER_DIST_DEBUG: every rank's (kind, dtype, numel, reduce op, root) must agree. Returns the error
  // message of a mismatch, or empty.
  std::string check_signature(const Op& op) {
    const Tensor& t = op.in.defined() ? op.in : op.out;
    int64_t mine[5] = {static_cast<int64_t>(op.kind), t.defined() ? static_cast<int64_t>(t.dtype()) : -1,
                       t.defined() ? t.numel() : 0, static_cast<int64_t>(op.reduce), op.root};
    std::vector<int64_t> all(5 * static_cast<size_t>(world_size()));
    check(MPI_Allgather(mine, 5, MPI_INT64_T, all.data(), 5, MPI_INT64_T, comms_.back()), op);
    auto text = [](const int64_t* s) {
      return describe_op(static_cast<Kind>(s[0]), static_cast<int>(s[1]), s[2], static_cast<ReduceOp>(s[3]),
                         static_cast<int>(s[4]));
    };
    for (int r = 0; r < world_size(); ++r) {
      const int64_t* o = &all[5 * static_cast<size_t>(r)];
      if (!std::equal(mine, mine + 5, o))
        return detail::cat_str("[dist::", kind_name(op.kind), "] EMBER_DIST_DEBUG: rank ", rank(), " called ",
                               text(mine), " but rank ", r, " called ", text(o));
    }
    return {};
  }

  void run(const Op& op) {
    switch (op.kind) {
      case Kind::kAllReduce:
        return all_reduce(op);
      case Kind::kBroadcast: {
        char* p = static_cast<char*>(op.out.raw_data());
        const int64_t n = static_cast<int64_t>(op.out.nbytes());
        for (int64_t i = 0; i < n; i += kChunk) {
          check(MPI_Bcast(p + i, static_cast<int>(std::min(kChunk, n - i)), MPI_BYTE, op.root, comm(op)), op);
        }
        return;
      }
      case Kind::kAllGather: {
        const int64_t n = static_cast<int64_t>(op.in.nbytes());
        EMBER_CHECK(n <= INT_MAX, ValueError, "[dist::all_gather] the mpi backend gathers at most 2 GiB per rank, got ",
                    ember::describe(op.in));
        check(MPI_Allgather(op.in.raw_data(), static_cast<int>(n), MPI_BYTE, op.out.raw_data(), static_cast<int>(n),
                            MPI_BYTE, comm(op)),
              op);
        return;
      }
      case Kind::kReduceScatter:
        return reduce_scatter(op);
      case Kind::kBarrier:
        check(MPI_Barrier(comm(op)), op);
        return;
    }
  }

  void all_reduce(const Op& op) {
    const Tensor& t = op.out;
    const int64_t n = t.numel();
    std::vector<float> staged;
    void* data = t.raw_data();
    DType dt = t.dtype();
    if (is_half(dt)) {
      staged = widen(t);
      data = staged.data();
      dt = kF32;
    }
    const size_t item = itemsize(dt);
    for (int64_t i = 0; i < n; i += kChunk) {
      check(MPI_Allreduce(MPI_IN_PLACE, static_cast<char*>(data) + i * item, static_cast<int>(std::min(kChunk, n - i)),
                          mpi_type(dt), mpi_op(op.reduce, dt), comm(op)),
            op);
    }
    if (op.reduce == ReduceOp::kAvg) divide(data, dt, n, world_size());
    if (!staged.empty()) narrow_into(t, staged);
  }

  void reduce_scatter(const Op& op) {
    const int64_t n = op.out.numel();
    EMBER_CHECK(n <= INT_MAX, ValueError,
                "[dist::reduce_scatter] the mpi backend scatters at most 2^31 - 1 elements "
                "per rank, got ",
                ember::describe(op.out));
    std::vector<float> in_staged, out_staged;
    const void* in = op.in.raw_data();
    void* out = op.out.raw_data();
    DType dt = op.out.dtype();
    if (is_half(dt)) {
      in_staged = widen(op.in);
      out_staged.resize(static_cast<size_t>(n));
      in = in_staged.data();
      out = out_staged.data();
      dt = kF32;
    }
    check(MPI_Reduce_scatter_block(in, out, static_cast<int>(n), mpi_type(dt), mpi_op(op.reduce, dt), comm(op)), op);
    if (op.reduce == ReduceOp::kAvg) divide(out, dt, n, world_size());
    if (!out_staged.empty()) narrow_into(op.out, out_staged);
  }

  std::vector<MPI_Comm> comms_;
  bool debug_;
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::pair<Op, std::shared_ptr<Work::State>>> queue_;
  bool stop_ = false;
  bool timed_out_ = false;  // a waiter gave up on a collective the worker may still be blocked in
  std::string broken_;      // the failure that made this communicator unusable (empty: none)
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "init");
    g_mpi_owned = true;
    // Open MPI reports a failed collective to MPI_COMM_WORLD's handler, whose
    // default ends the job at once: return it, so it becomes a DistError naming the collective.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    EMBER_CHECK(provided >= MPI_THREAD_SERIALIZED, DistError, "[dist::init] the MPI library gives thread level ",
                provided, "; Ember needs MPI_THREAD_SERIALIZED");
  }
  std::vector<MPI_Comm> comms(kNumDTypes + 5);  // see MpiCommunicator's constructor
  for (MPI_Comm& comm : comms) {
    check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "init");
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(comms[0], &rank);
  MPI_Comm_size(comms[0], &size);
  return std::make_unique<MpiCommunicator>(std::move(comms), rank, size);
}

void mpi_abort(int code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
}

void mpi_finalize() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (g_mpi_owned && !finalized) MPI_Finalize();
  g_mpi_owned = false;
}

}  // namespace ember::dist
