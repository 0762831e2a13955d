// TrainerOptions::profiler (Lightning's profiler="simple" / PyTorchProfiler): the profiler of one run
// (fit, validate, test or predict), started when it starts, stepped after each training batch (fit) or
// each batch of the loop (the others), reported when it ends.
#pragma once
#include <memory>
#include <string>

#include "core/profiler.hpp"

namespace ember::train {

class ProfilerRun {
 public:
  // kind: "simple" (Trainer phases and hooks only) or "ops" (also every op, on scheduled steps); a user's
  // instance is run as it is configured. Null when kind is "" and there is no instance.
  static std::shared_ptr<ProfilerRun> make(const std::string& kind, std::shared_ptr<profiler::Profiler> user);
  explicit ProfilerRun(std::shared_ptr<profiler::Profiler> p, std::string kind);
  ~ProfilerRun();  // stops the profiler (a failed fit reports nothing)
  ProfilerRun(const ProfilerRun&) = delete;
  ProfilerRun& operator=(const ProfilerRun&) = delete;

  void step() { profiler_->step(); }
  // Stops, prints the report (print) and writes <dir>/<stage>-profiler.txt, plus <dir>/<stage>-trace.json
  // when ops were recorded. An empty dir writes nothing.
  void finish(const std::string& dir, const std::string& stage, bool print);
  const profiler::Profiler& profiler() const { return *profiler_; }

 private:
  std::shared_ptr<profiler::Profiler> profiler_;
  std::string kind_;
};

}  // namespace ember::train
