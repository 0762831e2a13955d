// Shared pieces of the Ember workloads: registration with a peak-memory probe, and the training-step runner.
// A workload's name is the same string in bench/reference/<family>.py, where its PyTorch/JAX twins live.
#pragma once
#include <benchmark/benchmark.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <string>

#include "core/allocator.hpp"

namespace bench {

// One field of /proc/self/status in KiB (0 where there is none).
inline long status_kib(const std::string& key) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(key.size()));
  return 0;
}

// Resident memory growth of this process from construction to the high-water mark: writing 5 to
// /proc/self/clear_refs resets the kernel's VmHWM to the current size, so earlier peaks don't count.
class PeakMemory {
 public:
  PeakMemory() {
    std::ofstream("/proc/self/clear_refs") << "5";
    baseline_kib_ = status_kib("VmRSS:");
  }
  double megabytes() const { return static_cast<double>(status_kib("VmHWM:") - baseline_kib_) / 1024.0; }

 private:
  long baseline_kib_ = 0;
};

// Registers fn under `name` with real time in milliseconds; the counter peak_mb is the resident growth
// over a run (setup included), what bench/compare reports as peak memory. Google Benchmark calls fn
// several times; the allocator's cache is emptied first and the largest peak kept.
template <class Fn>
benchmark::internal::Benchmark* workload(const char* name, Fn fn) {
  auto peak = std::make_shared<double>(0.0);
  return benchmark::RegisterBenchmark(name,
                                      [fn, peak](benchmark::State& st) {
                                        ember::empty_cache();
                                        PeakMemory mem;
                                        fn(st);
                                        *peak = std::max(*peak, mem.megabytes());
                                        st.counters["peak_mb"] = *peak;
                                      })
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

// A training step after one warm-up call (allocator caches, optimizer state).
template <class Step>
void run_steps(benchmark::State& st, Step&& step) {
  step();
  for (auto _ : st) step();
}

}  // namespace bench

// WORKLOAD(fn)->Arg(128); registers the function fn as the workload "fn".
#define WORKLOAD(fn) \
  [[maybe_unused]] static benchmark::internal::Benchmark* const fn##_workload = bench::workload(#fn, fn)
