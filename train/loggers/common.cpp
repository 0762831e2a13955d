// Shared logger pieces: version folders, atomic writes, number formatting, the YAML writer.
#include "train/loggers/common.hpp"

#include <fcntl.h>
#include <strings.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "core/error.hpp"

namespace ember::train {
namespace fs = std::filesystem;

std::string logger_root_dir(const std::string& save_dir, const std::string& name) {
  if (name.empty()) return save_dir;
  return (fs::path(save_dir) / name).string();
}

int64_t next_logger_version(const std::string& root_dir) {
  std::error_code ec;
  fs::directory_iterator it(root_dir, ec);
  if (ec) return 0;  // no folder yet (Lightning warns and starts at 0)
  int64_t next = 0;
  for (const fs::directory_entry& entry : it) {
    std::error_code dir_ec;
    if (!entry.is_directory(dir_ec)) continue;
    const std::string name = entry.path().filename().string();
    constexpr std::string_view kPrefix = "version_";
    if (name.size() <= kPrefix.size() || name.compare(0, kPrefix.size(), kPrefix) != 0) continue;
    const char* first = name.data() + kPrefix.size();
    const char* last = name.data() + name.size();
    int64_t n = 0;
    auto [end, err] = std::from_chars(first, last, n);
    if (err != std::errc() || end != last || *first == '-' || *first == '+') continue;
    if (n >= next) next = n + 1;
  }
  return next;
}

std::string logger_version_name(const LoggerVersion& version, const std::string& root_dir) {
  if (const auto* s = std::get_if<std::string>(&version)) return *s;
  if (const auto* n = std::get_if<int64_t>(&version)) return "version_" + std::to_string(*n);
  return "version_" + std::to_string(next_logger_version(root_dir));
}

// ---------------------------------------------------------------- YAML

namespace {

bool yaml_plain_ok(const std::string& s) {
  if (s.empty()) return false;
  const auto first = static_cast<unsigned char>(s[0]);
  if (!(std::isalpha(first) || first == '_' || first == '/' || first >= 0x80)) return false;
  if (s.back() == ' ') return false;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x80 || std::isalnum(c)) continue;
    if (c == '_' || c == '.' || c == '/' || c == '+' || c == '-' || c == ' ') continue;
    return false;
  }
  // YAML 1.1 reads these (in any case) as booleans or null.
  static const char* const kReserved[] = {"y", "n", "yes", "no", "true", "false", "on", "off", "null"};
  for (const char* word : kReserved)
    if (s.size() == std::strlen(word) && strncasecmp(s.c_str(), word, s.size()) == 0) return false;
  return true;
}

std::string yaml_string(const std::string& s) {
  if (yaml_plain_ok(s)) return s;
  // A JSON string is a valid YAML double-quoted scalar (same escapes).
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string yaml_float(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  std::string s = logger_util::format_double(v);
  // YAML 1.1 floats need a '.' (PyYAML writes 1.0e-05, not 1e-05).
  if (s.find('.') == std::string::npos) {
    const size_t e = s.find('e');
    if (e == std::string::npos)
      s += ".0";
    else
      s.insert(e, ".0");
  }
  return s;
}

bool yaml_inline(const nlohmann::json& v) { return !v.is_structured() || v.empty(); }

std::string yaml_scalar(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::boolean:
      return v.get<bool>() ? "true" : "false";
    case nlohmann::json::value_t::number_integer:
      return std::to_string(v.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned:
      return std::to_string(v.get<uint64_t>());
    case nlohmann::json::value_t::number_float:
      return yaml_float(v.get<double>());
    case nlohmann::json::value_t::string:
      return yaml_string(v.get_ref<const std::string&>());
    case nlohmann::json::value_t::object:
      return "{}";
    case nlohmann::json::value_t::array:
      return "[]";
    default:
      return yaml_string(v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
}

void yaml_block(const nlohmann::json& v, int indent, std::string& out);

// What follows "key:" - an inline scalar, or the nested block on the next lines. Sequences under a key are
// not indented further (PyYAML's layout).
void yaml_after_key(const nlohmann::json& v, int indent, std::string& out) {
  if (yaml_inline(v)) {
    out += ' ' + yaml_scalar(v) + '\n';
  } else {
    out += '\n';
    yaml_block(v, v.is_object() ? indent + 2 : indent, out);
  }
}

// What follows "-": the nested block's first line goes on the dash's line.
void yaml_after_dash(const nlohmann::json& v, int indent, std::string& out) {
  if (yaml_inline(v)) {
    out += ' ' + yaml_scalar(v) + '\n';
    return;
  }
  std::string nested;
  yaml_block(v, indent + 2, nested);
  out += ' ';
  out.append(nested, static_cast<size_t>(indent + 2));
}

void yaml_block(const nlohmann::json& v, int indent, std::string& out) {
  const std::string pad(static_cast<size_t>(indent), ' ');
  if (v.is_object()) {
    for (const auto& [key, value] : v.items()) {
      out += pad + yaml_string(key) + ':';
      yaml_after_key(value, indent, out);
    }
  } else {
    for (const auto& value : v) {
      out += pad + '-';
      yaml_after_dash(value, indent, out);
    }
  }
}

}  // namespace

std::string to_yaml(const nlohmann::json& params) {
  if (yaml_inline(params)) return yaml_scalar(params) + '\n';
  std::string out;
  yaml_block(params, 0, out);
  return out;
}

// ---------------------------------------------------------------- files, numbers

namespace logger_util {

namespace {
[[noreturn]] void io_fail(const char* op, const std::string& path, const std::string& what, int err) {
  throw IOError(::ember::detail::cat_str("[", op, "] ", path, ": ", what, ": ", std::strerror(err)));
}
}  // namespace

void write_file_atomic(const std::string& path, const std::string& contents, const char* op) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) io_fail(op, path, "cannot create temporary file " + tmp, errno);
  const char* p = contents.data();
  size_t left = contents.size();
  while (left > 0) {
    ssize_t w = ::write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      io_fail(op, path, "write failed", err);
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
  // fsync before the rename, so a crash cannot leave the new name pointing at unwritten data.
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    io_fail(op, path, "cannot flush " + tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    io_fail(op, path, "cannot rename " + tmp + " over it", err);
  }
}

void make_dirs(const std::string& dir, const char* op) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IOError(::ember::detail::cat_str("[", op, "] cannot create folder ", dir, ": ", ec.message()));
  if (!fs::is_directory(dir, ec))
    throw IOError(::ember::detail::cat_str("[", op, "] ", dir, " exists and is not a folder"));
}

std::string format_double(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  auto [end, err] = std::to_chars(buf, buf + sizeof(buf), value);  // shortest round-trip form
  (void)err;                                                       // 64 bytes always suffice for a double
  return std::string(buf, end);
}

std::string add_prefix(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "-" + key;
}

}  // namespace logger_util
}  // namespace ember::train
