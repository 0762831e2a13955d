// The profiler's recording (one session buffer under a mutex, touched only while recording), the
// nesting that gives self time, and its outputs: Chrome trace JSON, torch's op table, Lightning's report.
#include "core/profiler.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "core/error.hpp"
#include "core/graph_capture.hpp"
#include "core/stream.hpp"
#include "core/tensor.hpp"

namespace ember::profiler {
namespace {

// A CUDA op's events on its stream; `ended` once the end event is recorded.
struct CudaTiming {
  ember::Event start, end;
  bool ended = false;
  explicit CudaTiming(Device d) : start(d, true), end(d, true) {}
};

struct Session {
  std::mutex mu;
  uint64_t id = 0;  // bumped at each start and stop: scopes of an older session end in silence
  bool running = false;
  std::vector<Event> events;
  std::vector<std::shared_ptr<CudaTiming>> cuda;  // parallel to events; null for CPU ones
  // Per CUDA device: an event recorded at the first op and the host time then, to place GPU times.
  std::map<int, std::pair<std::shared_ptr<ember::Event>, int64_t>> base;
};

Session& session() {
  static Session s;
  return s;
}

uint32_t thread_number() {
  static std::atomic<uint32_t> next{1};
  thread_local uint32_t tid = next.fetch_add(1);
  return tid;
}

std::string format_us(double us) {
  char buf[32];
  if (us >= 1e6)
    std::snprintf(buf, sizeof buf, "%.3fs", us / 1e6);
  else if (us >= 1e3)
    std::snprintf(buf, sizeof buf, "%.3fms", us / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.3fus", us);
  return buf;
}

std::string shapes_text(const std::vector<std::vector<int64_t>>& shapes) {
  std::string s = "[";
  for (size_t i = 0; i < shapes.size(); ++i) {
    s += i ? ", [" : "[";
    for (size_t d = 0; d < shapes[i].size(); ++d) s += (d ? ", " : "") + std::to_string(shapes[i][d]);
    s += "]";
  }
  return s + "]";
}

const Tensor* as_ptr(const Tensor& t) { return &t; }
const Tensor* as_ptr(const Tensor* t) { return t; }

template <class It>
detail::Open push_op(const char* name, const char* suffix, Category category, It first, It last) {
  Event e;
  e.name = suffix ? std::string(name) + suffix : std::string(name);
  e.category = category;
  e.tid = thread_number();
  std::optional<Device> device;
  for (It it = first; it != last; ++it) {
    const Tensor* t = as_ptr(*it);
    if (t == nullptr || !t->defined()) {
      e.shapes.emplace_back();
      e.dtypes.emplace_back("");
      continue;
    }
    e.shapes.emplace_back(t->shape().begin(), t->shape().end());
    e.dtypes.emplace_back(dtype_name(t->dtype()));
    if (!device) device = t->device();
  }
  if (device) e.device = device->str();
  std::shared_ptr<CudaTiming> timing;
  Session& s = session();
  std::lock_guard lock(s.mu);
  if (!s.running || !ops_on()) return {};
  // While a CUDA graph captures, the op's work runs at replays: its events could not be timed.
  if (device && device->is_cuda() && !graph::is_capturing(device->index)) {
    // Both events go on the stream the op's work is queued on: the current stream of its device.
    auto& base = s.base[device->index];
    if (!base.first) {
      base.first = std::make_shared<ember::Event>(*device, true);
      base.first->record();
      base.second = now_ns();
    }
    timing = std::make_shared<CudaTiming>(*device);
    timing->start.record();
  }
  s.events.push_back(std::move(e));
  s.cuda.push_back(std::move(timing));
  s.events.back().start_ns = now_ns();
  return {static_cast<int64_t>(s.events.size() - 1), s.id};
}

constexpr int64_t kGpuTrack = 1000000;  // tids of the GPU tracks, apart from the threads'

}  // namespace

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Schedule::Action Schedule::action(int64_t step) const {
  if (step < skip_first) return Action::kNone;
  step -= skip_first;
  const int64_t cycle = wait + warmup + active;
  if (cycle <= 0 || (repeat > 0 && step / cycle >= repeat)) return Action::kNone;
  const int64_t at = step % cycle;
  if (at < wait) return Action::kNone;
  return at < wait + warmup ? Action::kWarmup : Action::kRecord;
}

// ---------------------------------------------------------------- recording

namespace detail {

Open begin_range(std::string name) {
  Event e;
  e.name = std::move(name);
  e.category = Category::kRange;
  e.tid = thread_number();
  Session& s = session();
  std::lock_guard lock(s.mu);
  if (!s.running || !ranges_on()) return {};
  s.events.push_back(std::move(e));
  s.cuda.emplace_back();
  s.events.back().start_ns = now_ns();
  return {static_cast<int64_t>(s.events.size() - 1), s.id};
}

Open begin_op(const char* name, const char* suffix, Category category, std::span<const Tensor* const> inputs) {
  return push_op(name, suffix, category, inputs.begin(), inputs.end());
}

Open begin_op(const char* name, const char* suffix, Category category, std::span<const Tensor> inputs) {
  return push_op(name, suffix, category, inputs.begin(), inputs.end());
}

void end(Open& open) {
  const int64_t t = now_ns();
  Session& s = session();
  std::shared_ptr<CudaTiming> timing;
  {
    std::lock_guard lock(s.mu);
    if (s.id != open.session) return;  // the profiler stopped meanwhile (it closed the event itself)
    s.events[open.slot].end_ns = t;
    timing = s.cuda[open.slot];
    if (timing) {
      timing->end.record();  // after the op's work, on the same current stream
      timing->ended = true;
    }
  }
  open.slot = -1;
}

}  // namespace detail

void record_range(const char* name, int64_t start_ns) {
  if (!ranges_on()) return;
  detail::Open o = detail::begin_range(name);
  if (o.slot < 0) return;
  const int64_t t = now_ns();
  Session& s = session();
  std::lock_guard lock(s.mu);
  if (s.id != o.session) return;
  s.events[o.slot].start_ns = start_ns;
  s.events[o.slot].end_ns = t;
}

// ---------------------------------------------------------------- Profiler

Profiler::Profiler(ProfilerOptions options) : options_(options) {}

Profiler::~Profiler() {
  if (running_) stop();
}

void Profiler::apply_schedule() {
  const bool on = !options_.use_schedule || options_.schedule.action(step_) == Schedule::Action::kRecord;
  const uint8_t mode = on ? (options_.record_ops ? detail::kRanges | detail::kOps : detail::kRanges) : 0;
  detail::g_mode.store(mode, std::memory_order_relaxed);
}

void Profiler::start() {
  Session& s = session();
  std::lock_guard lock(s.mu);
  EMBER_CHECK(!s.running, ValueError, "[profiler] another profiler is already running: stop it first");
  ++s.id;
  s.running = true;
  s.events.clear();
  s.cuda.clear();
  s.base.clear();
  done_.clear();
  running_ = true;
  step_ = 0;
  start_ns_ = now_ns();
  apply_schedule();
}

void Profiler::step() {
  if (!running_) return;
  ++step_;
  std::lock_guard lock(session().mu);
  apply_schedule();
}

void Profiler::stop() {
  if (!running_) return;
  Session& s = session();
  std::vector<std::shared_ptr<CudaTiming>> cuda;
  decltype(s.base) base;
  {
    std::lock_guard lock(s.mu);
    detail::g_mode.store(0, std::memory_order_relaxed);
    stop_ns_ = now_ns();
    ++s.id;
    s.running = false;
    done_ = std::move(s.events);
    cuda = std::move(s.cuda);
    base = std::move(s.base);
    s.events.clear();
    s.cuda.clear();
  }
  running_ = false;
  for (size_t i = 0; i < done_.size(); ++i) {
    Event& e = done_[i];
    if (e.end_ns < 0) e.end_ns = stop_ns_;  // still open at stop: closed there
    const auto& t = cuda[i];
    if (!t || !t->ended) continue;
    t->end.synchronize();
    e.cuda_us = t->start.elapsed_ms(t->end) * 1e3;
    auto b = base.find(t->start.device().index);
    if (b != base.end())
      e.cuda_start_us = double(b->second.second - start_ns_) / 1e3 + b->second.first->elapsed_ms(t->start) * 1e3;
  }
  // Start order per thread, a parent before the children it contains.
  std::stable_sort(done_.begin(), done_.end(), [](const Event& a, const Event& b) {
    if (a.tid != b.tid) return a.tid < b.tid;
    if (a.start_ns != b.start_ns) return a.start_ns < b.start_ns;
    return a.end_ns > b.end_ns;
  });
}

std::vector<Event> Profiler::events() const {
  if (!running_) return done_;
  Session& s = session();
  std::lock_guard lock(s.mu);
  return s.events;
}

double Profiler::wall_us() const { return double((running_ ? now_ns() : stop_ns_) - start_ns_) / 1e3; }

std::vector<Stat> Profiler::key_averages() const {
  const std::vector<Event> evs = events();
  // Self time: an event's duration less that of the events directly nested in it on its thread.
  std::vector<double> child_us(evs.size(), 0.0);
  std::vector<size_t> stack;
  for (size_t i = 0; i < evs.size(); ++i) {
    const Event& e = evs[i];
    while (!stack.empty() && (evs[stack.back()].tid != e.tid || evs[stack.back()].end_ns <= e.start_ns))
      stack.pop_back();
    if (!stack.empty() && e.end_ns <= evs[stack.back()].end_ns) child_us[stack.back()] += e.dur_us();
    stack.push_back(i);
  }
  std::map<std::string, Stat> rows;
  std::vector<std::string> order;
  for (size_t i = 0; i < evs.size(); ++i) {
    const Event& e = evs[i];
    auto [it, fresh] = rows.try_emplace(e.name);
    Stat& r = it->second;
    if (fresh) {
      r.name = e.name;
      r.category = e.category;
      if (e.category != Category::kRange) r.shapes = shapes_text(e.shapes);
      order.push_back(e.name);
    }
    ++r.calls;
    r.total_us += e.dur_us();
    r.self_us += std::max(0.0, e.dur_us() - child_us[i]);
    if (e.cuda_us >= 0) r.cuda_us += e.cuda_us;
  }
  std::vector<Stat> out;
  for (const std::string& n : order) out.push_back(rows[n]);
  return out;
}

std::string Profiler::table(const std::string& sort_by, int row_limit) const {
  EMBER_CHECK(sort_by == "self" || sort_by == "total" || sort_by == "cuda", ValueError,
              "[profiler] table sorts by \"self\", \"total\" or \"cuda\", got \"", sort_by, "\"");
  std::vector<Stat> rows = key_averages();
  double self_sum = 0;
  for (const Stat& r : rows) self_sum += r.self_us;
  auto key = [&](const Stat& r) { return sort_by == "self" ? r.self_us : sort_by == "total" ? r.total_us : r.cuda_us; };
  std::stable_sort(rows.begin(), rows.end(), [&](const Stat& a, const Stat& b) { return key(a) > key(b); });
  if (row_limit >= 0 && rows.size() > size_t(row_limit)) rows.resize(row_limit);
  size_t w = 4;
  for (const Stat& r : rows) w = std::max(w, std::min<size_t>(r.name.size(), 60));
  auto pct = [&](double us) {
    char b[16];
    std::snprintf(b, sizeof b, "%.2f%%", self_sum > 0 ? 100.0 * us / self_sum : 0.0);
    return std::string(b);
  };
  std::ostringstream os;
  char line[512];
  std::string rule(w, '-');
  rule += "  ------------  ------------  ------------  ------------  ------------  ------------  ----------  ";
  rule += std::string(30, '-');
  os << rule << "\n";
  std::snprintf(line, sizeof line, "%*s  %12s  %12s  %12s  %12s  %12s  %12s  %10s  %s\n", int(w), "Name", "Self CPU %",
                "Self CPU", "CPU total %", "CPU total", "CPU time avg", "CUDA total", "# of Calls", "Input Shapes");
  os << line << rule << "\n";
  for (const Stat& r : rows) {
    std::snprintf(line, sizeof line, "%*s  %12s  %12s  %12s  %12s  %12s  %12s  %10lld  %s\n", int(w),
                  r.name.substr(0, 60).c_str(), pct(r.self_us).c_str(), format_us(r.self_us).c_str(),
                  pct(r.total_us).c_str(), format_us(r.total_us).c_str(), format_us(r.total_us / r.calls).c_str(),
                  r.cuda_us > 0 ? format_us(r.cuda_us).c_str() : "-", static_cast<long long>(r.calls),
                  r.shapes.substr(0, 60).c_str());
    os << line;
  }
  os << rule << "\nSelf CPU time total: " << format_us(self_sum) << "\n";
  return os.str();
}

std::string Profiler::phase_table(const std::string& title) const {
  std::vector<Stat> rows;
  for (Stat& r : key_averages())
    if (r.category == Category::kRange) rows.push_back(std::move(r));
  std::stable_sort(rows.begin(), rows.end(), [](const Stat& a, const Stat& b) { return a.total_us > b.total_us; });
  const double wall = wall_us();
  int64_t calls = 0;
  size_t w = 40;
  for (const Stat& r : rows) {
    calls += r.calls;
    w = std::max(w, r.name.size());
  }
  std::ostringstream os;
  char line[512];
  const std::string rule(w + 88, '-');
  os << title << "\n\n" << rule << "\n";
  std::snprintf(line, sizeof line, "|  %-*s  |  %-18s  |  %-10s  |  %-15s  |  %-13s  |\n", int(w), "Action",
                "Mean duration (s)", "Num calls", "Total time (s)", "Percentage %");
  os << line << rule << "\n";
  std::snprintf(line, sizeof line, "|  %-*s  |  %-18s  |  %-10lld  |  %-15.5g  |  %-13s  |\n", int(w), "Total", "-",
                static_cast<long long>(calls), wall / 1e6, "100 %");
  os << line << rule << "\n";
  for (const Stat& r : rows) {
    char p[24];
    std::snprintf(p, sizeof p, "%.4g", wall > 0 ? 100.0 * r.total_us / wall : 0.0);
    std::snprintf(line, sizeof line, "|  %-*s  |  %-18.5g  |  %-10lld  |  %-15.5g  |  %-13s  |\n", int(w),
                  r.name.c_str(), r.total_us / r.calls / 1e6, static_cast<long long>(r.calls), r.total_us / 1e6, p);
    os << line;
  }
  os << rule << "\n";
  return os.str();
}

std::string Profiler::chrome_trace() const {
  using nlohmann::json;
  const std::vector<Event> evs = events();
  const int pid = static_cast<int>(::getpid());
  json list = json::array();
  list.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", pid}, {"tid", 0}, {"args", {{"name", "ember"}}}});
  std::map<uint32_t, bool> threads;
  std::map<std::string, int64_t> gpu_tracks;  // one track per CUDA device: its tid
  for (const Event& e : evs) {
    threads[e.tid] = true;
    const char* cat = e.category == Category::kOp         ? "cpu_op"
                      : e.category == Category::kBackward ? "backward"
                                                          : "user_annotation";
    json ev = {{"name", e.name},    {"cat", cat}, {"ph", "X"},   {"ts", double(e.start_ns - start_ns_) / 1e3},
               {"dur", e.dur_us()}, {"pid", pid}, {"tid", e.tid}};
    if (e.category != Category::kRange) {
      ev["args"] = {{"Input Dims", e.shapes}, {"Input type", e.dtypes}, {"Device", e.device}};
      if (e.cuda_us >= 0) ev["args"]["cuda_time_us"] = e.cuda_us;
    }
    list.push_back(std::move(ev));
    if (e.cuda_us >= 0 && e.cuda_start_us >= 0) {  // its time on the device, on a GPU track
      auto it = gpu_tracks.try_emplace(e.device, kGpuTrack + static_cast<int64_t>(gpu_tracks.size())).first;
      list.push_back({{"name", e.name},
                      {"cat", "kernel"},
                      {"ph", "X"},
                      {"ts", e.cuda_start_us},
                      {"dur", e.cuda_us},
                      {"pid", pid},
                      {"tid", it->second},
                      {"args", {{"Device", e.device}}}});
    }
  }
  for (const auto& [tid, _] : threads)
    list.push_back({{"name", "thread_name"},
                    {"ph", "M"},
                    {"pid", pid},
                    {"tid", tid},
                    {"args", {{"name", "thread " + std::to_string(tid)}}}});
  for (const auto& [device, tid] : gpu_tracks)
    list.push_back(
        {{"name", "thread_name"}, {"ph", "M"}, {"pid", pid}, {"tid", tid}, {"args", {{"name", "GPU " + device}}}});
  json doc = {{"traceEvents", std::move(list)}, {"displayTimeUnit", "ms"}};
  return doc.dump();
}

void Profiler::export_chrome_trace(const std::string& path) const {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  EMBER_CHECK(f.good(), IOError, "[profiler] cannot write the trace to '", path, "'");
  f << chrome_trace();
  EMBER_CHECK(f.good(), IOError, "[profiler] writing the trace to '", path, "' failed");
}

}  // namespace ember::profiler
