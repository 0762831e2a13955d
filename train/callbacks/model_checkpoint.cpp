// ModelCheckpoint: when to save, file names from templates, the top-k bookkeeping and its state.
#include "train/callbacks/model_checkpoint.hpp"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <regex>
#include <set>

#include "core/error.hpp"
#include "core/io/json_read.hpp"
#include "core/io/temp_files.hpp"
#include "train/checkpoint.hpp"
#include "train/trainer.hpp"

namespace ember::train {
namespace fs = std::filesystem;
namespace {

// Python-style formatting of one value: "" (shortest round-trip), ".Nf", ".Ne", "d", "0Nd".
std::string format_value(double v, const std::string& spec, const std::string& field) {
  if (spec.empty()) {
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(int64_t(v));
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return ec == std::errc() ? std::string(buf, end) : std::to_string(v);
  }
  char kind = spec.back();
  std::string body = spec.substr(0, spec.size() - 1);
  char fmt[32];
  if ((kind == 'f' || kind == 'e' || kind == 'g') && (body.empty() || body[0] == '.' || std::isdigit(body[0])))
    std::snprintf(fmt, sizeof fmt, "%%%s%c", body.c_str(), kind);
  else if (kind == 'd')
    std::snprintf(fmt, sizeof fmt, "%%%slld", body.c_str());
  else
    throw ValueError(detail::cat_str("[ModelCheckpoint] filename field {", field, ":", spec,
                                     "}: supported formats are .Nf, .Ne, .Ng, d and 0Nd"));
  char out[128];
  if (kind == 'd')
    std::snprintf(out, sizeof out, fmt, static_cast<long long>(std::llround(v)));
  else
    std::snprintf(out, sizeof out, fmt, v);
  return out;
}

// Scores in the state: JSON numbers, or "inf"/"-inf" (JSON has no spelling for them).
nlohmann::json score_json(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(v > 0 ? "inf" : "-inf");
}
double score_value(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>() == "inf" ? INFINITY : -INFINITY;
  return j.get<double>();
}

std::string regex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

// Whether two folder names are the same folder (both resolved; false when either cannot be).
bool same_folder(const std::string& a, const std::string& b) {
  if (a.empty() || b.empty()) return false;
  std::error_code ea, eb;
  const fs::path pa = fs::weakly_canonical(a, ea), pb = fs::weakly_canonical(b, eb);
  return !ea && !eb && pa == pb;
}

}  // namespace

ModelCheckpoint::ModelCheckpoint(ModelCheckpointOptions options) : o_(std::move(options)) {
  EMBER_CHECK(o_.mode == "min" || o_.mode == "max", ValueError,
              "[ModelCheckpoint] mode must be \"min\" or \"max\", got \"", o_.mode, "\"");
  EMBER_CHECK(o_.save_top_k >= -1, ValueError, "[ModelCheckpoint] save_top_k must be >= -1, got ", o_.save_top_k);
  EMBER_CHECK(!o_.monitor.empty() || o_.save_top_k == -1 || o_.save_top_k == 0 || o_.save_top_k == 1, ValueError,
              "[ModelCheckpoint] save_top_k = ", o_.save_top_k, " needs a monitor to rank checkpoints by");
  EMBER_CHECK(o_.every_n_train_steps >= 0, ValueError, "[ModelCheckpoint] every_n_train_steps must be >= 0");
  EMBER_CHECK(!o_.every_n_epochs || *o_.every_n_epochs >= 0, ValueError,
              "[ModelCheckpoint] every_n_epochs must be >= 0");
  EMBER_CHECK(!o_.train_time_interval || *o_.train_time_interval > 0, ValueError,
              "[ModelCheckpoint] train_time_interval must be > 0 seconds");
  const int triggers =
      (o_.every_n_train_steps > 0) + (o_.train_time_interval.has_value()) + (o_.every_n_epochs.value_or(0) > 0);
  EMBER_CHECK(triggers <= 1, ValueError,
              "[ModelCheckpoint] every_n_train_steps, every_n_epochs and "
              "train_time_interval are mutually exclusive");
  if (!o_.every_n_epochs) o_.every_n_epochs = triggers == 0 ? 1 : 0;
  if (o_.filename.empty()) o_.filename = "{epoch}-{step}";
  dirpath_ = o_.dirpath;
}

std::string ModelCheckpoint::state_key() const {
  return detail::cat_str("ModelCheckpoint{monitor=", o_.monitor, ",mode=", o_.mode,
                         ",every_n_train_steps=", o_.every_n_train_steps, ",every_n_epochs=", *o_.every_n_epochs,
                         ",train_time_interval=", o_.train_time_interval.value_or(0), "}");
}

void ModelCheckpoint::setup(Trainer& trainer, TrainModule& /*module*/, const std::string& stage) {
  if (stage != "fit") return;
  if (dirpath_.empty()) dirpath_ = (fs::path(trainer.log_dir()) / "checkpoints").string();
  const TrainerOptions& t = trainer.options();
  const bool val_once_at_end = t.val_check_interval.is_fraction() && t.val_check_interval.fraction() == 1.0 &&
                               t.check_val_every_n_epoch.value_or(0) == 1;
  save_on_epoch_end_ = o_.save_on_train_epoch_end.value_or(val_once_at_end);
  // A killed save leaves "<name>.safetensors.tmp.<pid>" (the atomic writer's, or save_last's copy).
  if (trainer.is_global_zero())
    remove_stale_temp_files(dirpath_, [](const std::string& target) { return target.ends_with(kExtension); });
}

void ModelCheckpoint::on_fit_start(Trainer& trainer, TrainModule& /*module*/) {
  if (reconcile_pending_) reconcile(trainer, nullptr);  // restored by hand, not from the fit's ckpt_path
}

void ModelCheckpoint::on_load_checkpoint(Trainer& trainer, TrainModule& /*module*/, const Checkpoint& checkpoint) {
  if (reconcile_pending_) reconcile(trainer, &checkpoint);
}

void ModelCheckpoint::on_exception(Trainer& /*trainer*/, TrainModule& /*module*/, const std::exception& /*error*/) {
  reconcile_pending_ = false;  // a resume that failed part-way: its state is no ground for removing files
}

void ModelCheckpoint::on_train_start(Trainer& /*trainer*/, TrainModule& /*module*/) {
  last_time_check_ = std::chrono::steady_clock::now();
}

bool ModelCheckpoint::on_epoch_end_trigger(Trainer& trainer) const {
  const int64_t n = *o_.every_n_epochs;
  return n > 0 && (trainer.current_epoch() + 1) % n == 0;
}

void ModelCheckpoint::on_train_batch_end(Trainer& trainer, TrainModule& /*module*/, const Tensor& /*loss*/,
                                         const data::Batch& /*batch*/, int64_t /*batch_idx*/) {
  if (trainer.global_step() == last_global_step_saved_) return;
  bool due = o_.every_n_train_steps > 0 && trainer.global_step() % o_.every_n_train_steps == 0;
  if (o_.train_time_interval) {
    const auto now = std::chrono::steady_clock::now();
    bool elapsed = std::chrono::duration<double>(now - last_time_check_).count() >= *o_.train_time_interval;
    if (auto* comm = trainer.communicator()) elapsed = comm->broadcast_scalar(elapsed ? 1 : 0) != 0;  // rank 0's clock
    if (elapsed) {
      due = true;
      last_time_check_ = now;
    }
  }
  if (due) save(trainer);
}

void ModelCheckpoint::on_train_epoch_end(Trainer& trainer, TrainModule& /*module*/) {
  if (save_on_epoch_end_ && on_epoch_end_trigger(trainer)) save(trainer);
}

void ModelCheckpoint::on_validation_end(Trainer& trainer, TrainModule& /*module*/) {
  if (!trainer.training() || save_on_epoch_end_ || !on_epoch_end_trigger(trainer)) return;
  save(trainer);
}

namespace {
// Rank 0's map on every rank (values as bit patterns, so NaN and inf survive JSON).
MetricMap broadcast_metrics(dist::Communicator& comm, const MetricMap& metrics) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : metrics) j[k] = std::bit_cast<uint64_t>(v);
  const nlohmann::json got = nlohmann::json::parse(comm.broadcast_string(j.dump()));
  MetricMap out;
  for (const auto& [k, v] : got.items())
    out[k] = std::bit_cast<double>(json_uint64(v, "[ModelCheckpoint] a score's bits"));
  return out;
}
}  // namespace

void ModelCheckpoint::save(Trainer& trainer) {
  if (trainer.global_step() == last_global_step_saved_ && !last_model_path_.empty()) return;
  MetricMap candidates = trainer.callback_metrics();
  candidates["epoch"] = double(trainer.current_epoch());
  candidates["step"] = double(trainer.global_step());
  // Under DDP every rank must save the same files at the same steps: all decide on rank 0's metrics.
  if (auto* comm = trainer.communicator()) candidates = broadcast_metrics(*comm, candidates);
  last_global_step_saved_ = trainer.global_step();
  fs::create_directories(dirpath_);
  save_top_k(trainer, candidates);
}

std::string ModelCheckpoint::format_checkpoint_name(const MetricMap& metrics) const {
  std::string out;
  const std::string& f = o_.filename;
  size_t i = 0;
  while (i < f.size()) {
    if (f[i] != '{') {
      out += f[i++];
      continue;
    }
    const size_t close = f.find('}', i);
    EMBER_CHECK(close != std::string::npos, ValueError, "[ModelCheckpoint] filename '", f, "' has an unclosed '{'");
    const std::string field = f.substr(i + 1, close - i - 1);
    const size_t colon = field.find(':');
    const std::string name = field.substr(0, colon);
    const std::string spec = colon == std::string::npos ? "" : field.substr(colon + 1);
    auto it = metrics.find(name);
    const double v = it == metrics.end() ? 0.0 : it->second;  // Lightning writes 0 for a missing metric
    if (o_.auto_insert_metric_name) out += name + "=";
    out += format_value(v, spec, name);
    i = close + 1;
  }
  return out;
}

std::string ModelCheckpoint::unique_path(const Trainer& trainer, const MetricMap& candidates) const {
  const std::string base = format_checkpoint_name(candidates);
  fs::path p = fs::path(dirpath_) / (base + kExtension);
  if (!o_.enable_version_counter) return p.string();
  CheckpointIO& io = trainer.checkpoint_io();  // the store decides what exists (a non-file store too)
  for (int v = 1; io.exists(p.string()) && !best_k_models_.contains(p.string()) && p.string() != last_model_path_; ++v)
    p = fs::path(dirpath_) / (base + "-v" + std::to_string(v) + kExtension);
  auto* comm = trainer.communicator();
  return comm ? comm->broadcast_string(p.string()) : p.string();
}

bool ModelCheckpoint::better(double a, double b) const {
  if (std::isnan(a)) return false;
  if (std::isnan(b)) return true;
  return o_.mode == "min" ? a < b : a > b;
}

void ModelCheckpoint::save_top_k(Trainer& trainer, const MetricMap& candidates) {
  std::string written;
  if (o_.save_top_k != 0) {
    if (o_.monitor.empty()) {  // the latest save_top_k (1: replace, -1: keep all)
      const std::string path = unique_path(trainer, candidates);
      const std::string previous = best_model_path_;
      best_model_path_ = path;
      if (o_.save_top_k == -1) best_k_models_[path] = 0;
      trainer.save_checkpoint(path, o_.save_weights_only);
      written = path;
      if (o_.save_top_k == 1 && !previous.empty() && previous != path && trainer.is_global_zero())
        trainer.strategy().remove_checkpoint(previous, trainer.checkpoint_io());
    } else {
      auto it = candidates.find(o_.monitor);
      if (it == candidates.end()) {
        std::string available;
        for (const auto& [k, v] : candidates) available += (available.empty() ? "" : ", ") + k;
        throw ValueError(detail::cat_str("[ModelCheckpoint] monitor '", o_.monitor,
                                         "' was not logged; available metrics: ", available));
      }
      const double current = it->second;
      const bool room = o_.save_top_k == -1 || int64_t(best_k_models_.size()) < o_.save_top_k;
      const bool improves = room || better(current, best_k_models_.at(kth_best_model_path_));
      if (improves) {
        const std::string path = unique_path(trainer, candidates);
        std::string dropped;
        if (!room) {
          dropped = kth_best_model_path_;
          best_k_models_.erase(dropped);
        }
        best_k_models_[path] = std::isnan(current) ? (o_.mode == "min" ? INFINITY : -INFINITY) : current;
        // kth: the worst kept; best: the best kept
        auto worst = best_k_models_.begin(), best = best_k_models_.begin();
        for (auto k = best_k_models_.begin(); k != best_k_models_.end(); ++k) {
          if (better(worst->second, k->second)) worst = k;
          if (better(k->second, best->second)) best = k;
        }
        kth_best_model_path_ = worst->first;
        best_model_path_ = best->first;
        best_model_score_ = best->second;
        if (o_.verbose && trainer.is_global_zero())
          std::cout << "Epoch " << trainer.current_epoch() << ", global step " << trainer.global_step() << ": '"
                    << o_.monitor << "' reached " << current << ", saving " << path << "\n";
        trainer.save_checkpoint(path, o_.save_weights_only);
        written = path;
        if (!dropped.empty() && dropped != path && trainer.is_global_zero())
          trainer.strategy().remove_checkpoint(dropped, trainer.checkpoint_io());
      } else if (o_.verbose && trainer.is_global_zero()) {
        std::cout << "Epoch " << trainer.current_epoch() << ", global step " << trainer.global_step() << ": '"
                  << o_.monitor << "' was not in top " << o_.save_top_k << "\n";
      }
    }
  }
  if (o_.save_last) save_last(trainer, written);
}

void ModelCheckpoint::save_last(Trainer& trainer, const std::string& written) {
  const std::string path = (fs::path(dirpath_) / (std::string("last") + kExtension)).string();
  last_model_path_ = path;
  if (!written.empty()) {  // the same bytes: the store copies them (LocalCheckpointIO: atomically)
    if (trainer.is_global_zero()) trainer.strategy().copy_checkpoint(written, path, trainer.checkpoint_io());
  } else {
    trainer.save_checkpoint(path, o_.save_weights_only);
  }
}

nlohmann::json ModelCheckpoint::state_dict() const {
  nlohmann::json best_k = nlohmann::json::object();
  for (const auto& [k, v] : best_k_models_) best_k[k] = score_json(v);
  return {{"monitor", o_.monitor},
          {"dirpath", dirpath_},
          {"best_model_path", best_model_path_},
          {"best_model_score", best_model_score_ ? score_json(*best_model_score_) : nlohmann::json()},
          {"kth_best_model_path", kth_best_model_path_},
          {"last_model_path", last_model_path_},
          {"best_k_models", best_k},
          {"last_global_step_saved", last_global_step_saved_}};
}

void ModelCheckpoint::load_state_dict(const nlohmann::json& state) {
  try {
    if (state.at("dirpath").get<std::string>() != dirpath_ && !dirpath_.empty()) {
      // A different folder: the old top-k files are not ours to delete; keep only the best's path.
      best_model_path_ = state.at("best_model_path").get<std::string>();
      return;
    }
    best_model_path_ = state.at("best_model_path").get<std::string>();
    kth_best_model_path_ = state.at("kth_best_model_path").get<std::string>();
    last_model_path_ = state.at("last_model_path").get<std::string>();
    const auto& score = state.at("best_model_score");
    best_model_score_ = score.is_null() ? std::nullopt : std::optional<double>(score_value(score));
    best_k_models_.clear();
    for (const auto& [k, v] : state.at("best_k_models").items()) best_k_models_[k] = score_value(v);
    last_global_step_saved_ =
        json_int64(state.at("last_global_step_saved"), "[ModelCheckpoint] last_global_step_saved");
    // Untrusted input: a listed file outside the folder would be removed when it leaves the top k.
    const fs::path dir = fs::path(state.at("dirpath").get<std::string>()).lexically_normal();
    auto check_inside = [&](const std::string& p) {
      EMBER_CHECK(p.empty() || fs::path(p).lexically_normal().parent_path() == dir, ValueError,
                  "[ModelCheckpoint] the checkpoint state lists '", p, "', which is not in its folder ", dir.string());
    };
    for (const auto& [k, v] : best_k_models_) check_inside(k);
    for (const std::string* p : {&best_model_path_, &kth_best_model_path_, &last_model_path_}) check_inside(*p);
    EMBER_CHECK(kth_best_model_path_.empty() || best_k_models_.contains(kth_best_model_path_), ValueError,
                "[ModelCheckpoint] the checkpoint state's kth_best_model_path '", kth_best_model_path_,
                "' is not among its best_k_models");
    restored_dirpath_ = state.at("dirpath").get<std::string>();
    reconcile_pending_ = true;
  } catch (const nlohmann::json::exception& e) {
    throw ValueError(detail::cat_str("[ModelCheckpoint] checkpoint state is malformed: ", e.what()));
  }
}

std::optional<std::string> ModelCheckpoint::name_pattern() const {
  // What format_value can print: integers, fixed, exponent and shortest forms, inf and nan, any sign.
  static const std::string number = "[-+]?(?:[0-9]+(?:\\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|inf|nan)";
  std::string re;
  const std::string& f = o_.filename;
  for (size_t i = 0; i < f.size();) {
    if (f[i] != '{') {
      re += regex_escape(std::string(1, f[i++]));
      continue;
    }
    const size_t close = f.find('}', i);
    if (close == std::string::npos) return std::nullopt;
    const std::string field = f.substr(i + 1, close - i - 1);
    if (o_.auto_insert_metric_name) re += regex_escape(field.substr(0, field.find(':')) + "=");
    re += number;
    i = close + 1;
  }
  if (o_.enable_version_counter) re += "(?:-v[0-9]+)?";
  re += regex_escape(kExtension);
  return re;
}

void ModelCheckpoint::reconcile(const Trainer& trainer, const Checkpoint* resumed) {
  reconcile_pending_ = false;
  if (!trainer.is_global_zero() || o_.save_top_k <= 0 || !same_folder(restored_dirpath_, dirpath_)) return;
  if (resumed != nullptr && resumed->path.empty()) return;  // resumed from a file we cannot tell apart
  const std::optional<std::string> pattern = name_pattern();
  if (!pattern) return;
  const std::regex mine(*pattern);  // regex_match: the whole name
  // Names no one may lose: those this state lists, those other ModelCheckpoints list (by file name, so a
  // name listed for another folder is kept too), and "last".
  std::set<std::string> keep = {std::string("last") + kExtension};
  std::vector<std::regex> theirs;  // templates of other ModelCheckpoints writing to this folder
  auto keep_listed = [&keep](const ModelCheckpoint& mc) {
    for (const auto& [path, score] : mc.best_k_models_) keep.insert(fs::path(path).filename().string());
    for (const std::string* p : {&mc.best_model_path_, &mc.kth_best_model_path_, &mc.last_model_path_})
      if (!p->empty()) keep.insert(fs::path(*p).filename().string());
  };
  keep_listed(*this);
  for (const CallbackPtr& c : trainer.callbacks()) {
    const auto* mc = dynamic_cast<const ModelCheckpoint*>(c.get());
    if (mc == nullptr || mc == this) continue;
    keep_listed(*mc);
    if (same_folder(mc->dirpath_, dirpath_))
      if (auto p = mc->name_pattern()) theirs.emplace_back(*p);
  }
  std::vector<std::string> removed;
  std::error_code ec;
  for (fs::directory_iterator it(dirpath_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (it->symlink_status(type_ec).type() != fs::file_type::regular || type_ec) continue;
    if (keep.contains(name) || !std::regex_match(name, mine)) continue;
    bool shared = false;
    for (const std::regex& r : theirs) shared = shared || std::regex_match(name, r);
    if (shared) continue;
    std::error_code eq_ec;
    if (resumed != nullptr && fs::equivalent(it->path(), resumed->path, eq_ec)) continue;  // the file resumed from
    std::error_code rm_ec;
    if (fs::remove(it->path(), rm_ec) && !rm_ec) removed.push_back(name);
  }
  if (removed.empty()) return;
  std::string names;
  for (const std::string& n : removed) names += (names.empty() ? "" : ", ") + n;
  std::cerr << "[ModelCheckpoint] removed " << removed.size() << " checkpoint file(s) from " << dirpath_
            << " that the restored top-" << o_.save_top_k
            << " state does not list (left by an interrupted run): " << names << "\n";
}

}  // namespace ember::train
