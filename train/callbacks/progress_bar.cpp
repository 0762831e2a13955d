// ProgressBar: tqdm's line format (as Lightning configures it) drawn in place on a terminal, or printed
// as plain lines at intervals elsewhere.
#include "train/callbacks/progress_bar.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <utility>

#include "core/error.hpp"
#include "core/ops/shape.hpp"
#include "train/trainer.hpp"

namespace ember::train {
namespace {

constexpr const char* kClearToEnd = "\x1b[K";
constexpr const char* kCursorUp = "\x1b[A";

// Display width of UTF-8 text: one column per code point (the bar's blocks are single-width).
size_t display_width(const std::string& s) {
  size_t w = 0;
  for (unsigned char c : s) w += (c & 0xC0) != 0x80;
  return w;
}

// The first `cols` columns of s (whole code points).
std::string trim_display(const std::string& s, size_t cols) {
  size_t w = 0, i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (w == cols) break;
      ++w;
    }
  }
  return s.substr(0, i);
}

std::string printf_str(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

// The counts and rates shared by the live and plain lines (tqdm's format_meter pieces).
struct Meter {
  std::string l_bar, r_bar;  // l_bar ends with "NN%|" (known total) or "|" (unknown)
  bool has_total = false;
  double frac = 0;
};

Meter make_meter(const ProgressState& s) {
  Meter m;
  // tqdm treats a count past the total as an unknown total.
  const bool has_total = s.total > 0 && static_cast<double>(s.n) < static_cast<double>(s.total) + 0.5;
  const bool total_known = s.total >= 0 && (has_total || s.total == 0);
  const double rate = s.elapsed > 0 ? static_cast<double>(s.n) / s.elapsed : 0.0;
  const std::string rate_fmt = (rate > 0 ? printf_str("%5.2f", rate) : std::string("?")) + "it/s";
  const std::string remaining =
      rate > 0 && has_total ? format_interval(static_cast<double>(s.total - s.n) / rate) : std::string("?");
  const std::string total_fmt = total_known ? std::to_string(s.total) : "?";
  const std::string postfix = s.postfix.empty() ? "" : ", " + s.postfix;
  m.l_bar = s.desc.empty() ? "" : s.desc + ": ";
  m.r_bar = "| " + std::to_string(s.n) + "/" + total_fmt + " [" + format_interval(s.elapsed) + "<" + remaining + ", " +
            rate_fmt + postfix + "]";
  m.has_total = has_total;
  if (has_total) {
    m.frac = static_cast<double>(s.n) / static_cast<double>(s.total);
    m.l_bar += printf_str("%3.0f", m.frac * 100) + "%|";
  } else {
    m.l_bar += "|";
  }
  return m;
}

// "version_3" -> "3": the number Lightning's loggers report as their version.
std::string short_version(const std::string& version) {
  const std::string prefix = "version_";
  return version.rfind(prefix, 0) == 0 ? version.substr(prefix.size()) : version;
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

// ---------------------------------------------------------------- formatting

std::string format_interval(double seconds) {
  const int64_t t = seconds > 0 ? static_cast<int64_t>(seconds) : 0;
  const int64_t h = t / 3600, m = t / 60 % 60, s = t % 60;
  char buf[48];
  if (h)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(h), static_cast<long long>(m),
                  static_cast<long long>(s));
  else
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", static_cast<long long>(m), static_cast<long long>(s));
  return buf;
}

std::string python_float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0) return std::signbit(value) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // shortest round-trip digits: "-1.2345e-05"
  const bool negative = sci[0] == '-';
  if (negative) sci.erase(0, 1);
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exp = std::stoi(sci.substr(e + 1));
  std::string out;
  if (exp >= -4 && exp < 16) {  // Python's 'r' format: fixed for 1e-4 <= |x| < 1e16
    if (exp >= 0) {
      std::string int_part = digits.substr(0, std::min<size_t>(digits.size(), exp + 1));
      int_part.append(exp + 1 - int_part.size(), '0');
      const std::string frac = digits.size() > static_cast<size_t>(exp + 1) ? digits.substr(exp + 1) : "0";
      out = int_part + "." + frac;
    } else {
      out = std::string("0.") + std::string(-exp - 1, '0') + digits;
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += std::string(".") + digits.substr(1);
    char ebuf[16];
    std::snprintf(ebuf, sizeof ebuf, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += ebuf;
  }
  return negative ? "-" + out : out;
}

std::string format_metric_value(double value) {
  // tqdm.format_num: '{:.3g}' (with "e+0N" shortened to "e+N") when shorter than str(value).
  std::string f = std::isnan(value) ? "nan" : printf_str("%.3g", value);
  for (const char* from : {"e+0", "e-0"}) {
    if (auto pos = f.find(from); pos != std::string::npos) f.erase(pos + 2, 1);
  }
  const std::string r = python_float_repr(value);
  std::string n = f.size() < r.size() ? f : r;
  // Lightning's Tqdm.format_num pads to 5 characters so the bar does not flicker.
  if (n.find('e') == std::string::npos) {
    if (n.find('.') == std::string::npos && n.size() < 5) n += ".";
    if (n.size() < 5) n.append(5 - n.size(), '0');
  }
  return n;
}

std::string render_bar(double fraction, int width, bool ascii) {
  static const char* const kUtf[] = {" ",      "\u258F", "\u258E", "\u258D", "\u258C",
                                     "\u258B", "\u258A", "\u2589", "\u2588"};
  static const char* const kAscii[] = {" ", "1", "2", "3", "4", "5", "6", "7", "8", "9", "#"};
  const char* const* charset = ascii ? kAscii : kUtf;
  const int nsyms = ascii ? 10 : 8;
  width = std::max(width, 1);
  fraction = std::clamp(std::isnan(fraction) ? 0.0 : fraction, 0.0, 1.0);
  const int64_t cells = static_cast<int64_t>(fraction * width * nsyms);
  const int64_t full = cells / nsyms, part = cells % nsyms;
  std::string out;
  for (int64_t i = 0; i < full; ++i) out += charset[nsyms];
  if (full < width) {
    out += charset[part];
    out.append(static_cast<size_t>(width - full - 1), ' ');
  }
  return out;
}

std::string format_meter(const ProgressState& state, int ncols, bool ascii) {
  const Meter m = make_meter(state);
  const size_t fixed = display_width(m.l_bar) + display_width(m.r_bar);
  const int width = ncols > 0 ? std::max<int>(1, ncols - static_cast<int>(fixed)) : 10;
  const std::string bar = m.has_total ? render_bar(m.frac, width, ascii) : std::string(width, ' ');
  std::string line = m.l_bar + bar + m.r_bar;
  return ncols > 0 ? trim_display(line, static_cast<size_t>(ncols)) : line;
}

std::string format_progress_line(const ProgressState& state) {
  const Meter m = make_meter(state);
  // tqdm's bar-less line: l_bar without its '|' and r_bar without its '|' ("Epoch 0:  45% 45/100 [...]").
  std::string left = m.l_bar.substr(0, m.l_bar.size() - 1);
  if (!m.has_total && !left.empty() && left.back() == ' ') left.pop_back();
  return left + m.r_bar.substr(1);
}

// ---------------------------------------------------------------- the callback

ProgressBar::ProgressBar(ProgressBarOptions options) : options_(options) {
  EMBER_CHECK(options_.refresh_rate >= 0, ValueError, "[ProgressBar] refresh_rate must be >= 0, got ",
              options_.refresh_rate);
  EMBER_CHECK(options_.plain_lines_per_epoch >= 1, ValueError, "[ProgressBar] plain_lines_per_epoch must be >= 1, got ",
              options_.plain_lines_per_epoch);
  std::ostream& os = out();
  if (&os == &std::cout) fd_ = STDOUT_FILENO;
  if (&os == &std::cerr || &os == &std::clog) fd_ = STDERR_FILENO;
  const bool terminal = fd_ >= 0 && ::isatty(fd_) == 1;
  if (!terminal) fd_ = -1;
  tty_ = options_.tty.value_or(terminal);
}

std::ostream& ProgressBar::out() const { return options_.stream ? *options_.stream : std::cout; }

double ProgressBar::now() const {
  if (clock_) return clock_();
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int ProgressBar::terminal_columns() const {
  if (options_.ncols > 0) return options_.ncols;
  if (fd_ >= 0) {
    winsize ws{};
    if (::ioctl(fd_, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  }
  return 0;
}

std::vector<std::pair<std::string, std::string>> ProgressBar::get_metrics(const Trainer& trainer) const {
  std::vector<std::pair<std::string, std::string>> items;
  // Lightning's get_standard_metrics: the loggers' version (the last 4 characters of a long name).
  std::string version;
  std::vector<std::string> seen;
  for (const auto& logger : trainer.loggers()) {
    const std::string v = short_version(logger->version());
    if (std::find(seen.begin(), seen.end(), v) != seen.end()) continue;
    seen.push_back(v);
    version += (version.empty() ? "" : "_") + v;
  }
  if (!version.empty()) {
    if (!all_digits(version) && version.size() > 4) version = version.substr(version.size() - 4);
    items.emplace_back("v_num", version);
  }
  for (const auto& [key, value] : trainer.progress_bar_metrics()) {
    const std::string& name = key;  // a structured binding cannot be captured by clang 14's lambdas
    auto it = std::find_if(items.begin(), items.end(), [&](const auto& kv) { return kv.first == name; });
    if (it != items.end())
      it->second = format_metric_value(value);  // a logged "v_num" wins, as in Lightning
    else
      items.emplace_back(name, format_metric_value(value));
  }
  return items;
}

std::string ProgressBar::metrics_postfix(const Trainer& trainer) const {
  std::string out;
  for (const auto& [k, v] : get_metrics(trainer)) out += (out.empty() ? "" : ", ") + k + "=" + v;
  return out;
}

int64_t ProgressBar::total_train_batches(const Trainer& trainer) const {
  const int64_t batches = trainer.num_training_batches();
  const auto& o = trainer.options();
  const bool epochs_unlimited = !o.max_epochs.has_value() || *o.max_epochs == -1;
  if (epochs_unlimited && o.max_steps > 0) {
    // The steps left, in batches (each optimizer step takes accumulate_grad_batches of them).
    const int64_t remaining = std::max<int64_t>(0, o.max_steps - trainer.global_step()) *
                              std::max<int64_t>(1, trainer.accumulate_grad_batches());
    return batches < 0 ? remaining : std::min(batches, remaining);
  }
  return batches;
}

int64_t ProgressBar::total_sanity_batches(const Trainer& trainer) const {
  const int64_t val = trainer.num_val_batches();
  const int64_t steps = trainer.options().num_sanity_val_steps;
  if (steps < 0) return val;
  return val < 0 ? steps : std::min(val, steps);
}

int64_t ProgressBar::total_val_batches(const Trainer& trainer) const { return trainer.num_val_batches(); }
int64_t ProgressBar::total_test_batches(const Trainer& trainer) const { return trainer.num_test_batches(); }
int64_t ProgressBar::total_predict_batches(const Trainer& trainer) const { return trainer.num_predict_batches(); }

int64_t ProgressBar::plain_interval(const Bar& bar, const Trainer& trainer) const {
  const int64_t total = bar.state.total;
  const int64_t rate = std::max<int64_t>(1, options_.refresh_rate);
  if (total > 0) return std::max(rate, (total + options_.plain_lines_per_epoch - 1) / options_.plain_lines_per_epoch);
  return std::max(rate, std::max<int64_t>(1, trainer.options().log_every_n_steps));
}

void ProgressBar::open_bar(Bar& bar, const std::string& desc, int64_t total, int position, bool leave,
                           bool plain_steps) {
  bar = Bar{};
  bar.open = true;
  bar.state.desc = desc;
  bar.state.total = total;
  bar.start = now();
  bar.position = position;
  bar.leave = leave;
  bar.plain_steps = plain_steps;
  if (tty_ && is_enabled()) draw(bar);
}

void ProgressBar::update(Bar& bar, int64_t n, const Trainer& trainer, bool with_metrics) {
  bar.state.n = n;
  bar.state.elapsed = now() - bar.start;
  if (with_metrics) bar.state.postfix = metrics_postfix(trainer);
}

void ProgressBar::draw(Bar& bar) {
  std::ostream& os = out();
  const std::string line = format_meter(bar.state, terminal_columns(), options_.ascii);
  if (bar.position == 0)
    os << '\r' << line << kClearToEnd;
  else
    os << "\n\r" << line << kClearToEnd << kCursorUp << '\r';
  os.flush();
  bar.drawn = true;
}

void ProgressBar::print_plain(Bar& bar) {
  out() << format_progress_line(bar.state) << std::endl;
  bar.last_printed = bar.state.n;
  bar.last_print_time = now();
}

bool ProgressBar::plain_due(const Bar& bar, int64_t n, const Trainer& trainer) const {
  return n % plain_interval(bar, trainer) == 0 && now() - bar.last_print_time >= options_.plain_min_seconds;
}

void ProgressBar::close(Bar& bar) {
  if (!bar.open) return;
  bar.open = false;
  if (!tty_ || !bar.drawn) return;
  std::ostream& os = out();
  if (bar.leave && bar.position == 0)
    os << '\n';
  else if (bar.position == 0)
    os << '\r' << kClearToEnd;
  else
    os << "\n\r" << kClearToEnd << kCursorUp << '\r';
  os.flush();
}

void ProgressBar::eval_batch_end(Bar& bar, int64_t n, const Trainer& trainer) {
  if (!is_enabled() || !bar.open) return;
  bar.seen = n;
  const bool at_end = n == bar.state.total;
  if (tty_) {
    if (n % options_.refresh_rate != 0 && !at_end) return;
    update(bar, n, trainer, false);
    draw(bar);
  } else {
    update(bar, n, trainer, false);
    if (bar.plain_steps && (at_end || plain_due(bar, n, trainer))) print_plain(bar);
  }
}

void ProgressBar::finish(Bar& bar) {
  bar.state.n = std::max(bar.state.n, bar.seen);
  bar.state.elapsed = now() - bar.start;
  if (tty_ && bar.leave && bar.drawn) draw(bar);
}

// ---- sanity check: a validation bar on the main line, cleared afterwards

void ProgressBar::on_sanity_check_start(Trainer& trainer, TrainModule& /*module*/) {
  if (!is_enabled()) return;
  open_bar(val_, "Sanity Checking DataLoader 0", total_sanity_batches(trainer), 0, false, false);
}

void ProgressBar::on_sanity_check_end(Trainer& /*trainer*/, TrainModule& /*module*/) {
  if (!val_.open) return;
  finish(val_);
  if (!tty_ && val_.state.n > 0) print_plain(val_);
  close(val_);
}

// ---- training: one bar for the fit (reset each epoch), or one per epoch with `leave`

void ProgressBar::on_train_start(Trainer& trainer, TrainModule& /*module*/) {
  if (!is_enabled()) return;
  train_ = Bar{};
  train_.open = true;
  warned_non_finite_ = false;
  watched_.clear();
  metrics_step_ = trainer.global_step();
  metrics_time_ = now();
}

bool ProgressBar::metrics_due(const Trainer& trainer) {
  constexpr size_t kMaxWatched = 4096;  // a bound on the unread values kept for the non-finite check
  const int64_t every = std::max<int64_t>(1, trainer.options().log_every_n_steps);
  const int64_t step = trainer.global_step();
  const double t = now();
  if (step / every == metrics_step_ / every && t - metrics_time_ < options_.metrics_refresh_seconds &&
      watched_.size() < kMaxWatched)
    return false;
  metrics_step_ = step;
  metrics_time_ = t;
  return true;
}

void ProgressBar::on_train_epoch_start(Trainer& trainer, TrainModule& /*module*/) {
  if (!is_enabled()) return;
  const std::string postfix = train_.state.postfix;  // tqdm's reset keeps the postfix until the next update
  open_bar(train_, "Epoch " + std::to_string(trainer.current_epoch()), total_train_batches(trainer), 0, true, true);
  train_.state.postfix = postfix;
}

void ProgressBar::on_train_batch_end(Trainer& trainer, TrainModule& /*module*/, const Tensor& /*loss*/,
                                     const data::Batch& /*batch*/, int64_t batch_idx) {
  if (!is_enabled() || !train_.open) return;
  watch_non_finite(trainer, batch_idx);
  const int64_t n = batch_idx + 1;
  train_.seen = n;
  const bool at_end = n == train_.state.total;
  if (tty_) {
    if (n % options_.refresh_rate != 0 && !at_end) return;
  } else {
    // The epoch's last line comes from on_train_epoch_end, after the epoch-end validation and metrics.
    if (at_end || !plain_due(train_, n, trainer)) return;
  }
  // Between metric refreshes the line keeps the values it showed (no host read every batch).
  const bool fresh = metrics_due(trainer);
  update(train_, n, trainer, fresh);
  if (fresh) check_non_finite();
  if (tty_)
    draw(train_);
  else
    print_plain(train_);
}

// Once per fit: a logged loss that turned NaN or infinite is said on its own line, not left in the bar.
// Noted here without a host read: the unread values, or the numbers that are not finite.
void ProgressBar::watch_non_finite(const Trainer& trainer, int64_t batch_idx) {
  if (warned_non_finite_) return;
  const MetricCollector& mc = trainer.metric_collector();
  const auto& unread = mc.unread_callback_metrics();
  Watched at;
  at.epoch = trainer.current_epoch();
  at.batch = batch_idx;
  at.step = trainer.global_step();
  std::map<std::string, Watched> now;  // in key order, as the metrics are
  for (const auto& [name, t] : unread) {
    if (name.find("loss") == std::string::npos) continue;
    Watched w = at;
    w.name = name;
    w.tensor = t;
    now.emplace(name, std::move(w));
  }
  for (const auto& [name, v] : mc.read_callback_metrics()) {
    if (std::isfinite(v) || name.find("loss") == std::string::npos || unread.contains(name)) continue;
    Watched w = at;
    w.name = name;
    w.value = v;
    now.emplace(name, std::move(w));
  }
  for (auto& [name, w] : now) watched_.push_back(std::move(w));
}

void ProgressBar::check_non_finite() {
  if (watched_.empty() || warned_non_finite_) return;
  std::vector<Watched> watched = std::exchange(watched_, {});
  // The unread values, one host read per device.
  std::map<const TensorImpl*, double> values;
  std::vector<std::pair<Device, std::vector<Tensor>>> by_device;
  for (const Watched& w : watched) {
    if (!w.tensor.defined() || !values.emplace(&w.tensor.impl(), 0.0).second) continue;
    auto it =
        std::find_if(by_device.begin(), by_device.end(), [&](const auto& d) { return d.first == w.tensor.device(); });
    if (it == by_device.end()) it = by_device.insert(by_device.end(), {w.tensor.device(), {}});
    it->second.push_back(w.tensor);
  }
  for (const auto& [device, tensors] : by_device) {
    std::vector<Tensor> flat;
    for (const Tensor& t : tensors) flat.push_back(t.reshape({1}));
    const std::vector<double> read = cat(flat).to_vector<double>();
    for (size_t i = 0; i < tensors.size(); ++i) values[&tensors[i].impl()] = read[i];
  }
  for (const Watched& w : watched) {
    const double v = w.tensor.defined() ? values.at(&w.tensor.impl()) : w.value;
    if (std::isfinite(v)) continue;
    warned_non_finite_ = true;
    if (tty_) out() << "\n";
    out() << "[Trainer] " << w.name << " is " << v << " at epoch " << w.epoch << ", batch " << w.batch
          << " (global step " << w.step
          << "): training goes on; Trainer option detect_anomaly = true stops at the first non-finite loss and names "
             "the op that made a gradient non-finite\n";
    return;
  }
}

void ProgressBar::on_train_epoch_end(Trainer& trainer, TrainModule& /*module*/) {
  if (!is_enabled() || !train_.open) return;
  // The count as the loop left it: refreshes skipped by refresh_rate, an unknown total, an early stop.
  update(train_, std::max(train_.state.n, train_.seen), trainer, true);
  metrics_step_ = trainer.global_step();
  metrics_time_ = now();
  check_non_finite();
  if (tty_)
    draw(train_);
  else if (train_.last_printed != train_.state.n)
    print_plain(train_);
  if (options_.leave) {
    close(train_);
    train_.open = true;  // the fit goes on: the next epoch opens a fresh line
    train_.drawn = false;
  }
}

void ProgressBar::on_train_end(Trainer& /*trainer*/, TrainModule& /*module*/) {
  if (!train_.open) return;
  if (!train_.drawn) {
    train_.open = false;
    return;
  }
  close(train_);
}

// ---- validation: below the training bar during fit (cleared when done), on its own in validate()

void ProgressBar::on_validation_start(Trainer& trainer, TrainModule& /*module*/) {
  if (!is_enabled() || trainer.sanity_checking()) return;
  const bool in_fit = train_.open;
  open_bar(val_, "Validation DataLoader 0", total_val_batches(trainer), in_fit ? 1 : 0, !in_fit, !in_fit);
}

void ProgressBar::on_validation_batch_end(Trainer& trainer, TrainModule& /*module*/, const data::Batch& /*batch*/,
                                          int64_t batch_idx) {
  eval_batch_end(val_, batch_idx + 1, trainer);
}

void ProgressBar::on_validation_end(Trainer& trainer, TrainModule& /*module*/) {
  if (trainer.sanity_checking() || !val_.open) return;
  const bool in_fit = train_.open;
  finish(val_);
  if (!tty_) {
    // During fit, a line per validation run inside an epoch (one at the epoch's end shows in the epoch's
    // own line, printed next).
    const bool epoch_end = train_.seen == train_.state.total;
    if (in_fit && !epoch_end) {
      val_.state.postfix = metrics_postfix(trainer);
      print_plain(val_);
    } else if (!in_fit && val_.last_printed != val_.state.n) {
      print_plain(val_);
    }
  }
  close(val_);
  if (in_fit && is_enabled()) {
    train_.state.postfix = metrics_postfix(trainer);
    train_.state.elapsed = now() - train_.start;
    if (tty_ && train_.drawn) draw(train_);
  }
}

// ---- test and predict: one bar each, left on the terminal

void ProgressBar::on_test_start(Trainer& trainer, TrainModule& /*module*/) {
  if (!is_enabled()) return;
  open_bar(test_, "Testing DataLoader 0", total_test_batches(trainer), 0, true, true);
}

void ProgressBar::on_test_batch_end(Trainer& trainer, TrainModule& /*module*/, const data::Batch& /*batch*/,
                                    int64_t batch_idx) {
  eval_batch_end(test_, batch_idx + 1, trainer);
}

void ProgressBar::on_test_end(Trainer& /*trainer*/, TrainModule& /*module*/) {
  if (!test_.open) return;
  finish(test_);
  if (!tty_ && test_.last_printed != test_.state.n) print_plain(test_);
  close(test_);
}

void ProgressBar::on_predict_start(Trainer& trainer, TrainModule& /*module*/) {
  if (!is_enabled()) return;
  open_bar(predict_, "Predicting DataLoader 0", total_predict_batches(trainer), 0, true, true);
}

void ProgressBar::on_predict_batch_end(Trainer& trainer, TrainModule& /*module*/, const Tensor& /*prediction*/,
                                       const data::Batch& /*batch*/, int64_t batch_idx) {
  eval_batch_end(predict_, batch_idx + 1, trainer);
}

void ProgressBar::on_predict_end(Trainer& /*trainer*/, TrainModule& /*module*/) {
  if (!predict_.open) return;
  finish(predict_);
  if (!tty_ && predict_.last_printed != predict_.state.n) print_plain(predict_);
  close(predict_);
}

void ProgressBar::on_exception(Trainer& /*trainer*/, TrainModule& /*module*/, const std::exception& /*error*/) {
  // Leave the bars where they are and start the error on a fresh line.
  if (!tty_) return;
  const bool any = (train_.open && train_.drawn) || (val_.open && val_.drawn) || (test_.open && test_.drawn) ||
                   (predict_.open && predict_.drawn);
  if (any) out() << (val_.open && val_.drawn && val_.position == 1 ? "\n\n" : "\n") << std::flush;
  train_.open = val_.open = test_.open = predict_.open = false;
}

}  // namespace ember::train
