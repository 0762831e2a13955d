// ProgressBar (Lightning's TQDMProgressBar): on a terminal, live bars redrawn in place with rate, ETA and
// the prog_bar metrics ("Epoch 3:  45%|####      | 45/100 [00:02<00:03, 21.30it/s, v_num=0, loss=0.123]");
// elsewhere (a log file, a pipe) plain lines, at most about ten per epoch and one per 5 s, so logs
// stay readable.
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "train/callback.hpp"

namespace ember::train {

// ---- tqdm's formatting, as free functions (the bar's pieces, testable alone) ----

// One bar's numbers: `total` -1 when unknown; `elapsed` seconds since the bar (re)started; `postfix`
// the "key=value, ..." text.
struct ProgressState {
  std::string desc;
  int64_t n = 0;
  int64_t total = -1;
  double elapsed = 0;
  std::string postfix = "";
};

// tqdm.format_interval: "00:02", "01:05", "1:02:03".
std::string format_interval(double seconds);
// A metric value as Lightning's Tqdm shows it: 3 significant digits when shorter than Python's repr,
// padded with zeros to 5 characters ("0.123", "0.500", "1.000", "1e-5", "12345.6").
std::string format_metric_value(double value);
// tqdm's bar body of `width` cells for a fraction in [0, 1]: Unicode eighth blocks, or " 123456789#" when ascii.
std::string render_bar(double fraction, int width, bool ascii = false);
// The live line with a bar (Lightning's BAR_FORMAT); ncols > 0 sizes the bar to fill the line (and trims
// it), 0 draws a 10-cell bar.
std::string format_meter(const ProgressState& state, int ncols = 0, bool ascii = false);
// The plain line: "Epoch 0:  45% 45/100 [00:02<00:03, 21.30it/s, loss=0.123]" ("45/?" when unknown).
std::string format_progress_line(const ProgressState& state);
// Python's repr(float): the shortest text that reads back the same double ("0.1", "1e-05", "100.0").
std::string python_float_repr(double value);

struct ProgressBarOptions {
  int64_t refresh_rate = 1;  // batches between updates; 0 disables the bar
  bool leave = false;        // keep each finished epoch's bar on the terminal (one line per epoch)
  // Unset: live bars when the stream is a terminal (std::cout/std::cerr on a tty), else plain lines.
  std::optional<bool> tty = std::nullopt;
  std::ostream* stream = nullptr;      // default std::cout, as Lightning's TQDM writes to stdout
  int ncols = 0;                       // live line width; 0: the terminal's (a 10-cell bar when unknown)
  bool ascii = false;                  // '#' bars instead of Unicode blocks
  int64_t plain_lines_per_epoch = 10;  // plain mode: a line every ceil(total / this) batches (unknown
                                       // total: every log_every_n_steps); always at an epoch's end
  double plain_min_seconds = 5.0;      // plain mode: no mid-epoch line sooner than this after the last
  // The shown metric values are read from the device (a host sync) only at logging steps (a multiple of
  // log_every_n_steps passed), at epoch ends, and mid-epoch at most once per this many seconds; the
  // bar's count and rate advance every refresh_rate batches either way.
  double metrics_refresh_seconds = 1.0;
};

class ProgressBar : public Callback {
 public:
  explicit ProgressBar(ProgressBarOptions options = {});

  const ProgressBarOptions& options() const { return options_; }
  bool is_enabled() const { return enabled_ && options_.refresh_rate > 0; }
  void enable() { enabled_ = true; }
  void disable() { enabled_ = false; }
  bool is_tty() const { return tty_; }
  // The clock in seconds (tests and simulations; default steady_clock).
  void set_clock(std::function<double()> clock) { clock_ = std::move(clock); }

  // What the bar shows after the counts: "v_num" (the loggers' version) then the prog_bar metrics,
  // formatted. Override to change it (Lightning's get_metrics).
  virtual std::vector<std::pair<std::string, std::string>> get_metrics(const Trainer& trainer) const;

  // The bars' totals (Lightning's properties; -1 when unknown): the training batches of this epoch (fewer
  // when max_steps ends the run sooner), the sanity check's, validation's, test's and predict's batches.
  virtual int64_t total_train_batches(const Trainer& trainer) const;
  virtual int64_t total_sanity_batches(const Trainer& trainer) const;
  virtual int64_t total_val_batches(const Trainer& trainer) const;
  virtual int64_t total_test_batches(const Trainer& trainer) const;
  virtual int64_t total_predict_batches(const Trainer& trainer) const;

  void on_sanity_check_start(Trainer& trainer, TrainModule& module) override;
  void on_sanity_check_end(Trainer& trainer, TrainModule& module) override;
  void on_train_start(Trainer& trainer, TrainModule& module) override;
  void on_train_end(Trainer& trainer, TrainModule& module) override;
  void on_train_epoch_start(Trainer& trainer, TrainModule& module) override;
  void on_train_epoch_end(Trainer& trainer, TrainModule& module) override;
  void on_train_batch_end(Trainer& trainer, TrainModule& module, const Tensor& loss, const data::Batch& batch,
                          int64_t batch_idx) override;
  void on_validation_start(Trainer& trainer, TrainModule& module) override;
  void on_validation_end(Trainer& trainer, TrainModule& module) override;
  void on_validation_batch_end(Trainer& trainer, TrainModule& module, const data::Batch& batch,
                               int64_t batch_idx) override;
  void on_test_start(Trainer& trainer, TrainModule& module) override;
  void on_test_end(Trainer& trainer, TrainModule& module) override;
  void on_test_batch_end(Trainer& trainer, TrainModule& module, const data::Batch& batch, int64_t batch_idx) override;
  void on_predict_start(Trainer& trainer, TrainModule& module) override;
  void on_predict_end(Trainer& trainer, TrainModule& module) override;
  void on_predict_batch_end(Trainer& trainer, TrainModule& module, const Tensor& prediction, const data::Batch& batch,
                            int64_t batch_idx) override;
  void on_exception(Trainer& trainer, TrainModule& module, const std::exception& error) override;

 private:
  struct Bar {
    bool open = false;
    bool drawn = false;
    ProgressState state;
    double start = 0;
    int position = 0;  // 0: the main line; 1: the line below it (validation inside fit)
    bool leave = true;
    bool plain_steps = true;  // plain mode: lines at the interval (else only at the end)
    int64_t seen = 0;         // the last batch count reported, drawn or not
    int64_t last_printed = -1;
    double last_print_time = -1e300;
  };
  std::ostream& out() const;
  double now() const;
  int terminal_columns() const;
  void open_bar(Bar& bar, const std::string& desc, int64_t total, int position, bool leave, bool plain_steps);
  void update(Bar& bar, int64_t n, const Trainer& trainer, bool with_metrics);
  void eval_batch_end(Bar& bar, int64_t n, const Trainer& trainer);
  void finish(Bar& bar);  // the final count and time, drawn once more if the bar stays
  void draw(Bar& bar);
  void print_plain(Bar& bar);
  void close(Bar& bar);
  int64_t plain_interval(const Bar& bar, const Trainer& trainer) const;
  bool plain_due(const Bar& bar, int64_t n, const Trainer& trainer) const;  // a mid-epoch plain line now?
  std::string metrics_postfix(const Trainer& trainer) const;

  ProgressBarOptions options_;
  // A logged loss that turns NaN or infinite is said once, naming the batch where it happened. Each batch
  // notes its loss values without reading them (watch_non_finite); they are read at the next metrics
  // refresh (check_non_finite, one host read).
  struct Watched {
    std::string name;
    Tensor tensor;  // unread; else `value`
    double value = 0;
    int64_t epoch = 0, batch = 0, step = 0;
  };
  void watch_non_finite(const Trainer& trainer, int64_t batch_idx);
  void check_non_finite();
  bool metrics_due(const Trainer& trainer);  // refresh the metric values now? (then it counts as done)
  std::vector<Watched> watched_;
  int64_t metrics_step_ = 0;
  double metrics_time_ = 0;
  bool enabled_ = true;
  bool tty_ = false;
  bool warned_non_finite_ = false;
  int fd_ = -1;  // the terminal's file descriptor when the stream is std::cout/std::cerr
  std::function<double()> clock_;
  Bar train_, val_, test_, predict_;
};

}  // namespace ember::train
