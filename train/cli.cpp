// train::Cli: the TrainerOptions table, option and config-file parsing (yaml-cpp for YAML, nlohmann for
// JSON), --help, the YAML writer of the resolved config, and the callback that saves it beside the logs.
#include "train/cli.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "train/loggers/common.hpp"

namespace ember::train {

namespace fs = std::filesystem;
using detail::cat_str;

// ---------------------------------------------------------------- scalar text

namespace cli_detail {

void bad_value() { throw std::invalid_argument("bad value"); }

namespace {
bool is_int_text(const std::string& s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i == s.size()) return false;
  return std::all_of(s.begin() + static_cast<std::ptrdiff_t>(i), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_float_text(const std::string& s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  bool digits = false, point = false;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c >= '0' && c <= '9') {
      digits = true;
    } else if (c == '.' && !point) {
      point = true;
    } else if ((c == 'e' || c == 'E') && digits) {
      size_t j = i + 1;
      if (j < s.size() && (s[j] == '-' || s[j] == '+')) ++j;
      return j < s.size() && std::all_of(s.begin() + static_cast<std::ptrdiff_t>(j), s.end(),
                                         [](char d) { return d >= '0' && d <= '9'; });
    } else {
      return false;
    }
  }
  return digits;
}
}  // namespace

CliJson infer_scalar(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (is_int_text(s)) {
    const char* b = s.data() + (s[0] == '+' ? 1 : 0);
    int64_t v = 0;
    if (auto [p, ec] = std::from_chars(b, s.data() + s.size(), v); ec == std::errc() && p == s.data() + s.size())
      return v;
    uint64_t u = 0;
    if (auto [p, ec] = std::from_chars(b, s.data() + s.size(), u); ec == std::errc() && p == s.data() + s.size())
      return u;
    return s;  // out of range: left as text, which no number field accepts
  }
  if (is_float_text(s)) return std::strtod(s.c_str(), nullptr);
  for (const char* inf : {".inf", ".Inf", ".INF", "inf", "+.inf", "+inf"})
    if (s == inf) return std::numeric_limits<double>::infinity();
  for (const char* inf : {"-.inf", "-.Inf", "-.INF", "-inf"})
    if (s == inf) return -std::numeric_limits<double>::infinity();
  if (s == ".nan" || s == ".NaN" || s == ".NAN" || s == "nan") return std::numeric_limits<double>::quiet_NaN();
  return s;
}

CliJson list_from_text(const std::string& text) {
  if (!text.empty() && text.front() == '[') {
    try {
      YAML::Node node = YAML::Load(text);
      if (!node.IsSequence()) bad_value();
      CliJson out = CliJson::array();
      for (const auto& item : node) out.push_back(item.IsScalar() ? infer_scalar(item.Scalar()) : CliJson(nullptr));
      return out;
    } catch (const YAML::Exception&) {
      bad_value();
    }
  }
  CliJson out = CliJson::array();
  if (text.empty()) return out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(infer_scalar(item));
  return out;
}

}  // namespace cli_detail

using cli_detail::infer_scalar;

// ---------------------------------------------------------------- the TrainerOptions table

const CliTable<TrainerOptions>& trainer_cli_table() {
  using O = TrainerOptions;
  static const CliTable<O> table = {
      cli_field("max_epochs", &O::max_epochs, "stop after this many epochs (null: 1000 unless max_steps is set)"),
      cli_field("min_epochs", &O::min_epochs, "train at least this many epochs (early stopping waits)"),
      cli_field("max_steps", &O::max_steps, "stop after this many optimizer steps (-1: no limit)"),
      cli_field("min_steps", &O::min_steps, "take at least this many optimizer steps"),
      cli_field("max_time", &O::max_time, "stop after this many seconds"),
      cli_field("accelerator", &O::accelerator, "cpu, cuda or auto (cuda when a device is present)"),
      cli_field("devices", &O::devices, "processes per node (-1: as many as the launcher started)"),
      cli_field("num_nodes", &O::num_nodes, "nodes of the DDP job"),
      cli_code_only("cluster_environment", &O::cluster_environment, "ClusterEnvironment",
                    "a cluster environment object: set in code (null: detected)"),
      cli_field("strategy", &O::strategy, "auto, single_device, ddp or ddp_sharded"),
      cli_code_only("strategy_instance", &O::strategy_instance, "Strategy", "a strategy object: set in code"),
      cli_field("precision", &O::precision, "32, 64, bf16-mixed, 16-mixed, bf16-true or 16-true"),
      cli_code_only("precision_plugin", &O::precision_plugin, "Precision", "a precision plugin: set in code"),
      cli_field("accumulate_grad_batches", &O::accumulate_grad_batches, "batches per optimizer step"),
      cli_field("gradient_clip_val", &O::gradient_clip_val, "clip gradients at this norm or value (null: off)"),
      cli_field("gradient_clip_algorithm", &O::gradient_clip_algorithm, "norm or value"),
      cli_field("val_check_interval", &O::val_check_interval,
                "validate every N training batches (int) or fraction of an epoch (float)"),
      cli_field("check_val_every_n_epoch", &O::check_val_every_n_epoch,
                "validate every N epochs (null: val_check_interval counts across epochs)"),
      cli_field("limit_train_batches", &O::limit_train_batches, "training batches per epoch: a count or a fraction"),
      cli_field("limit_val_batches", &O::limit_val_batches, "validation batches: a count or a fraction"),
      cli_field("limit_test_batches", &O::limit_test_batches, "test batches: a count or a fraction"),
      cli_field("limit_predict_batches", &O::limit_predict_batches, "predict batches: a count or a fraction"),
      cli_field("num_sanity_val_steps", &O::num_sanity_val_steps, "validation batches before training (-1: all)"),
      cli_field("fast_dev_run", &O::fast_dev_run, "run N batches of each loop, no loggers or checkpoints"),
      cli_field("overfit_batches", &O::overfit_batches, "train and validate on this many training batches"),
      cli_field("deterministic", &O::deterministic, "deterministic kernels (no float atomics on CUDA)"),
      cli_field("detect_anomaly", &O::detect_anomaly, "stop at the first non-finite loss or gradient"),
      cli_field("log_every_n_steps", &O::log_every_n_steps, "log training metrics every N steps"),
      cli_field("enable_checkpointing", &O::enable_checkpointing, "a default ModelCheckpoint"),
      cli_field("enable_progress_bar", &O::enable_progress_bar, "a default ProgressBar"),
      cli_field("enable_model_summary", &O::enable_model_summary, "a default ModelSummary"),
      cli_code_only("callbacks", &O::callbacks, "list[Callback]", "callback objects: set in code, not an option"),
      cli_field("logger", &O::logger, "false: no loggers; true: a CSVLogger unless loggers are given"),
      cli_code_only("loggers", &O::loggers, "list[Logger]", "logger objects: set in code, not an option"),
      cli_field("default_root_dir", &O::default_root_dir, "where logs and checkpoints go"),
      cli_field("seed", &O::seed, "manual_seed(seed) before setup (null: no seeding)"),
      cli_field("use_distributed_sampler", &O::use_distributed_sampler, "DDP: shard map-style loaders per rank"),
      cli_field("ddp_bucket_cap_mb", &O::ddp_bucket_cap_mb, "DDP gradient bucket size in MiB"),
      cli_field("ddp_timeout", &O::ddp_timeout, "DDP: seconds a collective may wait (null: the group's)"),
      cli_field("handle_signals", &O::handle_signals, "SIGTERM/SIGUSR1 save the run and stop fit"),
      cli_field("auto_requeue", &O::auto_requeue, "SLURM: SIGUSR1 requeues the job, which then resumes"),
      cli_field("profiler", &O::profiler, "simple (phases and hooks) or ops (also every op); empty: off"),
      cli_code_only("profiler_instance", &O::profiler_instance, "Profiler", "a profiler object: set in code"),
      cli_code_only("checkpoint_io", &O::checkpoint_io, "CheckpointIO", "a checkpoint store object: set in code"),
      cli_field("cuda_graphs", &O::cuda_graphs, "CUDA: capture the training step once and replay it (static shapes)"),
  };
  return table;
}

// ---------------------------------------------------------------- config files

namespace {

CliJson from_yaml(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      CliJson out = CliJson::object();
      for (const auto& kv : node) out[kv.first.as<std::string>()] = from_yaml(kv.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      CliJson out = CliJson::array();
      for (const auto& item : node) out.push_back(from_yaml(item));
      return out;
    }
    case YAML::NodeType::Scalar:  // a quoted scalar ("32") is a string; a plain one is typed as YAML reads it
      return node.Tag() == "!" ? CliJson(node.Scalar()) : infer_scalar(node.Scalar());
    default:
      return nullptr;
  }
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

CliJson read_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IOError(cat_str("[cli] cannot read config file ", path));
  std::stringstream text;
  text << in.rdbuf();
  CliJson config;
  if (ends_with(path, ".json")) {
    try {
      config = CliJson::parse(text.str());
    } catch (const nlohmann::json::parse_error& e) {
      throw FormatError(cat_str("[cli] config file ", path, " is not valid JSON: ", e.what()));
    }
  } else {
    try {
      config = from_yaml(YAML::Load(text.str()));
    } catch (const YAML::Exception& e) {
      throw FormatError(cat_str("[cli] config file ", path, " is not valid YAML: line ", e.mark.line + 1, ": ", e.msg));
    }
  }
  if (config.is_null()) return CliJson::object();  // an empty file
  EMBER_CHECK(config.is_object(), FormatError, "[cli] config file ", path,
              " must hold a mapping such as {trainer: {max_epochs: 5}}, got ", config.type_name());
  return config;
}

// ---------------------------------------------------------------- YAML out

namespace {

std::string yaml_string(const std::string& s) {
  bool plain = !s.empty() && infer_scalar(s).is_string() && s.front() != ' ' && s.back() != ' ' &&
               std::string("-?:,[]{}#&*!|>'\"%@`").find(s.front()) == std::string::npos;
  for (char c : s)
    if (c == '\n' || c == '\t' || c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) plain = false;
  if (s.find(": ") != std::string::npos || s.find(" #") != std::string::npos || ends_with(s, ":")) plain = false;
  return plain ? s : CliJson(s).dump();  // JSON's escapes are valid in a double-quoted YAML scalar
}

std::string yaml_scalar(const CliJson& v) {
  if (v.is_string()) return yaml_string(v.get<std::string>());
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isnan(d)) return ".nan";
    if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
    std::string s = logger_util::format_double(d);
    if (s.find_first_of(".e") == std::string::npos) s += ".0";  // 1.0 stays a float (a fraction, not 1 batch)
    return s;
  }
  if (v.is_object()) return "{}";
  if (v.is_array()) {  // flow style: scalars, nested ones as JSON (which YAML reads)
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) out += ", ";
      out += v[i].is_structured() ? v[i].dump() : yaml_scalar(v[i]);
    }
    return out + "]";
  }
  return v.dump();  // null, bool, integers
}

void yaml_block(const CliJson& v, int indent, std::string& out) {
  const std::string pad(static_cast<size_t>(indent), ' ');
  for (const auto& [key, value] : v.items()) {
    out += pad + yaml_string(key) + ':';
    if (value.is_object() && !value.empty()) {
      out += '\n';
      yaml_block(value, indent + 2, out);
    } else {
      out += ' ' + yaml_scalar(value) + '\n';
    }
  }
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string cli_to_yaml(const CliJson& config) {
  if (!config.is_object() || config.empty()) return yaml_scalar(config) + '\n';
  std::string out;
  yaml_block(config, 0, out);
  return out;
}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_score = std::numeric_limits<size_t>::max();
  for (const std::string& c : candidates) {
    // `--max_epoch` is close to `--trainer.max_epochs`: the group may be missing as well as a letter.
    const size_t dot = c.rfind('.');
    size_t score = edit_distance(word, c);
    if (dot != std::string::npos) score = std::min(score, edit_distance(word, c.substr(dot + 1)) + 1);
    if (score < best_score) best_score = score, best = c;
  }
  return best;
}

// ---------------------------------------------------------------- Cli

namespace {

// nlohmann's sorted json and the ordered one the Cli keeps, both ways.
template <class To, class From>
To convert(const From& v) {
  if (v.is_object()) {
    To out = To::object();
    for (const auto& [key, value] : v.items()) out[key] = convert<To>(value);
    return out;
  }
  if (v.is_array()) {
    To out = To::array();
    for (const auto& item : v) out.push_back(convert<To>(item));
    return out;
  }
  if (v.is_string()) return v.template get<std::string>();
  if (v.is_boolean()) return v.template get<bool>();
  if (v.is_number_unsigned()) return v.template get<uint64_t>();
  if (v.is_number_integer()) return v.template get<int64_t>();
  if (v.is_number_float()) return v.template get<double>();
  return nullptr;
}

std::string json_type_name(const nlohmann::json& v) {
  if (v.is_boolean()) return "bool";
  if (v.is_number_integer()) return "int";
  if (v.is_number_float()) return "float";
  if (v.is_string()) return "str";
  if (v.is_array()) return "list";
  if (v.is_object()) return "dict";
  return "any";
}

// A hyperparameter's new value, checked against the type its default gave it.
CliJson check_hparam(const std::string& type, const CliJson& v) {
  if (type == "any") return v;
  if (type == "bool" && v.is_boolean()) return v;
  if (type == "int" && v.is_number_integer()) return v;
  if (type == "float" && v.is_number()) return v.get<double>();
  if (type == "str" && (v.is_string() || v.is_number() || v.is_boolean())) return v.is_string() ? v : CliJson(v.dump());
  if (type == "list" && v.is_array()) return v;
  if (type == "dict" && v.is_object()) return v;
  cli_detail::bad_value();
}

void flatten_hparams(const nlohmann::json& v, const std::string& prefix, const std::string& pointer,
                     std::vector<std::pair<std::string, std::string>>& out) {
  for (const auto& [key, value] : v.items()) {
    if (value.is_object() && !value.empty())
      flatten_hparams(value, prefix + key + ".", pointer + "/" + key, out);
    else
      out.emplace_back(prefix + key, pointer + "/" + key);
  }
}

class SaveConfig : public Callback {
 public:
  SaveConfig(std::string file_name, std::string text) : file_name_(std::move(file_name)), text_(std::move(text)) {}
  std::string state_key() const override { return "SaveConfig[" + file_name_ + "]"; }
  void on_fit_start(Trainer& trainer, TrainModule& /*module*/) override {
    if (!trainer.is_global_zero()) return;
    const std::string dir = trainer.log_dir();
    logger_util::make_dirs(dir, "cli");
    logger_util::write_file_atomic((fs::path(dir) / file_name_).string(), text_, "cli");
  }

 private:
  std::string file_name_, text_;
};

}  // namespace

Cli::Cli(std::string program, std::string description)
    : program_(std::move(program)), description_(std::move(description)), out_(&std::cout) {}

Cli::Group& Cli::add_group(const std::string& name, const std::string& title) {
  for (const Group& g : groups_)
    EMBER_CHECK(g.name != name, ValueError, "[cli] the option group ", name, " was added twice");
  EMBER_CHECK(!name.empty() && name.find('.') == std::string::npos, ValueError, "[cli] bad group name \"", name, "\"");
  groups_.push_back(Group{name, title.empty() ? name : title, {}});
  return groups_.back();
}

Cli& Cli::trainer(TrainerOptions& options) {
  return add_options("trainer", options, trainer_cli_table(),
                     "trainer (TrainerOptions; callbacks and loggers are objects set in code)");
}

Cli& Cli::add_hparams(const std::string& group, nlohmann::json& hparams, const std::string& title) {
  EMBER_CHECK(hparams.is_object(), ValueError, "[cli] the hyperparameters of group ", group,
              " must be a JSON object, got ", hparams.type_name());
  Group& g = add_group(group, title.empty() ? group + " (hyperparameters)" : title);
  std::vector<std::pair<std::string, std::string>> keys;
  flatten_hparams(hparams, "", "", keys);
  for (const auto& [key, pointer] : keys) {
    const nlohmann::json::json_pointer ptr(pointer);
    const std::string type = json_type_name(hparams.at(ptr));
    Entry e;
    e.name = group + "." + key;
    e.type = type;
    e.get = [&hparams, ptr] { return convert<CliJson>(hparams.at(ptr)); };
    e.set_json = [&hparams, ptr, type](const CliJson& v) {
      hparams[ptr] = convert<nlohmann::json>(check_hparam(type, v));
    };
    e.from_text = [type](const std::string& text) {
      if (type == "str") return CliJson(text);
      if (type == "list") return cli_detail::list_from_text(text);
      if (type == "dict") return CliJson::parse(text);
      return infer_scalar(text);
    };
    e.default_value = e.get();
    g.entries.push_back(std::move(e));
  }
  return *this;
}

Cli& Cli::alias(const std::string& flag, const std::string& option) {
  EMBER_CHECK(find(option) != nullptr, ValueError, "[cli] alias ", flag, " names no option ", option);
  aliases_.emplace_back(flag, option);
  return *this;
}

Cli& Cli::positional(const std::string& usage) {
  positional_ = usage;
  return *this;
}

Cli& Cli::output(std::ostream& out) {
  out_ = &out;
  return *this;
}

const Cli::Entry* Cli::find(const std::string& option) const {
  for (const Group& g : groups_)
    for (const Entry& e : g.entries)
      if (e.name == option) return &e;
  return nullptr;
}

std::vector<std::string> Cli::option_names() const {
  std::vector<std::string> names = {"config", "print_config", "help"};
  for (const Group& g : groups_)
    for (const Entry& e : g.entries) names.push_back(e.name);
  for (const auto& [flag, option] : aliases_) names.push_back(flag.substr(flag.find_first_not_of('-')));
  return names;
}

void Cli::unknown(const std::string& option, const std::string& where) const {
  const std::string near = closest_match(option, option_names());
  if (where.empty())
    throw ValueError(cat_str("[cli] unknown option --", option, near.empty() ? "" : "; did you mean --" + near + "?"));
  throw ValueError(
      cat_str("[cli] ", where, ": unknown key ", option, near.empty() ? "" : "; did you mean " + near + "?"));
}

void Cli::set_entry(const Entry& entry, const CliJson& value, const std::string& where, const std::string& shown) {
  const std::string in = where.empty() ? "" : " (in " + where + ")";
  EMBER_CHECK(entry.settable, ValueError, "[cli] ", entry.name, " is set in code, not from the command line", in);
  try {
    entry.set_json(value);
  } catch (const std::exception&) {  // std::invalid_argument or nlohmann's type errors
    throw ValueError(cat_str("[cli] --", entry.name, " expects ", entry.type, ", got ", shown, in));
  }
}

void Cli::set(const std::string& option, const std::string& text) {
  const Entry* entry = find(option);
  if (entry == nullptr) unknown(option, "");
  EMBER_CHECK(entry->settable, ValueError, "[cli] ", entry->name, " is set in code, not from the command line");
  CliJson value;
  try {
    value = entry->from_text(text);
  } catch (const std::exception&) {
    throw ValueError(cat_str("[cli] --", entry->name, " expects ", entry->type, ", got \"", text, "\""));
  }
  set_entry(*entry, value, "", "\"" + text + "\"");
}

void Cli::apply_config(const CliJson& config, const std::string& source) {
  // Keys nest ({trainer: {max_epochs: 5}}) down to an option's full dotted name.
  std::function<void(const CliJson&, const std::string&)> walk = [&](const CliJson& obj, const std::string& prefix) {
    for (const auto& [key, value] : obj.items()) {
      const std::string name = prefix + key;
      if (const Entry* e = find(name)) {
        set_entry(*e, value, source, value.dump());
        continue;
      }
      bool is_prefix = false;
      for (const std::string& n : option_names()) is_prefix = is_prefix || n.rfind(name + ".", 0) == 0;
      if (!value.is_object() || !is_prefix) unknown(name, source);
      walk(value, name + ".");
    }
  };
  EMBER_CHECK(config.is_object(), ValueError, "[cli] ", source, " must hold a mapping");
  walk(config, "");
}

void Cli::apply_config_file(const std::string& path) { apply_config(read_config_file(path), path); }

Cli::Action Cli::parse(int& argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc), positional;
  const Action action = parse(args, &positional);
  // Positional arguments keep their order in argv (the pointers stay valid: they are argv's own).
  int out = 1;
  size_t next = 0;
  for (int i = 1; i < argc && next < positional.size(); ++i)
    if (positional[next] == argv[i]) argv[out++] = argv[i], ++next;
  argc = out;
  return action;
}

Cli::Action Cli::parse(const std::vector<std::string>& args, std::vector<std::string>* positional) {
  bool print_config = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {  // the rest are positional
      for (++i; i < args.size(); ++i)
        if (positional) positional->push_back(args[i]);
      break;
    }
    if (a == "-h" || a == "--help") {
      *out_ << help();
      return Action::kExit;
    }
    if (a == "--print_config") {
      print_config = true;
      continue;
    }
    if (a.size() < 3 || a.rfind("--", 0) != 0) {
      if (positional) positional->push_back(a);
      continue;
    }
    const size_t eq = a.find('=');
    std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    std::optional<std::string> value;
    if (eq != std::string::npos) value = a.substr(eq + 1);
    for (const auto& [flag, option] : aliases_)
      if ("--" + name == flag) name = option;
    if (name == "config") {
      EMBER_CHECK(value || i + 1 < args.size(), ValueError, "[cli] --config needs a file path");
      apply_config_file(value ? *value : args[++i]);
      continue;
    }
    const Entry* entry = find(name);
    if (entry == nullptr) unknown(name, "");
    if (!value) {
      // `--trainer.deterministic` alone means true; `--trainer.deterministic false` takes the value.
      const bool next_is_value = i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0;
      if (entry->type == "bool") {
        if (next_is_value && infer_scalar(args[i + 1]).is_boolean())
          value = args[++i];
        else
          value = "true";
      } else {
        EMBER_CHECK(i + 1 < args.size(), ValueError, "[cli] --", name, " needs a value (", entry->type, ")");
        value = args[++i];
      }
    }
    set(name, *value);
  }
  if (print_config) {
    *out_ << cli_to_yaml(config());
    return Action::kExit;
  }
  return Action::kRun;
}

CliJson Cli::config() const {
  CliJson out = CliJson::object();
  for (const Group& g : groups_) {
    CliJson& group = out[g.name] = CliJson::object();
    for (const Entry& e : g.entries) {
      if (!e.settable) continue;
      // "model.encoder.width" -> {"encoder": {"width": ...}}
      CliJson* at = &group;
      std::string rest = e.name.substr(g.name.size() + 1);
      for (size_t dot; (dot = rest.find('.')) != std::string::npos; rest = rest.substr(dot + 1)) {
        CliJson& child = (*at)[rest.substr(0, dot)];
        if (!child.is_object()) child = CliJson::object();
        at = &child;
      }
      (*at)[rest] = e.get();
    }
  }
  return out;
}

std::string Cli::help() const {
  std::ostringstream os;
  os << "usage: " << program_ << " [--config FILE] [--GROUP.OPTION VALUE ...]"
     << (positional_.empty() ? "" : " " + positional_) << "\n";
  if (!description_.empty()) os << "\n" << description_ << "\n";
  os << "\nOptions are --GROUP.OPTION=VALUE or --GROUP.OPTION VALUE; later ones override earlier ones and\n"
     << "config files. null unsets an optional value; a bool option alone means true.\n\n"
     << "  --config FILE\n      a YAML or JSON file {trainer: {...}, data: {...}, model: {...}}; repeatable\n"
     << "  --print_config\n      print the resolved config as YAML and exit\n"
     << "  -h, --help\n      print this help and exit\n";
  for (const auto& [flag, option] : aliases_) os << "  " << flag << " VALUE\n      same as --" << option << "\n";
  for (const Group& g : groups_) {
    os << "\n" << g.title << ":\n";
    for (const Entry& e : g.entries) {
      if (e.settable)
        os << "  --" << e.name << "  " << e.type << "  (default: " << yaml_scalar(e.default_value) << ")\n";
      else
        os << "  " << e.name << "  " << e.type << "  (not a command-line option)\n";
      if (!e.help.empty()) os << "      " << e.help << "\n";
    }
  }
  return os.str();
}

CallbackPtr Cli::save_config_callback(const std::string& file_name) const {
  const CliJson resolved = config();
  std::string text = ends_with(file_name, ".json") ? resolved.dump(2) + "\n" : cli_to_yaml(resolved);
  return std::make_shared<SaveConfig>(file_name, std::move(text));
}

}  // namespace ember::train
