// Timer: per-stage start/end times and the training-time budget (Lightning's Timer).
#include "train/callbacks/timer.hpp"

#include <cmath>
#include <iostream>
#include <regex>

#include "core/error.hpp"
#include "train/trainer.hpp"

namespace ember::train {
namespace {

const char* const kStages[] = {"train", "sanity_check", "validate", "test", "predict"};

}  // namespace

double parse_duration(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\n\r");
  const auto last = text.find_last_not_of(" \t\n\r");
  const std::string s = first == std::string::npos ? "" : text.substr(first, last - first + 1);
  static const std::regex pattern(R"((\d+):(\d\d):(\d\d):(\d\d))");
  std::smatch m;
  EMBER_CHECK(std::regex_match(s, m, pattern) && m[1].length() <= 9, ValueError, "[Timer] duration '", text,
              "' is not a valid duration. Expected a string in the format DD:HH:MM:SS.");
  return std::stod(m[1]) * 86400 + std::stod(m[2]) * 3600 + std::stod(m[3]) * 60 + std::stod(m[4]);
}

std::string format_timedelta(double seconds) {
  const bool negative = seconds < 0;
  int64_t s = static_cast<int64_t>(seconds);  // int() truncates toward zero
  // Python normalises a negative timedelta to -N days + a positive remainder.
  int64_t days = s / 86400, rest = s % 86400;
  if (negative && rest != 0) {
    days -= 1;
    rest += 86400;
  }
  char clock[32];
  std::snprintf(clock, sizeof clock, "%d:%02d:%02d", static_cast<int>(rest / 3600), static_cast<int>(rest / 60 % 60),
                static_cast<int>(rest % 60));
  if (days == 0) return clock;
  return std::to_string(days) + (std::llabs(days) == 1 ? " day, " : " days, ") + clock;
}

Timer::Timer(std::optional<double> duration, const std::string& interval, bool verbose)
    : duration_(duration), interval_(interval), verbose_(verbose) {
  EMBER_CHECK(interval == "step" || interval == "epoch", ValueError, "[Timer] unsupported interval '", interval,
              "'. Possible choices are: step, epoch");
  EMBER_CHECK(!duration || std::isfinite(*duration), ValueError, "[Timer] duration must be finite, got ", *duration);
  for (const char* stage : kStages) spans_[stage] = {};
}

Timer::Timer(const std::string& duration, const std::string& interval, bool verbose)
    : Timer(std::optional<double>(parse_duration(duration)), interval, verbose) {}

const Timer::Span& Timer::span(const std::string& stage) const {
  auto it = spans_.find(stage);
  EMBER_CHECK(it != spans_.end(), ValueError, "[Timer] unknown stage '", stage,
              "' (stages: train, sanity_check, validate, test, predict)");
  return it->second;
}

double Timer::now() const {
  if (clock_) return clock_();
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::optional<double> Timer::start_time(const std::string& stage) const { return span(stage).start; }
std::optional<double> Timer::end_time(const std::string& stage) const { return span(stage).end; }

double Timer::time_elapsed(const std::string& stage) const {
  const Span& s = span(stage);
  const double offset = stage == "train" ? offset_ : 0.0;
  if (!s.start) return offset;
  if (!s.end) return now() - *s.start + offset;
  return *s.end - *s.start + offset;
}

std::optional<double> Timer::time_remaining(const std::string& stage) const {
  if (!duration_) return std::nullopt;
  return *duration_ - time_elapsed(stage);
}

void Timer::stage_start(const std::string& stage) {
  spans_[stage].start = now();
  spans_[stage].end.reset();  // Lightning keeps the old end; a running stage should read as running
}
void Timer::stage_end(const std::string& stage) { spans_[stage].end = now(); }

void Timer::on_fit_start(Trainer& trainer, TrainModule& /*module*/) {
  // A resumed run whose budget is already spent stops before its first batch.
  if (duration_) check_time_remaining(trainer);
}
void Timer::on_train_start(Trainer& /*trainer*/, TrainModule& /*module*/) { stage_start("train"); }
void Timer::on_train_end(Trainer& /*trainer*/, TrainModule& /*module*/) { stage_end("train"); }
void Timer::on_validation_start(Trainer& trainer, TrainModule& /*module*/) {
  stage_start(trainer.sanity_checking() ? "sanity_check" : "validate");
}
void Timer::on_validation_end(Trainer& trainer, TrainModule& /*module*/) {
  stage_end(trainer.sanity_checking() ? "sanity_check" : "validate");
}
void Timer::on_test_start(Trainer& /*trainer*/, TrainModule& /*module*/) { stage_start("test"); }
void Timer::on_test_end(Trainer& /*trainer*/, TrainModule& /*module*/) { stage_end("test"); }
void Timer::on_predict_start(Trainer& /*trainer*/, TrainModule& /*module*/) { stage_start("predict"); }
void Timer::on_predict_end(Trainer& /*trainer*/, TrainModule& /*module*/) { stage_end("predict"); }

void Timer::on_train_batch_end(Trainer& trainer, TrainModule& /*module*/, const Tensor& /*loss*/,
                               const data::Batch& /*batch*/, int64_t /*batch_idx*/) {
  if (interval_ == "step" && duration_) check_time_remaining(trainer);
}
void Timer::on_train_epoch_end(Trainer& trainer, TrainModule& /*module*/) {
  if (interval_ == "epoch" && duration_) check_time_remaining(trainer);
}

void Timer::check_time_remaining(Trainer& trainer) {
  const double elapsed = time_elapsed("train");
  const bool stop = elapsed >= *duration_;
  if (!stop) return;
  const bool already = trainer.should_stop;
  trainer.should_stop = true;
  if (verbose_ && !already) {
    std::ostream& os = out_ ? *out_ : std::cout;
    os << "Time limit reached. Elapsed time is " << format_timedelta(elapsed) << ". Signaling Trainer to stop."
       << std::endl;
  }
}

nlohmann::json Timer::state_dict() const {
  nlohmann::json elapsed = nlohmann::json::object();
  for (const char* stage : kStages) elapsed[stage] = time_elapsed(stage);
  return {{"time_elapsed", elapsed}};
}

void Timer::load_state_dict(const nlohmann::json& state) {
  EMBER_CHECK(state.is_object(), ValueError, "[Timer] load_state_dict expects a JSON object, got ", state.dump());
  offset_ = 0;
  if (auto it = state.find("time_elapsed"); it != state.end() && it->is_object()) {
    if (auto t = it->find("train"); t != it->end()) {
      EMBER_CHECK(t->is_number(), ValueError, "[Timer] load_state_dict: time_elapsed.train must be a number, got ",
                  t->dump());
      offset_ = t->get<double>();
    }
  }
}

}  // namespace ember::train
