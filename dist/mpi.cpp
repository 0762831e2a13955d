// The MPI backend for CPU tensors. One worker thread per communicator makes every MPI call in
// submission order, so an async collective overlaps the caller's computation (DDP's gradient buckets
// reduce while backward goes on) and MPI needs only MPI_THREAD_SERIALIZED. f16 and bf16, which MPI lacks,
// reduce in f32. EMBER_DIST_DEBUG=1 first compares every collective's signature across ranks, so a
// mismatch raises an error naming both sides instead of hanging or mixing data.
#include "dist/mpi.hpp"

#define OMPI_SKIP_MPICXX 1  // the C API only (MPI's C++ bindings are deprecated and warn)
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <climits>
#include <cstdlib>
#include <deque>
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

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, int rank, int size)
      : Communicator(rank, size), comm_(comm), debug_(std::getenv("EMBER_DIST_DEBUG") != nullptr) {
    worker_ = std::thread([this] { loop(); });
  }
  ~MpiCommunicator() override {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
    MPI_Comm_free(&comm_);
  }
  std::string backend() const override { return "mpi"; }
  bool accepts(Device d) const override { return d.is_cpu(); }

 protected:
  Work submit(Op op) override {
    auto state = std::make_shared<Work::State>();
    state->keep = {op.out, op.in};
    {
      std::lock_guard lock(mutex_);
      queue_.emplace_back(std::move(op), state);
    }
    cv_.notify_all();
    return Work(std::move(state));
  }

 private:
  void loop() {
    for (;;) {
      std::pair<Op, std::shared_ptr<Work::State>> job;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, and everything queued has run
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      try {
        run(job.first);
        job.second->finish();
      } catch (...) {
        job.second->finish(std::current_exception());
      }
    }
  }

  static const char* kind_name(Kind k) {
    constexpr const char* names[] = {"all_reduce", "broadcast", "all_gather", "reduce_scatter", "barrier"};
    return names[static_cast<int>(k)];
  }

  // EMBER_DIST_DEBUG: every rank's (kind, dtype, numel, reduce op, root) must agree.
  void check_signature(const Op& op) {
    const Tensor& t = op.in.defined() ? op.in : op.out;
    int64_t mine[5] = {static_cast<int64_t>(op.kind), t.defined() ? static_cast<int64_t>(t.dtype()) : -1,
                       t.defined() ? t.numel() : 0, static_cast<int64_t>(op.reduce), op.root};
    std::vector<int64_t> all(5 * static_cast<size_t>(world_size()));
    check_mpi(MPI_Allgather(mine, 5, MPI_INT64_T, all.data(), 5, MPI_INT64_T, comm_), "debug");
    for (int r = 0; r < world_size(); ++r) {
      const int64_t* o = &all[5 * static_cast<size_t>(r)];
      bool same = std::equal(mine, mine + 5, o);
      EMBER_CHECK(same, DistError, "[dist::", kind_name(op.kind), "] EMBER_DIST_DEBUG: rank ", rank(), " called ",
                  kind_name(op.kind), " on ", mine[2], " elements of dtype #", mine[1], " (op ", mine[3], ", root ",
                  mine[4], ") but rank ", r, " called ", kind_name(static_cast<Kind>(o[0])), " on ", o[2],
                  " elements of dtype #", o[1], " (op ", o[3], ", root ", o[4], ")");
    }
  }

  void run(const Op& op) {
    if (debug_) check_signature(op);
    switch (op.kind) {
      case Kind::kAllReduce:
        return all_reduce(op);
      case Kind::kBroadcast: {
        char* p = static_cast<char*>(op.out.raw_data());
        const int64_t n = static_cast<int64_t>(op.out.nbytes());
        for (int64_t i = 0; i < n; i += kChunk)
          check_mpi(MPI_Bcast(p + i, static_cast<int>(std::min(kChunk, n - i)), MPI_BYTE, op.root, comm_), "broadcast");
        return;
      }
      case Kind::kAllGather: {
        const int64_t n = static_cast<int64_t>(op.in.nbytes());
        EMBER_CHECK(n <= INT_MAX, ValueError, "[dist::all_gather] the mpi backend gathers at most 2 GiB per rank, got ",
                    describe(op.in));
        check_mpi(MPI_Allgather(op.in.raw_data(), static_cast<int>(n), MPI_BYTE, op.out.raw_data(), static_cast<int>(n),
                                MPI_BYTE, comm_),
                  "all_gather");
        return;
      }
      case Kind::kReduceScatter:
        return reduce_scatter(op);
      case Kind::kBarrier:
        check_mpi(MPI_Barrier(comm_), "barrier");
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
    for (int64_t i = 0; i < n; i += kChunk)
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, static_cast<char*>(data) + i * item,
                              static_cast<int>(std::min(kChunk, n - i)), mpi_type(dt), mpi_op(op.reduce, dt), comm_),
                "all_reduce");
    if (op.reduce == ReduceOp::kAvg) divide(data, dt, n, world_size());
    if (!staged.empty()) narrow_into(t, staged);
  }

  void reduce_scatter(const Op& op) {
    const int64_t n = op.out.numel();
    EMBER_CHECK(n <= INT_MAX, ValueError,
                "[dist::reduce_scatter] the mpi backend scatters at most 2^31 - 1 elements "
                "per rank, got ",
                describe(op.out));
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
    check_mpi(MPI_Reduce_scatter_block(in, out, static_cast<int>(n), mpi_type(dt), mpi_op(op.reduce, dt), comm_),
              "reduce_scatter");
    if (op.reduce == ReduceOp::kAvg) divide(out, dt, n, world_size());
    if (!out_staged.empty()) narrow_into(op.out, out_staged);
  }

  MPI_Comm comm_;
  bool debug_;
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::pair<Op, std::shared_ptr<Work::State>>> queue_;
  bool stop_ = false;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "init");
    g_mpi_owned = true;
    EMBER_CHECK(provided >= MPI_THREAD_SERIALIZED, DistError, "[dist::init] the MPI library gives thread level ",
                provided, "; Ember needs MPI_THREAD_SERIALIZED");
  }
  MPI_Comm comm;
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "init");
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  return std::make_unique<MpiCommunicator>(comm, rank, size);
}

void mpi_finalize() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (g_mpi_owned && !finalized) MPI_Finalize();
  g_mpi_owned = false;
}

}  // namespace ember::dist
