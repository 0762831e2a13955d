// ClusterEnvironment: the built-in environments read their launcher's variables once, strictly (a value
// that is not a number or does not fit the others is a DistError naming it); SLURM's scontrol runs as a
// child process (posix_spawnp, no shell) whose output is captured and whose time is bounded.
#include "dist/cluster_environment.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "dist/process_group.hpp"

extern char** environ;

namespace ember::dist {
namespace {

// The variable's value, or null when unset or empty.
const char* env(const char* var) {
  const char* v = std::getenv(var);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

// A non-negative integer variable; `fallback` when unset (DistError when unset without one).
int env_int(const char* who, const char* var, std::optional<int> fallback = std::nullopt) {
  const char* v = env(var);
  if (v == nullptr) {
    EMBER_CHECK(fallback.has_value(), DistError, "[dist::", who, "] ", var, " is not set");
    return *fallback;
  }
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(v, &end, 10);
  EMBER_CHECK(end != v && *end == '\0' && errno == 0 && x >= 0 && x <= 1 << 30, DistError, "[dist::", who, "] ", var,
              "=\"", v, "\" is not a non-negative integer");
  return static_cast<int>(x);
}

// A job id: digits only (federated ids pass 2^31, so they stay text).
std::string env_id(const char* who, const char* var) {
  const std::string v = env(var) ? env(var) : "";
  EMBER_CHECK(!v.empty() && v.size() <= 20 &&
                  std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isdigit(c) != 0; }),
              DistError, "[dist::", who, "] ", var, "=\"", v, "\" is not a job id");
  return v;
}

// SLURM_STEP_TASKS_PER_NODE: "4", "2(x3)", "2(x3),1" -> one count per node.
std::vector<int> parse_tasks_per_node(const char* var, const std::string& text) {
  std::vector<int> out;
  auto bad = [&]() -> DistError {
    return DistError(detail::cat_str("[dist::SLURMEnvironment] ", var, "=\"", text,
                                     "\" is not a task count per node (like \"4\" or \"2(x3),1\")"));
  };
  size_t i = 0;
  auto number = [&] {
    size_t start = i;
    long x = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) && i - start < 9)
      x = x * 10 + (text[i++] - '0');
    if (i == start) throw bad();
    return static_cast<int>(x);
  };
  while (true) {
    const int tasks = number();
    int repeat = 1;
    if (text.compare(i, 2, "(x") == 0) {
      i += 2;
      repeat = number();
      if (i >= text.size() || text[i] != ')') throw bad();
      ++i;
    }
    if (tasks < 1 || repeat < 1 || out.size() + repeat > 100000) throw bad();
    out.insert(out.end(), repeat, tasks);
    if (i == text.size()) return out;
    if (text[i++] != ',') throw bad();
  }
}

struct CommandResult {
  int status = 0;      // the exit status, or 128 + the signal that killed it
  std::string output;  // stdout and stderr together
};

std::string quoted(const std::vector<std::string>& args) {
  std::string s;
  for (const auto& a : args) s += (s.empty() ? "" : " ") + a;
  return "`" + s + "`";
}

// Runs args[0] (found on PATH) with no shell, stdin from /dev/null, and collects its output; kills it
// and raises DistError after `timeout` seconds, so a wedged scontrol cannot hold the job's grace period.
CommandResult run_command(const std::vector<std::string>& args, double timeout) {
  const char* who = "[dist::SLURMEnvironment] ";
  int fds[2];
  EMBER_CHECK(pipe2(fds, O_CLOEXEC) == 0, DistError, who, "cannot make a pipe for ", quoted(args), ": ",
              std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);  // dup2 clears close-on-exec on 1 and 2 only
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);  // no ignored or blocked signal leaks into the child
  posix_spawnattr_setpgroup(&attr, 0);         // its own group: a timeout kills what it started too
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    throw DistError(detail::cat_str(who, "cannot run ", quoted(args), ": ", std::strerror(rc),
                                    rc == ENOENT ? " (is SLURM's scontrol on PATH?)" : ""));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
  auto left_ms = [&] {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<int64_t>(0, ms.count()));
  };
  CommandResult result;
  bool timed_out = false;
  char buf[4096];
  while (true) {  // until end of output or the deadline
    pollfd p{fds[0], POLLIN, 0};
    const int ready = poll(&p, 1, left_ms());
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      timed_out = true;
      break;
    }
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (result.output.size() < 65536) result.output.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (!timed_out) {  // the output ended; the process may still linger
    const pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR)
      throw DistError(detail::cat_str(who, "waiting for ", quoted(args), ": ", std::strerror(errno)));
    if (left_ms() == 0)
      timed_out = true;
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (timed_out) {
    kill(-pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    throw DistError(detail::cat_str(who, quoted(args), " did not finish within ", timeout, " s and was killed",
                                    result.output.empty() ? "" : "; its output: ", result.output));
  }
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace

// ---- ClusterEnvironment ----

int ClusterEnvironment::node_rank() const {
  const int local = local_world_size();
  return local > 0 ? global_rank() / local : 0;
}

int ClusterEnvironment::num_nodes() const {
  const int local = local_world_size();
  return local > 0 ? (world_size() + local - 1) / local : 1;
}

LaunchInfo ClusterEnvironment::info() const {
  LaunchInfo i{global_rank(), world_size(), local_rank(), local_world_size(), launcher(), node_rank(), num_nodes()};
  EMBER_CHECK(i.world_size >= 1 && i.rank >= 0 && i.rank < i.world_size, DistError, "[dist::launch_info] ", name(),
              " (", i.launcher, ") gives rank ", i.rank, " of ", i.world_size, ": not a valid placement");
  EMBER_CHECK(i.local_world_size >= 1 && i.local_world_size <= i.world_size && i.local_rank >= 0 &&
                  i.local_rank < i.local_world_size,
              DistError, "[dist::launch_info] ", name(), " (", i.launcher, ") gives local rank ", i.local_rank, " of ",
              i.local_world_size, " on a node, in a world of ", i.world_size, ": not a valid placement");
  EMBER_CHECK(i.num_nodes >= 1 && i.num_nodes <= i.world_size && i.node_rank >= 0 && i.node_rank < i.num_nodes,
              DistError, "[dist::launch_info] ", name(), " (", i.launcher, ") gives node ", i.node_rank, " of ",
              i.num_nodes, " for ", i.world_size, " processes: not a valid placement");
  return i;
}

// ---- OpenMPI ----

bool OpenMPIEnvironment::detect() { return env("OMPI_COMM_WORLD_SIZE") != nullptr; }

OpenMPIEnvironment::OpenMPIEnvironment() {
  const char* who = "OpenMPIEnvironment";
  world_size_ = env_int(who, "OMPI_COMM_WORLD_SIZE");
  rank_ = env_int(who, "OMPI_COMM_WORLD_RANK");
  local_rank_ = env_int(who, "OMPI_COMM_WORLD_LOCAL_RANK", 0);
  local_world_size_ = env_int(who, "OMPI_COMM_WORLD_LOCAL_SIZE", world_size_);
  num_nodes_ = env_int(who, "OMPI_MCA_orte_num_nodes", 0);
  EMBER_CHECK(world_size_ >= 1 && rank_ < world_size_, DistError, "[dist::", who, "] OMPI_COMM_WORLD_RANK=", rank_,
              " is not a rank of OMPI_COMM_WORLD_SIZE=", world_size_, " (rank ", rank_, " of ", world_size_, ")");
  EMBER_CHECK(local_world_size_ >= 1 && local_world_size_ <= world_size_ && local_rank_ < local_world_size_, DistError,
              "[dist::", who, "] OMPI_COMM_WORLD_LOCAL_RANK=", local_rank_,
              " and OMPI_COMM_WORLD_LOCAL_SIZE=", local_world_size_, " do not fit a world of ", world_size_);
}

int OpenMPIEnvironment::num_nodes() const { return num_nodes_ > 0 ? num_nodes_ : ClusterEnvironment::num_nodes(); }

// ---- MPICH / Hydra ----

bool MPICHEnvironment::detect() {
  return env("PMI_SIZE") != nullptr && (env("MPI_LOCALRANKID") != nullptr || env("SLURM_STEP_NUM_TASKS") == nullptr);
}

MPICHEnvironment::MPICHEnvironment() {
  const char* who = "MPICHEnvironment";
  world_size_ = env_int(who, "PMI_SIZE");
  rank_ = env_int(who, "PMI_RANK", 0);
  local_rank_ = env_int(who, "MPI_LOCALRANKID", 0);
  local_world_size_ = env_int(who, "MPI_LOCALNRANKS", env("MPI_LOCALRANKID") ? world_size_ : 1);
  EMBER_CHECK(world_size_ >= 1 && rank_ < world_size_, DistError, "[dist::", who, "] PMI_RANK=", rank_,
              " is not a rank of PMI_SIZE=", world_size_, " (rank ", rank_, " of ", world_size_, ")");
  EMBER_CHECK(local_world_size_ >= 1 && local_world_size_ <= world_size_ && local_rank_ < local_world_size_, DistError,
              "[dist::", who, "] MPI_LOCALRANKID=", local_rank_, " and MPI_LOCALNRANKS=", local_world_size_,
              " do not fit a world of ", world_size_);
}

// ---- SLURM ----

bool SLURMEnvironment::detect_srun() { return env("SLURM_STEP_NUM_TASKS") != nullptr; }

bool SLURMEnvironment::detect_batch() {
  if (env("SLURM_JOB_ID") == nullptr) return false;
  const char* name = env("SLURM_JOB_NAME");
  if (name != nullptr && (std::strcmp(name, "bash") == 0 || std::strcmp(name, "interactive") == 0)) return false;
  const char* ntasks = env("SLURM_NTASKS");
  if (ntasks == nullptr || std::strcmp(ntasks, "1") == 0) return true;
  static bool warned = false;  // once per process: launch_info() is asked often
  if (!warned) {
    warned = true;
    std::cerr << "[dist] warning: this SLURM job has SLURM_NTASKS=" << ntasks
              << " but the program was not started by srun: it runs as one process. Start it with `srun <program>` "
                 "in the batch script to run one process per task.\n";
  }
  return false;
}

SLURMEnvironment::SLURMEnvironment(SLURMOptions options) : options_(options) {
  const char* who = "SLURMEnvironment";
  EMBER_CHECK(options_.command_timeout > 0, ValueError, "[dist::", who,
              "] command_timeout must be a positive number of seconds, got ", options_.command_timeout);
  EMBER_CHECK(options_.requeue_signal > 0, ValueError, "[dist::", who, "] requeue_signal must be a signal number, got ",
              options_.requeue_signal);
  if (const char* array = env("SLURM_ARRAY_JOB_ID"); array != nullptr && env("SLURM_ARRAY_TASK_ID") != nullptr)
    job_id_ = env_id(who, "SLURM_ARRAY_JOB_ID") + "_" + env_id(who, "SLURM_ARRAY_TASK_ID");
  else if (env("SLURM_JOB_ID") != nullptr)
    job_id_ = env_id(who, "SLURM_JOB_ID");
  restart_count_ = env_int(who, "SLURM_RESTART_COUNT", 0);
  srun_ = detect_srun();
  if (!srun_) return;  // a batch job's one process: rank 0 of 1
  world_size_ = env_int(who, "SLURM_STEP_NUM_TASKS");
  rank_ = env_int(who, "SLURM_PROCID");
  local_rank_ = env_int(who, "SLURM_LOCALID", 0);
  node_rank_ = env_int(who, "SLURM_NODEID", 0);
  EMBER_CHECK(world_size_ >= 1 && rank_ < world_size_, DistError, "[dist::", who, "] SLURM_PROCID=", rank_,
              " is not a rank of SLURM_STEP_NUM_TASKS=", world_size_, " (rank ", rank_, " of ", world_size_, ")");
  std::vector<int> per_node{world_size_};
  if (const char* t = env("SLURM_STEP_TASKS_PER_NODE")) {
    per_node = parse_tasks_per_node("SLURM_STEP_TASKS_PER_NODE", t);
    int total = 0;
    for (int n : per_node) total += n;
    EMBER_CHECK(total == world_size_, DistError, "[dist::", who, "] SLURM_STEP_TASKS_PER_NODE=\"", t, "\" counts ",
                total, " tasks but SLURM_STEP_NUM_TASKS=", world_size_);
  }
  num_nodes_ = env_int(who, "SLURM_STEP_NUM_NODES", static_cast<int>(per_node.size()));
  EMBER_CHECK(num_nodes_ == static_cast<int>(per_node.size()), DistError, "[dist::", who,
              "] SLURM_STEP_NUM_NODES=", num_nodes_, " but SLURM_STEP_TASKS_PER_NODE lists ", per_node.size(),
              " nodes");
  EMBER_CHECK(node_rank_ < num_nodes_, DistError, "[dist::", who, "] SLURM_NODEID=", node_rank_,
              " is not a node of the step's ", num_nodes_);
  local_world_size_ = per_node[static_cast<size_t>(node_rank_)];
  EMBER_CHECK(local_rank_ < local_world_size_, DistError, "[dist::", who, "] SLURM_LOCALID=", local_rank_,
              " is not a task of the ", local_world_size_, " on node ", node_rank_);
}

bool SLURMEnvironment::requeue_allowed() const {
  EMBER_CHECK(!job_id_.empty(), DistError, "[dist::SLURMEnvironment] no SLURM job (SLURM_JOB_ID is not set)");
  const std::vector<std::string> args{"scontrol", "show", "job", job_id_};
  const CommandResult r = run_command(args, options_.command_timeout);
  EMBER_CHECK(r.status == 0, DistError, "[dist::SLURMEnvironment] ", quoted(args), " exited with status ", r.status,
              ": ", r.output);
  // Fields are separated by spaces and newlines: "Requeue=1 Restarts=0 BatchFlag=1".
  for (size_t at = r.output.find("Requeue="); at != std::string::npos; at = r.output.find("Requeue=", at + 1))
    if ((at == 0 || std::isspace(static_cast<unsigned char>(r.output[at - 1]))) &&
        r.output.compare(at, 9, "Requeue=1") == 0)
      return true;
  return false;
}

void SLURMEnvironment::requeue() const {
  EMBER_CHECK(!job_id_.empty(), DistError, "[dist::SLURMEnvironment] no SLURM job (SLURM_JOB_ID is not set)");
  const std::vector<std::string> args{"scontrol", "requeue", job_id_};
  const CommandResult r = run_command(args, options_.command_timeout);
  EMBER_CHECK(r.status == 0, DistError, "[dist::SLURMEnvironment] ", quoted(args), " exited with status ", r.status,
              ": ", r.output);
}

// ---- detection ----

std::shared_ptr<ClusterEnvironment> detect_cluster_environment() {
  if (OpenMPIEnvironment::detect()) return std::make_shared<OpenMPIEnvironment>();
  if (MPICHEnvironment::detect()) return std::make_shared<MPICHEnvironment>();
  if (SLURMEnvironment::detect()) return std::make_shared<SLURMEnvironment>();
  // torchrun's variables with no MPI launcher or SLURM step: nothing connects these processes, and each
  // would train alone on GPU 0, writing the same checkpoints.
  const char* ws = std::getenv("WORLD_SIZE");
  EMBER_CHECK(ws == nullptr || *ws == '\0' || std::string_view(ws) == "1", DistError, "[dist] WORLD_SIZE=", ws,
              " is set (torchrun sets it) but no MPI launcher (mpirun, mpiexec) or SLURM step started this process. "
              "Ember connects its processes through MPI: start them with `mpirun -np ",
              ws, " <program>` (or srun), or unset WORLD_SIZE to run one process");
  return std::make_shared<LocalEnvironment>();
}

LaunchInfo launch_info() { return detect_cluster_environment()->info(); }

int local_cuda_device(const LaunchInfo& launch, int device_count) {
  EMBER_CHECK(device_count > 0, DeviceError, "[dist] rank ", launch.rank, " of ", launch.world_size,
              " sees no CUDA device");
  if (device_count == 1) return 0;
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  EMBER_CHECK(launch.local_rank < device_count, DeviceError, "[dist] local rank ", launch.local_rank, " of the ",
              launch.local_world_size, " processes on node ", launch.node_rank,
              " has no GPU of its own: the node shows ", device_count,
              " CUDA devices (CUDA_VISIBLE_DEVICES=", visible != nullptr ? visible : "<unset>",
              "). Start at most one process per GPU");
  return launch.local_rank;
}

void init_process_group(const ClusterEnvironment& environment) {
  const LaunchInfo info = environment.info();
  if (info.world_size == 1) return;
  init_process_group("mpi");
  const Communicator& comm = world();
  EMBER_CHECK(comm.world_size() == info.world_size && comm.rank() == info.rank, DistError,
              "[dist::init_process_group] ", environment.name(), " says rank ", info.rank, " of ", info.world_size,
              " but MPI says rank ", comm.rank(), " of ", comm.world_size(),
              ": the environment must describe the processes the MPI launcher started");
}

}  // namespace ember::dist
