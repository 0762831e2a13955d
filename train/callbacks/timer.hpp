// Timer (Lightning's Timer callback): times the train/validate/test/predict loops and stops fit once the
// training time reaches a budget; its state keeps the time spent, so a resumed run continues the budget.
#pragma once
#include <chrono>
#include <concepts>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>

#include "train/callback.hpp"

namespace ember::train {

// "DD:HH:MM:SS" (days of any width, then two digits each) in seconds; ValueError otherwise.
double parse_duration(const std::string& text);
// Python's str(timedelta(seconds=int(s))): "0:00:05", "1 day, 2:03:04", "3 days, 0:00:00".
std::string format_timedelta(double seconds);

class Timer : public Callback {
 public:
  // duration: seconds (unset: no limit, only timing); interval: check after every training batch
  // ("step") or every training epoch ("epoch"); verbose: say when the limit stops the run.
  explicit Timer(std::optional<double> duration = std::nullopt, const std::string& interval = "step",
                 bool verbose = true);
  explicit Timer(const std::string& duration, const std::string& interval = "step", bool verbose = true);
  template <std::integral I>  // Timer(0) and Timer(60): seconds (not a null string)
  explicit Timer(I seconds, const std::string& interval = "step", bool verbose = true)
      : Timer(std::optional<double>(static_cast<double>(seconds)), interval, verbose) {}
  template <class Rep, class Period>
  explicit Timer(std::chrono::duration<Rep, Period> duration, const std::string& interval = "step", bool verbose = true)
      : Timer(std::optional<double>(std::chrono::duration<double>(duration).count()), interval, verbose) {}

  // Stages: "train" (the default), "sanity_check", "validate", "test", "predict"; ValueError for others.
  // Times are seconds on the clock (steady_clock unless set_clock changed it); unset before the stage ran.
  std::optional<double> start_time(const std::string& stage = "train") const;
  std::optional<double> end_time(const std::string& stage = "train") const;
  // Seconds spent in the stage (still running: up to now); "train" adds the time of a resumed run.
  double time_elapsed(const std::string& stage = "train") const;
  // duration - time_elapsed(stage); unset without a duration.
  std::optional<double> time_remaining(const std::string& stage = "train") const;
  std::optional<double> duration() const { return duration_; }
  const std::string& interval() const { return interval_; }

  // The clock in seconds (for tests and simulations; default: steady_clock).
  void set_clock(std::function<double()> clock) { clock_ = std::move(clock); }
  // Where the verbose message goes (default std::cout).
  void set_output(std::ostream& out) { out_ = &out; }

  void on_fit_start(Trainer& trainer, TrainModule& module) override;
  void on_train_start(Trainer& trainer, TrainModule& module) override;
  void on_train_end(Trainer& trainer, TrainModule& module) override;
  void on_validation_start(Trainer& trainer, TrainModule& module) override;
  void on_validation_end(Trainer& trainer, TrainModule& module) override;
  void on_test_start(Trainer& trainer, TrainModule& module) override;
  void on_test_end(Trainer& trainer, TrainModule& module) override;
  void on_predict_start(Trainer& trainer, TrainModule& module) override;
  void on_predict_end(Trainer& trainer, TrainModule& module) override;
  void on_train_batch_end(Trainer& trainer, TrainModule& module, const Tensor& loss, const data::Batch& batch,
                          int64_t batch_idx) override;
  void on_train_epoch_end(Trainer& trainer, TrainModule& module) override;

  // {"time_elapsed": {"train": s, "sanity_check": s, "validate": s, "test": s, "predict": s}}
  nlohmann::json state_dict() const override;
  void load_state_dict(const nlohmann::json& state) override;

 private:
  struct Span {
    std::optional<double> start, end;
  };
  const Span& span(const std::string& stage) const;
  double now() const;
  void stage_start(const std::string& stage);
  void stage_end(const std::string& stage);
  void check_time_remaining(Trainer& trainer);

  std::optional<double> duration_;
  std::string interval_;
  bool verbose_;
  std::map<std::string, Span> spans_;
  double offset_ = 0;  // training seconds of the run this one resumes
  std::function<double()> clock_;
  std::ostream* out_ = nullptr;
};

}  // namespace ember::train
