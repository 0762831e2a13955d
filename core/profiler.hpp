// ember::profiler (torch.profiler): records every op's forward and backward (name, input shapes, dtypes,
// device; CUDA ops also timed with events on their stream) and named ranges (record_function, the
// Trainer's phases), and writes a Chrome trace (chrome://tracing, Perfetto) and top-N tables.
// With no profiler running, an op pays one relaxed load and one predictable branch (OpRecord below).
#pragma once
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

namespace ember {
class Tensor;
}

namespace ember::profiler {

namespace detail {
inline constexpr uint8_t kRanges = 1, kOps = 2;
// What is recorded now (bits above): 0 when no profiler is running, or between its scheduled steps.
inline std::atomic<uint8_t> g_mode{0};
}  // namespace detail

inline bool ranges_on() { return detail::g_mode.load(std::memory_order_relaxed) != 0; }
inline bool ops_on() { return (detail::g_mode.load(std::memory_order_relaxed) & detail::kOps) != 0; }

// Nanoseconds on the steady clock (what events are stamped with).
int64_t now_ns();

enum class Category : uint8_t { kOp, kBackward, kRange };

struct Event {
  std::string name;
  Category category = Category::kRange;
  uint32_t tid = 0;  // a small per-thread number (1 = the first thread that recorded)
  int64_t start_ns = 0, end_ns = -1;
  std::vector<std::vector<int64_t>> shapes;  // ops: one per input (empty: an undefined input)
  std::vector<std::string> dtypes;
  std::string device;
  double cuda_us = -1;        // CUDA ops: the time between the events around it on its stream
  double cuda_start_us = -1;  // ... and its start, relative to the profiler's start (approximate)
  double dur_us() const { return double(end_ns - start_ns) / 1e3; }
};

// torch.profiler.schedule: skip `skip_first` steps, then cycles of `wait` idle steps, `warmup` steps
// (not recorded here either) and `active` recorded steps; `repeat` cycles (0: forever).
struct Schedule {
  int64_t wait = 0, warmup = 0, active = 1, repeat = 0, skip_first = 0;
  enum class Action { kNone, kWarmup, kRecord };
  Action action(int64_t step) const;
};

struct ProfilerOptions {
  bool record_ops = true;  // false: only ranges (record_function, Trainer phases): the "simple" profiler
  bool use_schedule = false;
  Schedule schedule = {};
};

// One row of a table: events of one name, aggregated.
struct Stat {
  std::string name;
  Category category = Category::kRange;
  int64_t calls = 0;
  double total_us = 0, self_us = 0, cuda_us = 0;
  std::string shapes;  // the first call's input shapes (ops)
};

// At most one profiler runs at a time, recording every thread's ops and ranges between start() and
// stop() (and only on the active steps of its schedule, if it has one).
class Profiler {
 public:
  explicit Profiler(ProfilerOptions options = {});
  ~Profiler();  // stops it if running
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  void start();  // clears earlier events; a ValueError if another profiler is running
  void stop();
  bool running() const { return running_; }
  // Ends a step of the schedule (the Trainer calls it after each training batch).
  void step();
  int64_t step_num() const { return step_; }

  const ProfilerOptions& options() const { return options_; }
  // The finished events, in start order per thread (after stop(); while running, a copy so far).
  std::vector<Event> events() const;
  double wall_us() const;  // from start() to stop() (or now)

  // Rows by name with self time (total minus the time of events nested in it on its thread).
  std::vector<Stat> key_averages() const;
  // torch's prof.key_averages().table(sort_by, row_limit): sort_by "self" or "total" (CPU time), or
  // "cuda" (the device time of CUDA ops, torch's "cuda_time_total").
  std::string table(const std::string& sort_by = "self", int row_limit = 20) const;
  // Lightning's SimpleProfiler report: each range name with its mean, calls, total and percent of the run.
  std::string phase_table(const std::string& title = "Profiler Report") const;
  // Chrome trace JSON (traceEvents of "X" complete events, ts/dur in microseconds).
  std::string chrome_trace() const;
  void export_chrome_trace(const std::string& path) const;

 private:
  void apply_schedule();
  ProfilerOptions options_;
  bool running_ = false;
  int64_t step_ = 0;
  int64_t start_ns_ = 0, stop_ns_ = 0;
  std::vector<Event> done_;  // collected at stop()
};

// Low-level recording, used by the scopes below (events go to the running profiler, if any).
namespace detail {
struct Open {  // an event begun and not yet ended: its place in the session's buffer
  int64_t slot = -1;
  uint64_t session = 0;
};
Open begin_range(std::string name);
Open begin_op(const char* name, const char* suffix, Category category, std::span<const Tensor* const> inputs);
Open begin_op(const char* name, const char* suffix, Category category, std::span<const Tensor> inputs);
void end(Open& open);
}  // namespace detail

// A range from start_ns (now_ns()) to now, recorded after the fact (the time the Trainer waited for a batch).
void record_range(const char* name, int64_t start_ns);

// A named range around a block, as torch.profiler.record_function: `profiler::RecordFunction r("fwd");`
class RecordFunction {
 public:
  explicit RecordFunction(const char* name) {
    if (ranges_on()) [[unlikely]]
      open_ = detail::begin_range(name);
  }
  explicit RecordFunction(const std::string& name) {
    if (ranges_on()) [[unlikely]]
      open_ = detail::begin_range(name);
  }
  ~RecordFunction() {
    if (open_.slot >= 0) [[unlikely]]
      detail::end(open_);
  }
  RecordFunction(const RecordFunction&) = delete;
  RecordFunction& operator=(const RecordFunction&) = delete;

 private:
  detail::Open open_;
};
using record_function = RecordFunction;  // torch's spelling

// What an op builder opens first: records the op with its inputs while ops are being profiled.
class OpRecord {
 public:
  explicit OpRecord(const char* name) : OpRecord(name, std::span<const Tensor>{}) {}  // a creation op
  OpRecord(const char* name, std::initializer_list<const Tensor*> inputs) {
    if (ops_on()) [[unlikely]]
      open_ = detail::begin_op(name, nullptr, Category::kOp, {inputs.begin(), inputs.size()});
  }
  OpRecord(const char* name, std::span<const Tensor> inputs) {
    if (ops_on()) [[unlikely]]
      open_ = detail::begin_op(name, nullptr, Category::kOp, inputs);
  }
  // A backward node: "<name>_backward" over the gradients it receives.
  OpRecord(const char* name, const char* suffix, std::span<const Tensor> grads) {
    if (ops_on()) [[unlikely]]
      open_ = detail::begin_op(name, suffix, Category::kBackward, grads);
  }
  ~OpRecord() {
    if (open_.slot >= 0) [[unlikely]]
      detail::end(open_);
  }
  OpRecord(const OpRecord&) = delete;
  OpRecord& operator=(const OpRecord&) = delete;

 private:
  detail::Open open_;
};

}  // namespace ember::profiler
