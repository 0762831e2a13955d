// The Trainer's profiler run: which profiler each TrainerOptions::profiler value means, and its report.
#include "train/profilers/trainer_profiler.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "core/error.hpp"

namespace ember::train {

std::shared_ptr<ProfilerRun> ProfilerRun::make(const std::string& kind, std::shared_ptr<profiler::Profiler> user) {
  if (user) return std::make_shared<ProfilerRun>(std::move(user), "user");
  if (kind.empty()) return nullptr;
  EMBER_CHECK(kind == "simple" || kind == "ops", ValueError,
              "[Trainer] profiler must be \"\" (off), \"simple\" or \"ops\", got \"", kind, "\"");
  profiler::ProfilerOptions o;
  o.record_ops = kind == "ops";
  if (o.record_ops) {  // Lightning's PyTorchProfiler default: a few steps, not the whole run
    o.use_schedule = true;
    o.schedule = {.wait = 1, .warmup = 1, .active = 3, .repeat = 1};
  }
  return std::make_shared<ProfilerRun>(std::make_shared<profiler::Profiler>(o), kind);
}

ProfilerRun::ProfilerRun(std::shared_ptr<profiler::Profiler> p, std::string kind)
    : profiler_(std::move(p)), kind_(std::move(kind)) {
  profiler_->start();
}

ProfilerRun::~ProfilerRun() { profiler_->stop(); }

void ProfilerRun::finish(const std::string& dir, const std::string& stage, bool print) {
  profiler_->stop();
  std::string title = stage;  // Lightning's "FIT Profiler Report", "VALIDATE ...", "TEST ...", "PREDICT ..."
  for (char& c : title) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  title += " Profiler Report";
  std::string report = profiler_->phase_table(title);
  const bool ops = profiler_->options().record_ops;
  if (ops) {
    report += '\n';  // (not "\n" + table(): g++ 12 -Wrestrict misfires on literal + temporary string)
    report += profiler_->table("self", 20);
    const std::vector<profiler::Stat> stats = profiler_->key_averages();
    if (std::any_of(stats.begin(), stats.end(), [](const profiler::Stat& s) { return s.cuda_us > 0; })) {
      report += '\n';  // where the device's time goes
      report += profiler_->table("cuda", 25);
    }
  }
  if (print) std::cout << "\n" << report << std::flush;
  if (dir.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string path = dir + "/" + stage + "-profiler.txt";
  std::ofstream f(path, std::ios::trunc);
  EMBER_CHECK(f.good(), IOError, "[Trainer] cannot write the profiler report to '", path, "'");
  f << report;
  if (ops) profiler_->export_chrome_trace(dir + "/" + stage + "-trace.json");
}

}  // namespace ember::train
