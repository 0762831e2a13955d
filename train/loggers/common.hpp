// Pieces the loggers share: run versions and folders (Lightning's version_N), atomic file writes, numbers
// as text, and the hparams.yaml writer.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>

namespace ember::train {

// A logger's version: unset (the next free version_N under <save_dir>/<name>), a number N (folder
// version_N) or a folder name used as given, as Lightning's int-or-str `version`.
using LoggerVersion = std::variant<std::monostate, int64_t, std::string>;

// Lightning's layout: <save_dir>/<name>, or save_dir itself when name is empty.
std::string logger_root_dir(const std::string& save_dir, const std::string& name);
// One more than the largest N of the version_N folders in root_dir; 0 when there are none (or no root_dir).
int64_t next_logger_version(const std::string& root_dir);
// The version's folder name: "version_N" for a number (the next free one when unset), else the string.
std::string logger_version_name(const LoggerVersion& version, const std::string& root_dir);

// params as block-style YAML the way Lightning's hparams.yaml reads (PyYAML's layout: keys sorted, nested
// mappings indented, sequence items as "- "); strings are double-quoted when a plain scalar would be read
// back as something else (a number, bool, null) or would not parse.
std::string to_yaml(const nlohmann::json& params);

namespace logger_util {

// Writes contents to path atomically (temporary file beside it, fsync, rename): readers see the old file
// or the new one, never a part. IOError "[op] path: why" on failure.
void write_file_atomic(const std::string& path, const std::string& contents, const char* op);
// Creates dir and its parents; IOError naming the folder on failure.
void make_dirs(const std::string& dir, const char* op);
// The shortest text that reads back as the same double; "nan", "inf", "-inf" for the special values.
std::string format_double(double value);
// Lightning's _add_prefix: "<prefix>-<key>" (key unchanged when prefix is empty).
std::string add_prefix(const std::string& prefix, const std::string& key);

}  // namespace logger_util
}  // namespace ember::train
