// train::Cli (Lightning's LightningCLI): fills TrainerOptions, a DataModule's options struct and a module's
// hyperparameters (JSON) from `--trainer.max_epochs=5` / `--model.lr 3e-3` arguments and YAML or JSON
// config files (`--config run.yaml`; later arguments override earlier ones), prints `--help` and
// `--print_config`, and writes the resolved config beside the logs (config.yaml in the Trainer's log_dir).
//
// C++ has no reflection: each struct's fields are described once in a CliTable (name, member, help).
// trainer_cli_table() describes TrainerOptions; tests/test_cli.cpp fails when a field lacks a row.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "train/callback.hpp"
#include "train/trainer.hpp"

namespace ember::train {

// The resolved config keeps the fields' declaration order.
using CliJson = nlohmann::ordered_json;

namespace cli_detail {

// A type the command line reads and writes: its --help name, its command-line text, and JSON both ways.
// from_json/from_text throw std::invalid_argument (the Cli turns it into a ValueError naming the option).
template <class T>
struct CliType;

// Scalar text the way YAML reads it: null, true/false, an integer, a float, else the string itself.
CliJson infer_scalar(const std::string& text);
[[noreturn]] void bad_value();  // throws std::invalid_argument

template <>
struct CliType<bool> {
  static std::string name() { return "bool"; }
  static CliJson to_json(bool v) { return v; }
  static bool from_json(const CliJson& j) {
    if (!j.is_boolean()) bad_value();
    return j.get<bool>();
  }
  static CliJson from_text(const std::string& text) { return from_json(infer_scalar(text)); }
};

template <class I>
requires(std::is_integral_v<I> && !std::is_same_v<I, bool>) struct CliType<I> {
  static std::string name() {
    if constexpr (std::is_unsigned_v<I>) return "uint";
    return sizeof(I) == 8 ? "int64" : "int";
  }
  static CliJson to_json(I v) { return v; }
  static I from_json(const CliJson& j) {
    if (j.is_number_unsigned()) {
      const auto v = j.get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<I>::max())) bad_value();
      return static_cast<I>(v);
    }
    if (!j.is_number_integer()) bad_value();
    const auto v = j.get<int64_t>();
    if (std::is_unsigned_v<I> && v < 0) bad_value();
    if constexpr (!std::is_unsigned_v<I>)
      if (v < std::numeric_limits<I>::min() || v > std::numeric_limits<I>::max()) bad_value();
    return static_cast<I>(v);
  }
  static CliJson from_text(const std::string& text) { return to_json(from_json(infer_scalar(text))); }
};

template <>
struct CliType<double> {
  static std::string name() { return "float"; }
  static CliJson to_json(double v) { return v; }
  static double from_json(const CliJson& j) {
    if (!j.is_number()) bad_value();
    return j.get<double>();
  }
  static CliJson from_text(const std::string& text) { return from_json(infer_scalar(text)); }
};

template <>
struct CliType<std::string> {
  static std::string name() { return "str"; }
  static CliJson to_json(const std::string& v) { return v; }
  // A YAML `precision: 16` arrives as a number: its text is the string.
  static std::string from_json(const CliJson& j) {
    if (j.is_string()) return j.get<std::string>();
    if (j.is_number() || j.is_boolean()) return j.dump();
    bad_value();
  }
  static CliJson from_text(const std::string& text) { return text; }
};

template <class T>
struct CliType<std::optional<T>> {
  static std::string name() { return CliType<T>::name() + " | null"; }
  static CliJson to_json(const std::optional<T>& v) { return v ? CliType<T>::to_json(*v) : CliJson(nullptr); }
  static std::optional<T> from_json(const CliJson& j) {
    if (j.is_null()) return std::nullopt;
    return CliType<T>::from_json(j);
  }
  static CliJson from_text(const std::string& text) {
    if (text == "null" || text == "None" || text == "none" || text == "~") return nullptr;
    return CliType<T>::from_text(text);
  }
};

template <class T>
struct CliType<std::vector<T>> {
  static std::string name() { return "list[" + CliType<T>::name() + "]"; }
  static CliJson to_json(const std::vector<T>& v) {
    CliJson out = CliJson::array();
    for (const auto& x : v) out.push_back(CliType<T>::to_json(x));
    return out;
  }
  static std::vector<T> from_json(const CliJson& j) {
    if (!j.is_array()) bad_value();
    std::vector<T> out;
    for (const auto& x : j) out.push_back(CliType<T>::from_json(x));
    return out;
  }
  // `[1, 2, 3]` (JSON/YAML flow) or `1,2,3`.
  static CliJson from_text(const std::string& text);
};
CliJson list_from_text(const std::string& text);
template <class T>
CliJson CliType<std::vector<T>>::from_text(const std::string& text) {
  return to_json(from_json(list_from_text(text)));
}

// Lightning's int-or-float limits: an integer counts batches, a number with a point is a fraction.
template <>
struct CliType<BatchLimit> {
  static std::string name() { return "int | float"; }
  static CliJson to_json(const BatchLimit& v) {
    return v.is_fraction() ? CliJson(v.fraction()) : CliJson(*v.batches());
  }
  static BatchLimit from_json(const CliJson& j) {
    if (j.is_number_integer()) return BatchLimit(j.get<int64_t>());
    if (j.is_number_float()) return BatchLimit(j.get<double>());
    bad_value();
  }
  static CliJson from_text(const std::string& text) { return to_json(from_json(infer_scalar(text))); }
};

// The number of fields of an aggregate: the most braced initialisers it accepts (the drift check).
struct AnyField {
  template <class T>
  operator T() const;  // NOLINT: declared only, for unevaluated contexts
};
template <class T, class... A>
consteval std::size_t field_count() {
  if constexpr (requires { T{A{}..., AnyField{}}; })
    return field_count<T, A..., AnyField>();
  else
    return sizeof...(A);
}

}  // namespace cli_detail

// The number of fields of an aggregate such as TrainerOptions.
template <class T>
constexpr std::size_t aggregate_field_count() {
  return cli_detail::field_count<T>();
}

// One field of the struct S as an option: `--<group>.<name>`.
template <class S>
struct CliField {
  std::string name;
  std::string type;  // as --help shows it: "int64 | null", "int | float", ...
  std::string help;
  std::function<CliJson(const S&)> get;
  std::function<void(S&, const CliJson&)> set;           // throws std::invalid_argument
  std::function<CliJson(const std::string&)> from_text;  // command-line text -> JSON of the type
  std::size_t offset = 0;                                // of the member (the declaration-order check)
  bool settable = true;  // false: listed in --help as set in code (callbacks, loggers), not an option
};
template <class S>
using CliTable = std::vector<CliField<S>>;

namespace cli_detail {
template <class S, class T>
std::size_t member_offset(T S::*member) {
  static const S probe{};
  return static_cast<std::size_t>(reinterpret_cast<const char*>(&(probe.*member)) -
                                  reinterpret_cast<const char*>(&probe));
}
}  // namespace cli_detail

// A row for the field `member` of S: cli_field("batch_size", &DigitsOptions::batch_size, "samples per batch").
template <class S, class T>
CliField<S> cli_field(std::string name, T S::*member, std::string help = "") {
  using Type = cli_detail::CliType<T>;
  return CliField<S>{std::move(name),
                     Type::name(),
                     std::move(help),
                     [member](const S& s) { return Type::to_json(s.*member); },
                     [member](S& s, const CliJson& j) { s.*member = Type::from_json(j); },
                     [](const std::string& text) { return Type::from_text(text); },
                     cli_detail::member_offset(member),
                     true};
}
// A row for a field that only code can set (pointers to callbacks, loggers): listed, never parsed.
template <class S, class T>
CliField<S> cli_code_only(std::string name, T S::*member, std::string type, std::string help) {
  return CliField<S>{std::move(name),
                     std::move(type),
                     std::move(help),
                     nullptr,
                     nullptr,
                     nullptr,
                     cli_detail::member_offset(member),
                     false};
}

// Every field of TrainerOptions, in declaration order (callbacks and loggers as code-only rows).
const CliTable<TrainerOptions>& trainer_cli_table();

// A config file (YAML, or JSON: JSON is YAML) as JSON. IOError when unreadable, FormatError naming the
// file and line when it does not parse.
CliJson read_config_file(const std::string& path);
// config as block YAML in its own key order; floats keep a point (1.0 stays a fraction, not 1 batch) and
// strings that would read back as something else are quoted.
std::string cli_to_yaml(const CliJson& config);
// The closest of `candidates` to `word` by edit distance (empty when there are none).
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

class Cli {
 public:
  enum class Action { kRun, kExit };  // kExit: --help or --print_config printed; the program should end

  explicit Cli(std::string program, std::string description = "");

  // The trainer group, bound to `options`: its current values are the defaults --help shows.
  Cli& trainer(TrainerOptions& options);
  // A group of a struct's fields (a DataModule's options), bound to `target`.
  template <class S>
  Cli& add_options(const std::string& group, S& target, const CliTable<S>& table, const std::string& title = "");
  // A group held as JSON (a module's hyperparameters): its keys and their types come from the values in
  // `hparams` (nested objects give `--model.encoder.width`); a null value takes any scalar.
  Cli& add_hparams(const std::string& group, nlohmann::json& hparams, const std::string& title = "");
  // `--device cuda` as `--trainer.accelerator cuda`.
  Cli& alias(const std::string& flag, const std::string& option);
  // What the positional arguments are, for the usage line: "[epochs]".
  Cli& positional(const std::string& usage);
  // Where --help and --print_config print (std::cout by default).
  Cli& output(std::ostream& out);

  // Applies the arguments in order (config files and options; later ones win) and removes them from argv,
  // leaving the program name and the positional arguments. ValueError for an unknown option (naming the
  // closest valid one) or a bad value (naming the option, the type and the value).
  Action parse(int& argc, char** argv);
  Action parse(const std::vector<std::string>& args, std::vector<std::string>* positional = nullptr);
  // Applies a config object {"trainer": {...}, "data": {...}, ...}; `source` names it in errors.
  void apply_config(const CliJson& config, const std::string& source);
  void apply_config_file(const std::string& path);
  // `option` ("trainer.max_epochs") from command-line text.
  void set(const std::string& option, const std::string& text);

  // The resolved config: each group's current values.
  CliJson config() const;
  std::string help() const;
  // A callback that writes config() as it is now to <log_dir>/<file_name> at fit start (rank 0 only), as
  // LightningCLI's config.yaml; a ".json" name writes JSON.
  CallbackPtr save_config_callback(const std::string& file_name = "config.yaml") const;

 private:
  struct Entry {
    std::string name;  // "trainer.max_epochs"
    std::string type, help;
    CliJson default_value;
    bool settable = true;
    std::function<CliJson()> get;
    std::function<void(const CliJson&)> set_json;
    std::function<CliJson(const std::string&)> from_text;
  };
  struct Group {
    std::string name, title;
    std::vector<Entry> entries;
  };
  Group& add_group(const std::string& name, const std::string& title);
  const Entry* find(const std::string& option) const;
  void set_entry(const Entry& entry, const CliJson& value, const std::string& where, const std::string& shown);
  [[noreturn]] void unknown(const std::string& option, const std::string& where) const;
  std::vector<std::string> option_names() const;

  std::string program_, description_, positional_;
  std::vector<Group> groups_;
  std::vector<std::pair<std::string, std::string>> aliases_;
  std::ostream* out_;
};

template <class S>
Cli& Cli::add_options(const std::string& group, S& target, const CliTable<S>& table, const std::string& title) {
  Group& g = add_group(group, title);
  for (const CliField<S>& f : table) {
    Entry e{group + "." + f.name, f.type, f.help, nullptr, f.settable, nullptr, nullptr, f.from_text};
    if (f.settable) {
      e.get = [&target, get = f.get] { return get(target); };
      e.set_json = [&target, set = f.set](const CliJson& j) { set(target, j); };
      e.default_value = e.get();
    }
    g.entries.push_back(std::move(e));
  }
  return *this;
}

}  // namespace ember::train
