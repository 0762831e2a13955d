// Temporary files of the atomic writers ("<target>.tmp.<pid>", renamed over <target> when complete) and
// the clean-up of those a killed process left behind.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember {

// "<target>.tmp.<pid>": the temporary name an atomic writer of `target` uses in this process.
std::string temp_file_name(const std::string& target);
// fsync of the file `path` (opened for it), and of the folder holding it, so that a rename into that folder
// survives a crash: 0, or the errno of the failing call. A filesystem that cannot fsync a folder (EINVAL)
// counts as done, since the data itself is synced.
int fsync_file(const std::string& path);
int fsync_parent_dir(const std::string& path);
// The pid of a name shaped exactly "<target>.tmp.<pid>" (pid: decimal digits, no sign or leading zero,
// > 0); nullopt for any other name. *target receives the part before ".tmp.".
std::optional<long> temp_file_pid(std::string_view file_name, std::string* target = nullptr);
// Whether a process with this id exists here: kill(pid, 0) succeeds or fails with EPERM, not ESRCH.
bool process_exists(long pid);
// Removes the files of `dir` (not below it) named "<target>.tmp.<pid>" whose process no longer exists
// and whose target `accept` approves; returns the removed names. A missing folder or a file that cannot
// be removed is skipped: clean-up never fails the caller.
std::vector<std::string> remove_stale_temp_files(const std::string& dir,
                                                 const std::function<bool(const std::string& target)>& accept);

}  // namespace ember
