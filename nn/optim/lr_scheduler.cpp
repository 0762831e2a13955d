// The schedulers of nn/optim/lr_scheduler.hpp, transcribed from PyTorch 2.x's lr_scheduler.py with the
// same operation order (so doubles agree to the last bit where the maths is the same).
#include "nn/optim/lr_scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

namespace ember::optim {
namespace {

template <class T>
T json_get(const nlohmann::json& j, const char* key, const std::string& prefix) {
  EMBER_CHECK(j.is_object() && j.contains(key), ValueError, prefix, "state lacks '", key, "'");
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw ValueError(prefix + "'" + key + "' has the wrong type: " + j.at(key).dump());
  }
}

// Python's a // b for b > 0.
int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b) < 0 ? 1 : 0); }

// Python's bisect_right on a sorted vector.
int64_t bisect_right(const std::vector<int64_t>& v, int64_t x) {
  return std::upper_bound(v.begin(), v.end(), x) - v.begin();
}

}  // namespace

// ---------------------------------------------------------------- LRScheduler
LRScheduler::LRScheduler(OptimizerRef opt, std::string name, bool set_initial_lr)
    : opt_(std::move(opt)), name_(std::move(name)) {
  if (set_initial_lr)
    for (size_t g = 0; g < opt_->num_param_groups(); ++g)
      if (!opt_->group_value(g, "initial_lr")) opt_->set_group_value(g, "initial_lr", opt_->lr(g));
  base_lrs_ = set_initial_lr ? group_values("initial_lr") : group_lrs();
}

std::vector<double> LRScheduler::group_lrs() const {
  std::vector<double> v;
  for (size_t g = 0; g < opt_->num_param_groups(); ++g) v.push_back(opt_->lr(g));
  return v;
}

std::vector<double> LRScheduler::group_values(const std::string& key) const {
  std::vector<double> v;
  for (size_t g = 0; g < opt_->num_param_groups(); ++g) {
    auto x = opt_->group_value(g, key);
    EMBER_CHECK(x.has_value(), ValueError, "[", name_, "] param group ", g, " has no '", key, "'");
    v.push_back(*x);
  }
  return v;
}

void LRScheduler::initial_step() {
  step_count_ = 0;
  is_initial_ = true;
  try {
    step();
  } catch (...) {
    is_initial_ = false;
    throw;
  }
  is_initial_ = false;
}

void LRScheduler::step() {
  ++step_count_;
  update_lr(std::nullopt);
}

void LRScheduler::update_lr(std::optional<int64_t> epoch) {
  std::vector<double> values;
  if (!epoch) {
    ++last_epoch_;
    values = get_lr();
  } else {
    last_epoch_ = *epoch;
    auto closed = closed_form_lr();
    values = closed ? std::move(*closed) : get_lr();
  }
  EMBER_CHECK(values.size() == opt_->num_param_groups(), ValueError, "[", name_, "] computed ", values.size(),
              " learning rates for ", opt_->num_param_groups(), " param groups");
  for (size_t g = 0; g < values.size(); ++g) opt_->set_lr(g, values[g]);
  last_lr_ = group_lrs();
}

nlohmann::json LRScheduler::state_dict() const {
  return {{"last_epoch", last_epoch_}, {"_step_count", step_count_}, {"base_lrs", base_lrs_}, {"_last_lr", last_lr_}};
}

void LRScheduler::load_state_dict(const nlohmann::json& s) {
  const std::string p = prefix("load_state_dict");
  auto last_epoch = json_get<int64_t>(s, "last_epoch", p);
  auto step_count = json_get<int64_t>(s, "_step_count", p);
  auto base_lrs = json_get<std::vector<double>>(s, "base_lrs", p);
  auto last_lr = json_get<std::vector<double>>(s, "_last_lr", p);
  const size_t n = opt_->num_param_groups();
  EMBER_CHECK(base_lrs.size() == n && last_lr.size() == n, ValueError, p, "the state has ", base_lrs.size(),
              " base_lrs and ", last_lr.size(), " _last_lr entries, the optimizer has ", n, " param groups");
  last_epoch_ = last_epoch;
  step_count_ = step_count;
  base_lrs_ = std::move(base_lrs);
  last_lr_ = std::move(last_lr);
}

// ---------------------------------------------------------------- StepLR
StepLR::StepLR(OptimizerRef opt, int64_t step_size, double gamma)
    : LRScheduler(std::move(opt), "StepLR"), step_size_(step_size), gamma_(gamma) {
  EMBER_CHECK(step_size > 0, ValueError, "[StepLR] step_size must be positive, got ", step_size);
  initial_step();
}
std::vector<double> StepLR::get_lr() {
  if (last_epoch_ == 0 || last_epoch_ % step_size_ != 0) return group_lrs();
  std::vector<double> v = group_lrs();
  for (double& lr : v) lr = lr * gamma_;
  return v;
}
std::optional<std::vector<double>> StepLR::closed_form_lr() const {
  std::vector<double> v;
  for (double b : base_lrs_) v.push_back(b * std::pow(gamma_, static_cast<double>(floor_div(last_epoch_, step_size_))));
  return v;
}
nlohmann::json StepLR::state_dict() const {
  auto j = LRScheduler::state_dict();
  j["step_size"] = step_size_;
  j["gamma"] = gamma_;
  return j;
}
void StepLR::load_state_dict(const nlohmann::json& s) {
  LRScheduler::load_state_dict(s);
  if (s.contains("gamma")) gamma_ = json_get<double>(s, "gamma", prefix("load_state_dict"));
}

// ---------------------------------------------------------------- MultiStepLR
MultiStepLR::MultiStepLR(OptimizerRef opt, std::vector<int64_t> milestones, double gamma)
    : LRScheduler(std::move(opt), "MultiStepLR"), milestones_(std::move(milestones)), gamma_(gamma) {
  std::sort(milestones_.begin(), milestones_.end());
  initial_step();
}
std::vector<double> MultiStepLR::get_lr() {
  auto count = std::count(milestones_.begin(), milestones_.end(), last_epoch_);
  std::vector<double> v = group_lrs();
  if (count == 0) return v;
  for (double& lr : v) lr = lr * std::pow(gamma_, static_cast<double>(count));
  return v;
}
std::optional<std::vector<double>> MultiStepLR::closed_form_lr() const {
  std::vector<double> v;
  for (double b : base_lrs_)
    v.push_back(b * std::pow(gamma_, static_cast<double>(bisect_right(milestones_, last_epoch_))));
  return v;
}
nlohmann::json MultiStepLR::state_dict() const {
  auto j = LRScheduler::state_dict();
  j["milestones"] = milestones_;
  j["gamma"] = gamma_;
  return j;
}
void MultiStepLR::load_state_dict(const nlohmann::json& s) {
  LRScheduler::load_state_dict(s);
  const std::string p = prefix("load_state_dict");
  if (s.contains("gamma")) gamma_ = json_get<double>(s, "gamma", p);
  if (s.contains("milestones")) {
    milestones_ = json_get<std::vector<int64_t>>(s, "milestones", p);
    std::sort(milestones_.begin(), milestones_.end());
  }
}

// ---------------------------------------------------------------- ExponentialLR
ExponentialLR::ExponentialLR(OptimizerRef opt, double gamma)
    : LRScheduler(std::move(opt), "ExponentialLR"), gamma_(gamma) {
  initial_step();
}
std::vector<double> ExponentialLR::get_lr() {
  std::vector<double> v = group_lrs();
  if (is_initial_) return v;
  for (double& lr : v) lr = lr * gamma_;
  return v;
}
std::optional<std::vector<double>> ExponentialLR::closed_form_lr() const {
  std::vector<double> v;
  for (double b : base_lrs_) v.push_back(b * std::pow(gamma_, static_cast<double>(last_epoch_)));
  return v;
}
nlohmann::json ExponentialLR::state_dict() const {
  auto j = LRScheduler::state_dict();
  j["gamma"] = gamma_;
  return j;
}
void ExponentialLR::load_state_dict(const nlohmann::json& s) {
  LRScheduler::load_state_dict(s);
  if (s.contains("gamma")) gamma_ = json_get<double>(s, "gamma", prefix("load_state_dict"));
}

// ---------------------------------------------------------------- CosineAnnealingLR
CosineAnnealingLR::CosineAnnealingLR(OptimizerRef opt, int64_t t_max, double eta_min)
    : LRScheduler(std::move(opt), "CosineAnnealingLR"), t_max_(t_max), eta_min_(eta_min) {
  EMBER_CHECK(t_max > 0, ValueError, "[CosineAnnealingLR] T_max must be positive, got ", t_max);
  initial_step();
}
std::vector<double> CosineAnnealingLR::get_lr() {
  constexpr double pi = std::numbers::pi;
  const auto e = static_cast<double>(last_epoch_), T = static_cast<double>(t_max_);
  std::vector<double> v = group_lrs();
  if (is_initial_) return v;
  for (size_t g = 0; g < v.size(); ++g) {
    if (step_count_ == 1 && last_epoch_ > 0)
      v[g] = eta_min_ + (base_lrs_[g] - eta_min_) * (1 + std::cos(e * pi / T)) / 2;
    else if ((last_epoch_ - 1 - t_max_) % (2 * t_max_) == 0)
      v[g] = v[g] + (base_lrs_[g] - eta_min_) * (1 - std::cos(pi / T)) / 2;
    else
      v[g] = (1 + std::cos(pi * e / T)) / (1 + std::cos(pi * (e - 1) / T)) * (v[g] - eta_min_) + eta_min_;
  }
  return v;
}
std::optional<std::vector<double>> CosineAnnealingLR::closed_form_lr() const {
  constexpr double pi = std::numbers::pi;
  std::vector<double> v;
  for (double b : base_lrs_)
    v.push_back(eta_min_ + (b - eta_min_) *
                               (1 + std::cos(pi * static_cast<double>(last_epoch_) / static_cast<double>(t_max_))) / 2);
  return v;
}
nlohmann::json CosineAnnealingLR::state_dict() const {
  auto j = LRScheduler::state_dict();
  j["T_max"] = t_max_;
  j["eta_min"] = eta_min_;
  return j;
}
void CosineAnnealingLR::load_state_dict(const nlohmann::json& s) {
  LRScheduler::load_state_dict(s);
  const std::string p = prefix("load_state_dict");
  if (s.contains("eta_min")) eta_min_ = json_get<double>(s, "eta_min", p);
  if (s.contains("T_max")) t_max_ = std::max<int64_t>(1, json_get<int64_t>(s, "T_max", p));
}

// ---------------------------------------------------------------- LinearLR
LinearLR::LinearLR(OptimizerRef opt, double start_factor, double end_factor, int64_t total_iters)
    : LRScheduler(std::move(opt), "LinearLR"),
      start_factor_(start_factor),
      end_factor_(end_factor),
      total_iters_(total_iters) {
  EMBER_CHECK(start_factor > 0 && start_factor <= 1, ValueError,
              "[LinearLR] Starting multiplicative factor expected to be greater than 0 and less or equal to 1, got ",
              start_factor);
  EMBER_CHECK(end_factor >= 0 && end_factor <= 1, ValueError,
              "[LinearLR] Ending multiplicative factor expected to be between 0 and 1, got ", end_factor);
  EMBER_CHECK(total_iters > 0, ValueError, "[LinearLR] total_iters must be positive, got ", total_iters);
  initial_step();
}
std::vector<double> LinearLR::get_lr() {
  std::vector<double> v = group_lrs();
  if (last_epoch_ == 0) {
    for (double& lr : v) lr = lr * start_factor_;
    return v;
  }
  if (is_initial_ || last_epoch_ > total_iters_) return v;
  const double f =
      1.0 + (end_factor_ - start_factor_) / (static_cast<double>(total_iters_) * start_factor_ +
                                             static_cast<double>(last_epoch_ - 1) * (end_factor_ - start_factor_));
  for (double& lr : v) lr = lr * f;
  return v;
}
std::optional<std::vector<double>> LinearLR::closed_form_lr() const {
  std::vector<double> v;
  const auto m = static_cast<double>(std::min(total_iters_, last_epoch_));
  for (double b : base_lrs_)
    v.push_back(b * (start_factor_ + (end_factor_ - start_factor_) * m / static_cast<double>(total_iters_)));
  return v;
}
nlohmann::json LinearLR::state_dict() const {
  auto j = LRScheduler::state_dict();
  j["start_factor"] = start_factor_;
  j["end_factor"] = end_factor_;
  j["total_iters"] = total_iters_;
  return j;
}
void LinearLR::load_state_dict(const nlohmann::json& s) { LRScheduler::load_state_dict(s); }

// ---------------------------------------------------------------- LambdaLR
LambdaLR::LambdaLR(OptimizerRef opt, Lambda lr_lambda) : LRScheduler(std::move(opt), "LambdaLR") {
  EMBER_CHECK(static_cast<bool>(lr_lambda), ValueError, "[LambdaLR] lr_lambda is empty");
  lambdas_.assign(opt_->num_param_groups(), std::move(lr_lambda));
  initial_step();
}
LambdaLR::LambdaLR(OptimizerRef opt, std::vector<Lambda> lr_lambdas)
    : LRScheduler(std::move(opt), "LambdaLR"), lambdas_(std::move(lr_lambdas)) {
  EMBER_CHECK(lambdas_.size() == opt_->num_param_groups(), ValueError, "[LambdaLR] Expected ", opt_->num_param_groups(),
              " lr_lambdas, but got ", lambdas_.size());
  for (const auto& f : lambdas_) EMBER_CHECK(static_cast<bool>(f), ValueError, "[LambdaLR] an lr_lambda is empty");
  initial_step();
}
std::vector<double> LambdaLR::get_lr() {
  std::vector<double> v;
  for (size_t g = 0; g < base_lrs_.size(); ++g) v.push_back(base_lrs_[g] * lambdas_[g](last_epoch_));
  return v;
}

// ---------------------------------------------------------------- SequentialLR
SequentialLR::SequentialLR(OptimizerRef opt, std::vector<std::shared_ptr<LRScheduler>> schedulers,
                           std::vector<int64_t> milestones)
    : LRScheduler(std::move(opt), "SequentialLR"),
      schedulers_(std::move(schedulers)),
      milestones_(std::move(milestones)) {
  EMBER_CHECK(!schedulers_.empty(), ValueError, "[SequentialLR] expects at least one scheduler, but got no scheduler");
  for (size_t i = 0; i < schedulers_.size(); ++i) {
    EMBER_CHECK(schedulers_[i] != nullptr, ValueError, "[SequentialLR] scheduler ", i, " is null");
    EMBER_CHECK(dynamic_cast<ReduceLROnPlateau*>(schedulers_[i].get()) == nullptr, ValueError,
                "[SequentialLR] does not support ReduceLROnPlateau (its step needs a metric), got one at index ", i);
    EMBER_CHECK(schedulers_[i]->opt_.get() == opt_.get(), ValueError,
                "[SequentialLR] expects all schedulers to belong to the same optimizer, but scheduler ", i, " (",
                schedulers_[i]->name(), ") has another");
  }
  EMBER_CHECK(milestones_.size() + 1 == schedulers_.size(), ValueError,
              "[SequentialLR] expects one milestone fewer than schedulers, got ", schedulers_.size(),
              " schedulers and ", milestones_.size(), " milestones");
  EMBER_CHECK(std::is_sorted(milestones_.begin(), milestones_.end()), ValueError,
              "[SequentialLR] milestones must be increasing");
  last_epoch_ = 0;
  const std::vector<double> initial = group_values("initial_lr");
  for (size_t g = 0; g < initial.size(); ++g) opt_->set_lr(g, initial[g]);
  for (auto& s : schedulers_) undo(*s);
  auto& first = *schedulers_[static_cast<size_t>(bisect_right(milestones_, 0))];
  first.initial_step();
  last_lr_ = first.get_last_lr();
}

void SequentialLR::undo(LRScheduler& s) {
  if (auto* seq = dynamic_cast<SequentialLR*>(&s)) {
    for (auto& inner : seq->schedulers_) undo(*inner);
  } else {
    s.last_epoch_ -= 1;
  }
}

void SequentialLR::step() {
  ++last_epoch_;
  const int64_t idx = bisect_right(milestones_, last_epoch_);
  LRScheduler& s = *schedulers_[static_cast<size_t>(idx)];
  if (idx > 0 && milestones_[static_cast<size_t>(idx - 1)] == last_epoch_)
    s.update_lr(0);
  else
    s.step();
  last_lr_ = s.get_last_lr();
}

nlohmann::json SequentialLR::state_dict() const {
  auto j = LRScheduler::state_dict();
  j["_milestones"] = milestones_;
  nlohmann::json subs = nlohmann::json::array();
  for (const auto& s : schedulers_) subs.push_back(s->state_dict());
  j["_schedulers"] = std::move(subs);
  return j;
}

void SequentialLR::load_state_dict(const nlohmann::json& s) {
  const std::string p = prefix("load_state_dict");
  auto subs = json_get<std::vector<nlohmann::json>>(s, "_schedulers", p);
  EMBER_CHECK(subs.size() == schedulers_.size(), ValueError, p, "the state has ", subs.size(),
              " schedulers, this SequentialLR has ", schedulers_.size());
  LRScheduler::load_state_dict(s);
  for (size_t i = 0; i < subs.size(); ++i) schedulers_[i]->load_state_dict(subs[i]);
}

// ---------------------------------------------------------------- OneCycleLR
OneCycleLR::OneCycleLR(OptimizerRef opt, const OneCycleLROptions& o)
    : LRScheduler(std::move(opt), "OneCycleLR"), o_(o) {
  const char* n = "[OneCycleLR] ";
  if (o.total_steps != 0) {
    EMBER_CHECK(o.total_steps > 0, ValueError, n, "Expected positive integer total_steps, but got ", o.total_steps);
    total_steps_ = o.total_steps;
  } else if (o.epochs != 0 || o.steps_per_epoch != 0) {
    EMBER_CHECK(o.epochs > 0, ValueError, n, "Expected positive integer epochs, but got ", o.epochs);
    EMBER_CHECK(o.steps_per_epoch > 0, ValueError, n, "Expected positive integer steps_per_epoch, but got ",
                o.steps_per_epoch);
    total_steps_ = o.epochs * o.steps_per_epoch;
  } else {
    throw ValueError(std::string(n) + "You must define either total_steps OR (epochs AND steps_per_epoch)");
  }
  EMBER_CHECK(o.pct_start >= 0 && o.pct_start <= 1, ValueError, n, "Expected float between 0 and 1 pct_start, but got ",
              o.pct_start);
  EMBER_CHECK(o.anneal_strategy == "cos" || o.anneal_strategy == "linear", ValueError, n,
              "anneal_strategy must be one of 'cos' or 'linear', instead got ", o.anneal_strategy);
  const auto total = static_cast<double>(total_steps_);
  if (o.three_phase)
    phases_ = {{o.pct_start * total - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"},
               {2 * o.pct_start * total - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"},
               {total - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"}};
  else
    phases_ = {{o.pct_start * total - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"},
               {total - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"}};

  const size_t groups = opt_->num_param_groups();
  std::vector<double> max_lrs = o.max_lrs.empty() ? std::vector<double>(groups, o.max_lr) : o.max_lrs;
  EMBER_CHECK(max_lrs.size() == groups, ValueError, n, "expected ", groups, " values for max_lr, got ", max_lrs.size());
  for (double m : max_lrs) EMBER_CHECK(m > 0, ValueError, n, "max_lr must be positive, got ", m);
  for (size_t g = 0; g < groups; ++g) {
    const double initial = max_lrs[g] / o.div_factor;
    opt_->set_group_value(g, "initial_lr", initial);
    opt_->set_group_value(g, "max_lr", max_lrs[g]);
    opt_->set_group_value(g, "min_lr", initial / o.final_div_factor);
  }
  if (o.cycle_momentum) {
    EMBER_CHECK(opt_->has_momentum(), ValueError, n, "optimizer ", opt_->name(),
                " must support momentum or beta1 with `cycle_momentum` option enabled");
    for (size_t g = 0; g < groups; ++g) {
      opt_->set_momentum(g, o.max_momentum);
      opt_->set_group_value(g, "max_momentum", o.max_momentum);
      opt_->set_group_value(g, "base_momentum", o.base_momentum);
    }
  }
  base_lrs_ = group_values("initial_lr");
  initial_step();
}

double OneCycleLR::anneal(double start, double end, double pct) const {
  if (o_.anneal_strategy == "cos") {
    const double cos_out = std::cos(std::numbers::pi * pct) + 1;
    return end + (start - end) / 2.0 * cos_out;
  }
  return (end - start) * pct + start;
}

std::vector<double> OneCycleLR::get_lr() {
  const int64_t step_num = last_epoch_;
  EMBER_CHECK(step_num <= total_steps_, ValueError, "[OneCycleLR] Tried to step ", step_num,
              " times. The specified number of total steps is ", total_steps_);
  std::vector<double> lrs;
  for (size_t g = 0; g < opt_->num_param_groups(); ++g) {
    auto val = [&](const char* key) { return *opt_->group_value(g, key); };
    double start_step = 0.0, lr = 0, momentum = 0;
    for (size_t i = 0; i < phases_.size(); ++i) {
      const Phase& ph = phases_[i];
      if (static_cast<double>(step_num) <= ph.end_step || i == phases_.size() - 1) {
        const double pct = (static_cast<double>(step_num) - start_step) / (ph.end_step - start_step);
        lr = anneal(val(ph.start_lr), val(ph.end_lr), pct);
        if (o_.cycle_momentum) momentum = anneal(val(ph.start_momentum), val(ph.end_momentum), pct);
        break;
      }
      start_step = ph.end_step;
    }
    lrs.push_back(lr);
    if (o_.cycle_momentum) opt_->set_momentum(g, momentum);
  }
  return lrs;
}

nlohmann::json OneCycleLR::state_dict() const {
  auto j = LRScheduler::state_dict();
  j["total_steps"] = total_steps_;
  j["cycle_momentum"] = o_.cycle_momentum;
  j["anneal_strategy"] = o_.anneal_strategy;
  return j;
}

// ---------------------------------------------------------------- ReduceLROnPlateau
ReduceLROnPlateau::ReduceLROnPlateau(OptimizerRef opt, const ReduceLROnPlateauOptions& o)
    : LRScheduler(std::move(opt), "ReduceLROnPlateau", false), o_(o) {
  const char* n = "[ReduceLROnPlateau] ";
  EMBER_CHECK(o.factor < 1.0, ValueError, n, "Factor should be < 1.0, got ", o.factor);
  EMBER_CHECK(o.mode == "min" || o.mode == "max", ValueError, n, "mode ", o.mode, " is unknown!");
  EMBER_CHECK(o.threshold_mode == "rel" || o.threshold_mode == "abs", ValueError, n, "threshold mode ",
              o.threshold_mode, " is unknown!");
  const size_t groups = opt_->num_param_groups();
  min_lrs_ = o.min_lrs.empty() ? std::vector<double>(groups, o.min_lr) : o.min_lrs;
  EMBER_CHECK(min_lrs_.size() == groups, ValueError, n, "expected ", groups, " min_lrs, got ", min_lrs_.size());
  last_epoch_ = 0;
  last_lr_ = group_lrs();
  best_ = mode_worse();
}

double ReduceLROnPlateau::mode_worse() const {
  return o_.mode == "min" ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
}

bool ReduceLROnPlateau::is_better(double a, double best) const {
  if (o_.mode == "min" && o_.threshold_mode == "rel") return a < best * (1.0 - o_.threshold);
  if (o_.mode == "min") return a < best - o_.threshold;
  if (o_.threshold_mode == "rel") return a > best * (o_.threshold + 1.0);
  return a > best + o_.threshold;
}

void ReduceLROnPlateau::step() {
  throw ValueError("[ReduceLROnPlateau] step() needs the monitored metric: call step(metric)");
}

void ReduceLROnPlateau::step(double metric) {
  last_epoch_ += 1;
  if (is_better(metric, best_)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    num_bad_epochs_ += 1;
  }
  if (cooldown_counter_ > 0) {
    cooldown_counter_ -= 1;
    num_bad_epochs_ = 0;  // bad epochs in cooldown don't count
  }
  if (num_bad_epochs_ > o_.patience) {
    EMBER_CHECK(min_lrs_.size() == opt_->num_param_groups(), ValueError, "[ReduceLROnPlateau] the optimizer has ",
                opt_->num_param_groups(), " param groups, but ", min_lrs_.size(), " min_lrs were given");
    for (size_t g = 0; g < min_lrs_.size(); ++g) {
      const double old_lr = opt_->lr(g);
      const double new_lr = std::max(old_lr * o_.factor, min_lrs_[g]);
      if (old_lr - new_lr > o_.eps) opt_->set_lr(g, new_lr);
    }
    cooldown_counter_ = o_.cooldown;
    num_bad_epochs_ = 0;
  }
  last_lr_ = group_lrs();
}

nlohmann::json ReduceLROnPlateau::state_dict() const {
  auto j = LRScheduler::state_dict();
  j["best"] = std::isfinite(best_) ? nlohmann::json(best_) : nlohmann::json();  // null: +-inf (no best yet)
  j["num_bad_epochs"] = num_bad_epochs_;
  j["cooldown_counter"] = cooldown_counter_;
  j["mode"] = o_.mode;
  j["factor"] = o_.factor;
  j["patience"] = o_.patience;
  j["threshold"] = o_.threshold;
  j["threshold_mode"] = o_.threshold_mode;
  j["cooldown"] = o_.cooldown;
  j["min_lrs"] = min_lrs_;
  j["eps"] = o_.eps;
  return j;
}

void ReduceLROnPlateau::load_state_dict(const nlohmann::json& s) {
  const std::string p = prefix("load_state_dict");
  auto bad = json_get<int64_t>(s, "num_bad_epochs", p);
  auto cooldown = json_get<int64_t>(s, "cooldown_counter", p);
  EMBER_CHECK(s.contains("best"), ValueError, p, "state lacks 'best'");
  const double best = s["best"].is_null() ? mode_worse() : json_get<double>(s, "best", p);
  LRScheduler::load_state_dict(s);
  best_ = best;
  num_bad_epochs_ = bad;
  cooldown_counter_ = cooldown;
}

}  // namespace ember::optim
