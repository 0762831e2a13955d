// MetricCollector: Lightning's logging rules (per-hook on_step/on_epoch defaults, "_step"/"_epoch"
// suffixes, batch-size-weighted epoch means) and their exact state for mid-epoch checkpoints.
#include "train/metrics.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <utility>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/io/json_read.hpp"
#include "core/ops/shape.hpp"
#include "train/metrics/metrics.hpp"

namespace ember::train {
namespace {

bool both(bool on_step, bool on_epoch) { return on_step && on_epoch; }
std::string step_key(const std::string& name, bool on_epoch) { return on_epoch ? name + "_step" : name; }
std::string epoch_key(const std::string& name, bool on_step) { return on_step ? name + "_epoch" : name; }

// Doubles travel as their bit patterns: exact, and NaN/inf survive (JSON has no spelling for them).
uint64_t bits(double v) { return std::bit_cast<uint64_t>(v); }
double from_bits(const nlohmann::json& j) { return std::bit_cast<double>(json_uint64(j, "[Trainer] a metric's bits")); }

}  // namespace

const double& MetricMap::at(const std::string& name) const {
  auto it = find(name);
  if (it != end()) return it->second;
  std::string logged;
  for (const auto& [k, v] : *this) logged += (logged.empty() ? "" : ", ") + k;
  throw ValueError(detail::cat_str("[metrics] no metric '", name, "'; the metrics hold: ",
                                   logged.empty() ? "nothing (nothing was logged yet)" : logged));
}

double& MetricMap::at(const std::string& name) {
  return const_cast<double&>(static_cast<const MetricMap&>(*this).at(name));
}

// The options' checks and the entry (new, or the same options as earlier in this epoch).
MetricCollector::Entry& MetricCollector::admit(const std::string& name, const LogOptions& options, bool& on_step,
                                               bool& on_epoch) {
  EMBER_CHECK(!name.empty(), ValueError, "[log] a metric needs a name");
  const std::string& r = options.reduce;
  EMBER_CHECK(r == "mean" || r == "sum" || r == "max" || r == "min", ValueError, "[log] '", name,
              "': reduce must be \"mean\", \"sum\", \"max\" or \"min\", got \"", r, "\"");
  on_step = options.on_step.value_or(in_step_ && training_);
  on_epoch = options.on_epoch.value_or(!(in_step_ && training_));
  EMBER_CHECK(on_step || on_epoch, ValueError, "[log] '", name, "' has on_step and on_epoch both false");
  const int64_t batch_size = options.batch_size.value_or(batch_size_);
  EMBER_CHECK(batch_size >= 0, ValueError, "[log] '", name, "': batch_size must be >= 0, got ", batch_size);

  EntrySet& set = current();
  auto [it, fresh] = set.try_emplace(name);
  Entry& e = it->second;
  if (fresh) {
    e.on_step = on_step;
    e.on_epoch = on_epoch;
    e.prog_bar = options.prog_bar;
    e.logger = options.logger;
    e.reduce = r;
  } else {
    EMBER_CHECK(e.metric_type.empty(), ValueError, "[log] '", name,
                "' was logged earlier in this epoch as a metric object, now as a number");
    EMBER_CHECK(e.on_step == on_step && e.on_epoch == on_epoch && e.reduce == r, ValueError, "[log] '", name,
                "' was logged earlier in this epoch with different on_step/on_epoch/reduce options");
    e.prog_bar = e.prog_bar || options.prog_bar;
  }
  return e;
}

void MetricCollector::set_callback(const std::string& key, const Value& v) {
  if (v.tensor.defined()) {
    callback_unread_[key] = v.tensor;
  } else {
    callback_[key] = v.number;
    callback_unread_.erase(key);
  }
}

void MetricCollector::set_progress(const std::string& key, const Value& v) {
  if (v.tensor.defined()) {
    progress_unread_[key] = v.tensor;
  } else {
    progress_[key] = v.number;
    progress_unread_.erase(key);
  }
}

// One epoch value into the running reduction: the arithmetic every value goes through, read or not.
void MetricCollector::fold(Entry& e, double value, int64_t batch_size) {
  const std::string& r = e.reduce;
  if (e.count == 0) e.extreme = value;
  if (r == "mean") {
    e.sum += value * double(batch_size);
    e.weight += double(batch_size);
  } else if (r == "sum") {
    e.sum += value;
  } else if (r == "max") {
    e.extreme = std::isnan(value) || value > e.extreme ? value : e.extreme;
  } else {
    e.extreme = std::isnan(value) || value < e.extreme ? value : e.extreme;
  }
  ++e.count;
}

void MetricCollector::record(const std::string& name, Entry& e, const Value& v, int64_t batch_size) {
  if (e.on_step) {
    e.step_pending = true;
    e.step_tensor = v.tensor;
    if (!v.tensor.defined()) e.step_value = v.number;
    const std::string key = step_key(name, e.on_epoch);
    set_callback(key, v);
    if (both(e.on_step, e.on_epoch)) set_callback(name, v);
    if (e.prog_bar) set_progress(key, v);
  }
  if (e.on_epoch) {
    if (v.tensor.defined() || !e.queue.empty())
      e.queue.push_back({v.number, v.tensor, batch_size});
    else
      fold(e, v.number, batch_size);
  }
}

void MetricCollector::log(const std::string& name, double value, const LogOptions& options) {
  bool on_step = false, on_epoch = false;
  Entry& e = admit(name, options, on_step, on_epoch);
  // Every value logged with sync_dist is reduced when logged, so the epoch value reduces synced values.
  if (options.sync_dist && sync_) value = sync_(value, options.reduce);
  record(name, e, Value{value, Tensor()}, options.batch_size.value_or(batch_size_));
}

void MetricCollector::log(const std::string& name, const Tensor& value, const LogOptions& options) {
  EMBER_CHECK(value.defined() && value.numel() == 1, ValueError, "[log] '", name,
              "' must be a one-element tensor, got ", value.defined() ? describe(value) : std::string("undefined"));
  bool on_step = false, on_epoch = false;
  Entry& e = admit(name, options, on_step, on_epoch);
  Tensor v;
  {
    autograd::NoGradGuard no_grad;
    v = value.detach().to(kF64).reshape({});
    // A copy of its own, so an in-place change of the logged tensor after log() cannot reach the value.
    if (v.impl().storage == value.impl().storage) v = v.clone();
  }
  if (options.sync_dist && tensor_sync_) {
    v = tensor_sync_(v.reshape({1}), options.reduce).reshape({});
  } else if (options.sync_dist && sync_) {  // no tensor sync given: read it now
    log(name, v.item<double>(), options);
    return;
  }
  record(name, e, Value{0.0, v}, options.batch_size.value_or(batch_size_));
}

bool MetricCollector::has_unread() const {
  if (!callback_unread_.empty() || !progress_unread_.empty()) return true;
  for (const EntrySet* set : {&train_, &eval_})
    for (const auto& [name, e] : *set)
      if (e.step_tensor.defined() || !e.queue.empty()) return true;
  return false;
}

void MetricCollector::resolve() const {
  if (!has_unread()) return;
  // Every unread tensor once (one value is often behind several keys), grouped by device.
  std::map<const TensorImpl*, double> values;
  std::vector<std::pair<Device, std::vector<Tensor>>> by_device;
  auto want = [&](const Tensor& t) {
    if (!t.defined() || !values.emplace(&t.impl(), 0.0).second) return;
    auto it = std::find_if(by_device.begin(), by_device.end(), [&](const auto& d) { return d.first == t.device(); });
    if (it == by_device.end()) it = by_device.insert(by_device.end(), {t.device(), {}});
    it->second.push_back(t);
  };
  for (const auto& [k, t] : callback_unread_) want(t);
  for (const auto& [k, t] : progress_unread_) want(t);
  for (const EntrySet* set : {&train_, &eval_})
    for (const auto& [name, e] : *set) {
      want(e.step_tensor);
      for (const Entry::Queued& q : e.queue) want(q.tensor);
    }
  for (auto& [device, tensors] : by_device) {
    std::vector<Tensor> flat;
    flat.reserve(tensors.size());
    for (const Tensor& t : tensors) flat.push_back(t.reshape({1}));
    const std::vector<double> read = cat(flat).to_vector<double>();  // the one host read of this device
    for (size_t i = 0; i < tensors.size(); ++i) values[&tensors[i].impl()] = read[i];
  }
  auto value_of = [&](const Tensor& t) { return values.at(&t.impl()); };
  for (const auto& [k, t] : callback_unread_) callback_[k] = value_of(t);
  for (const auto& [k, t] : progress_unread_) progress_[k] = value_of(t);
  callback_unread_.clear();
  progress_unread_.clear();
  for (EntrySet* set : {&train_, &eval_})
    for (auto& [name, e] : *set) {
      if (e.step_tensor.defined()) e.step_value = value_of(e.step_tensor);
      e.step_tensor = Tensor();
      for (const Entry::Queued& q : e.queue) fold(e, q.tensor.defined() ? value_of(q.tensor) : q.value, q.batch_size);
      e.queue.clear();
    }
}

void MetricCollector::log(const std::string& name, metrics::Metric& metric, const LogOptions& options) {
  EMBER_CHECK(!name.empty(), ValueError, "[log] a metric needs a name");
  const bool on_step = options.on_step.value_or(in_step_ && training_);
  const bool on_epoch = options.on_epoch.value_or(!(in_step_ && training_));
  EMBER_CHECK(on_step || on_epoch, ValueError, "[log] '", name, "' has on_step and on_epoch both false");
  auto [it, fresh] = current().try_emplace(name);
  Entry& e = it->second;
  if (fresh) {
    e.on_step = on_step;
    e.on_epoch = on_epoch;
    e.prog_bar = options.prog_bar;
    e.logger = options.logger;
  } else {
    EMBER_CHECK(!e.metric_type.empty(), ValueError, "[log] '", name,
                "' was logged earlier in this epoch as a number, now as a metric object");
    EMBER_CHECK(e.metric == nullptr || e.metric == &metric, ValueError, "[log] '", name,
                "' was logged earlier in this epoch with another metric object");
    EMBER_CHECK(e.on_step == on_step && e.on_epoch == on_epoch, ValueError, "[log] '", name,
                "' was logged earlier in this epoch with different on_step/on_epoch options");
    e.prog_bar = e.prog_bar || options.prog_bar;
  }
  e.metric = &metric;
  e.metric_type = metric.name();
  e.metric_config = metric.config();
  if (!e.pending.empty()) metric.merge_state(std::exchange(e.pending, {}));  // a resumed epoch's state
  if (on_step) {
    const Tensor& v = metric.forward_value();
    EMBER_CHECK(v.defined() && v.numel() == 1, ValueError, "[log] '", name, "' logs a ", metric.name(),
                " on_step, which is the value of the batch given to the metric's forward: call it on the batch "
                "(metric(preds, target)) rather than update(), and log a metric whose value is one number");
    Tensor value;
    {
      autograd::NoGradGuard no_grad;
      value = v.detach().to(kF64).reshape({});
      if (value.impl().storage == v.impl().storage) value = value.clone();  // the metric may reuse it
    }
    e.step_pending = true;
    e.step_tensor = value;
    const std::string key = step_key(name, on_epoch);
    set_callback(key, Value{0.0, value});
    if (both(on_step, on_epoch)) set_callback(name, Value{0.0, value});
    if (e.prog_bar) set_progress(key, Value{0.0, value});
  }
  if (on_epoch) ++e.count;
}

// compute() over every rank's state, then reset(), as Lightning does with a logged torchmetrics metric.
double MetricCollector::metric_value(const std::string& name, Entry& e) {
  std::unique_ptr<metrics::Metric> rebuilt;
  metrics::Metric* m = e.metric;
  if (m == nullptr) {  // resumed, and not logged again before the epoch's end
    rebuilt = metrics::make_metric(e.metric_type, e.metric_config);
    m = rebuilt.get();
  }
  if (!e.pending.empty()) m->merge_state(std::exchange(e.pending, {}));
  if (comm_ != nullptr) m->sync(*comm_);
  const Tensor v = m->compute();
  m->reset();
  EMBER_CHECK(v.numel() == 1, ValueError, "[log] '", name, "': ", m->name(), ".compute() gave ", describe(v),
              "; a logged metric must be one number (log the elements of a per-class result one by one)");
  return v.to(kF64).cpu().item<double>();
}

TensorMap MetricCollector::metric_states() const {
  TensorMap out;
  for (const auto& [name, e] : train_) {
    if (e.metric_type.empty() || !e.on_epoch) continue;
    std::unique_ptr<metrics::Metric> rebuilt;
    const metrics::Metric* m = e.metric;
    if (m == nullptr || !e.pending.empty()) {
      rebuilt = metrics::make_metric(e.metric_type, e.metric_config);
      if (e.metric != nullptr) rebuilt->load_state_dict(e.metric->state_dict());
      if (!e.pending.empty()) rebuilt->merge_state(e.pending);
      m = rebuilt.get();
    }
    for (const auto& [k, t] : comm_ != nullptr ? m->synced_state(*comm_) : m->state_dict())
      out.emplace(name + "." + k, t);
  }
  return out;
}

void MetricCollector::load_metric_states(const TensorMap& tensors, const std::string& prefix, bool keep) {
  for (auto& [name, e] : train_) {
    if (e.metric_type.empty() || !e.on_epoch) continue;
    const std::string p = prefix + name + ".";
    TensorMap state;
    for (const auto& [k, t] : tensors)
      if (k.rfind(p, 0) == 0 && k.find('.', p.size()) == std::string::npos) state.emplace(k.substr(p.size()), t);
    auto m = metrics::make_metric(e.metric_type, e.metric_config);
    m->load_state_dict(state);  // checks every state's name, dtype and shape
    e.metric = nullptr;
    e.pending = keep ? m->state_dict() : TensorMap{};
  }
}

MetricMap MetricCollector::take_step_metrics(bool read) {
  MetricMap out;
  bool pending = false, long_queue = false;
  for (const auto& [name, e] : current()) {
    pending = pending || (e.step_pending && e.logger);
    long_queue = long_queue || e.queue.size() >= kMaxUnread;
  }
  if ((read && pending) || long_queue) resolve();
  for (auto& [name, e] : current()) {
    if (!read) {
      e.step_pending = false;
      continue;
    }
    if (!e.step_pending) continue;
    e.step_pending = false;
    if (e.logger) out[step_key(name, e.on_epoch)] = e.step_value;
  }
  return out;
}

MetricMap MetricCollector::end_epoch() {
  resolve();
  MetricMap out;
  for (auto& [name, e] : current()) {
    if (!e.metric_type.empty() && (!e.on_epoch || e.count == 0)) {
      if (e.metric != nullptr) e.metric->reset();
      continue;
    }
    if (!e.on_epoch || e.count == 0) continue;
    double v = !e.metric_type.empty() ? metric_value(name, e)
               : e.reduce == "mean"   ? (e.weight > 0 ? e.sum / e.weight : std::nan(""))
               : e.reduce == "sum"    ? e.sum
                                      : e.extreme;
    const std::string key = epoch_key(name, e.on_step);
    callback_[key] = v;
    callback_[name] = v;
    if (e.prog_bar) progress_[key] = v;
    if (e.logger) out[key] = v;
  }
  current().clear();
  return out;
}

void MetricCollector::reset_epoch() { current().clear(); }

void MetricCollector::note_logged(const MetricMap& metrics) {
  for (const auto& [k, v] : metrics) logged_[k] = v;
}

void MetricCollector::add_callback_metrics(const std::map<std::string, double>& metrics) {
  for (const auto& [k, v] : metrics) set_callback(k, Value{v, Tensor()});
}

void MetricCollector::clear() {
  train_.clear();
  eval_.clear();
  callback_.clear();
  logged_.clear();
  progress_.clear();
  callback_unread_.clear();
  progress_unread_.clear();
}

nlohmann::json MetricCollector::state_dict() const {
  resolve();
  nlohmann::json entries = nlohmann::json::object();
  for (const auto& [name, e] : train_) {
    entries[name] = {{"on_step", e.on_step},
                     {"on_epoch", e.on_epoch},
                     {"prog_bar", e.prog_bar},
                     {"logger", e.logger},
                     {"reduce", e.reduce},
                     {"sum", bits(e.sum)},
                     {"weight", bits(e.weight)},
                     {"extreme", bits(e.extreme)},
                     {"count", e.count},
                     {"step_pending", e.step_pending},
                     {"step_value", bits(e.step_value)}};
    if (!e.metric_type.empty()) {
      entries[name]["metric_type"] = e.metric_type;
      entries[name]["metric_config"] = e.metric_config;
    }
  }
  nlohmann::json callback = nlohmann::json::object();
  for (const auto& [k, v] : callback_) callback[k] = bits(v);
  return {{"train", entries}, {"callback_metrics", callback}};
}

void MetricCollector::load_state_dict(const nlohmann::json& state) {
  try {
    EntrySet train;
    for (const auto& [name, j] : state.at("train").items()) {
      Entry e;
      e.on_step = j.at("on_step").get<bool>();
      e.on_epoch = j.at("on_epoch").get<bool>();
      e.prog_bar = j.at("prog_bar").get<bool>();
      e.logger = j.at("logger").get<bool>();
      e.reduce = j.at("reduce").get<std::string>();
      e.sum = from_bits(j.at("sum"));
      e.weight = from_bits(j.at("weight"));
      e.extreme = from_bits(j.at("extreme"));
      e.count = json_int64(j.at("count"), "[Trainer] a metric's count");
      EMBER_CHECK(e.reduce == "mean" || e.reduce == "sum" || e.reduce == "max" || e.reduce == "min", ValueError,
                  "[Trainer] metric '", name, "': unknown reduce \"", e.reduce, "\"");
      EMBER_CHECK(e.count >= 0 && e.weight >= 0, ValueError, "[Trainer] metric '", name, "': negative count or weight");
      EMBER_CHECK(e.on_step || e.on_epoch, ValueError, "[Trainer] metric '", name,
                  "' is logged neither on step nor epoch");
      e.step_pending = j.at("step_pending").get<bool>();
      e.step_value = from_bits(j.at("step_value"));
      if (j.contains("metric_type")) {
        e.metric_type = j.at("metric_type").get<std::string>();
        e.metric_config = j.at("metric_config");
        metrics::make_metric(e.metric_type, e.metric_config);  // a type this build knows, with valid options
      }
      train[name] = e;
    }
    MetricMap callback;
    for (const auto& [k, v] : state.at("callback_metrics").items()) callback[k] = from_bits(v);
    train_ = std::move(train);  // all or nothing
    callback_ = std::move(callback);
    callback_unread_.clear();
  } catch (const nlohmann::json::exception& e) {
    throw ValueError(detail::cat_str("[Trainer] checkpoint's logged-metric state is malformed: ", e.what()));
  }
}

}  // namespace ember::train
