// Temporary files of the atomic writers and the clean-up of those left by processes that are gone.
#include "core/io/temp_files.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <filesystem>

namespace ember {
namespace fs = std::filesystem;

namespace {
constexpr std::string_view kTmp = ".tmp.";
}

std::string temp_file_name(const std::string& target) { return target + ".tmp." + std::to_string(::getpid()); }

std::optional<long> temp_file_pid(std::string_view file_name, std::string* target) {
  const size_t at = file_name.rfind(kTmp);
  if (at == std::string_view::npos || at == 0) return std::nullopt;
  const std::string_view digits = file_name.substr(at + kTmp.size());
  if (digits.empty() || digits.size() > 10 || digits[0] == '0') return std::nullopt;
  long pid = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    pid = pid * 10 + (c - '0');
  }
  if (pid <= 0 || pid > INT_MAX) return std::nullopt;  // pid_t is an int; kill(0 or -1, ...) means a group
  if (target) *target = std::string(file_name.substr(0, at));
  return pid;
}

namespace {
int fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return errno;
  const int rc = ::fsync(fd), err = errno;
  ::close(fd);
  return rc == 0 ? 0 : err;
}
}  // namespace

int fsync_file(const std::string& path) { return fsync_path(path, O_RDONLY); }

int fsync_parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const int err = fsync_path(dir, O_RDONLY | O_DIRECTORY);
  return err == EINVAL ? 0 : err;
}

bool process_exists(long pid) {
  if (pid <= 0 || pid > INT_MAX) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH;
}

std::vector<std::string> remove_stale_temp_files(const std::string& dir,
                                                 const std::function<bool(const std::string& target)>& accept) {
  std::vector<std::string> removed;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::string target;
    const std::optional<long> pid = temp_file_pid(name, &target);
    if (!pid || process_exists(*pid) || !accept(target)) continue;
    std::error_code type_ec, rm_ec;
    if (it->symlink_status(type_ec).type() != fs::file_type::regular || type_ec) continue;  // writers make plain files
    if (fs::remove(it->path(), rm_ec) && !rm_ec) removed.push_back(name);
  }
  return removed;
}

}  // namespace ember
