// ember::dist under faults, across two processes (run by test_mpi.cpp's main): ranks that disagree on
// batch counts, epochs or stream lengths, a rank that stops, and errors on one rank or on every rank. The
// tests run child jobs (`mpirun -np 2 <this program> --scenario <name> <dir>`) from rank 0, each bounded
// and cleaned up, and check their exit status, time and output.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "dist_fixtures.hpp"
#include "ember.hpp"
#include "test_util.hpp"
#include "trainer_fixtures.hpp"

extern char** environ;

using namespace ember;
using testing::throws_with;
namespace fs = std::filesystem;

using namespace testing::dist_fixtures;

namespace {
using trainer_test::loader;

// Trains without any collective of its own (no sync_dist logs), so the DDP bucket is the one to wait.
struct Plain : train::TrainModule {
  nn::Linear fc{4, 3};
  int64_t stop_self_at = -1;  // rank 1 stops itself (SIGSTOP) at this global step
  int64_t raise_at = -1;      // rank 1 (every rank: raise_everywhere) raises a ValueError at this global step
  bool raise_everywhere = false;
  Plain() { register_module("fc", fc); }
  Tensor training_step(const data::Batch& b, int64_t) override {
    if (stop_self_at >= 0 && trainer().global_step() == stop_self_at && rank() == 1) std::raise(SIGSTOP);
    if (raise_at >= 0 && trainer().global_step() == raise_at && (raise_everywhere || rank() == 1))
      throw ValueError("[Plain] rank " + std::to_string(rank()) + "'s batch is bad");
    return nn::functional::cross_entropy(fc(b.input), b.target);
  }
  train::OptimizerConfig configure_optimizers() override {
    return {std::make_shared<optim::SGD>(parameters(), optim::SGDOptions{.lr = 0.1})};
  }
};

// A stream of n examples per pass (an IterableDataset: its loader has no length, so no batch count to compare).
std::shared_ptr<data::DataLoader> stream(int64_t n) {
  auto ds = std::make_shared<data::StreamDataset>([n](int64_t) {
    auto i = std::make_shared<int64_t>(0);
    return [n, i]() -> std::optional<data::Example> {
      if (*i >= n) return std::nullopt;
      const int64_t k = (*i)++;
      return data::Example{.input = full({4}, double(k % 5) / 5.0), .target = full({}, k % 3, {.dtype = kI64})};
    };
  });
  return std::make_shared<data::DataLoader>(ds, data::DataLoaderOptions{.batch_size = 8});
}

// What a scenario does on each rank of a child job (see main): runs until a collective times out, then
// reports what it caught and whether the communicator still works, and returns 0. The process group's
// shutdown must still make the job exit non-zero, and promptly. The *_raises scenarios return 1 at once,
// as a program's main would.
constexpr double kScenarioTimeout = 4.0;  // ddp_timeout in the child jobs (seconds)

}  // namespace

int run_scenario(const std::string& name, const fs::path& dir) {
  std::ofstream(dir / ("pid." + std::to_string(rank()))) << getpid() << "\n";
  auto options = [](int64_t epochs, double timeout = kScenarioTimeout) {
    return trainer_test::quiet({.max_epochs = epochs, .devices = 2, .ddp_timeout = timeout});
  };
  try {
    manual_seed(1);
    Plain m;
    if (name == "one_rank_raises" || name == "every_rank_raises") {
      // Rank 1 (or both) raises in its second step and, as a program's main would, returns 1 (after
      // destroy_process_group for one rank). Rank 0 would wait in the gradient all-reduce for the whole timeout.
      m.raise_at = 1;
      m.raise_everywhere = name == "every_rank_raises";
      train::Trainer t(options(2, 600));
      try {
        t.fit(m, loader(64, 8, true));
      } catch (const std::exception& e) {
        std::cout << "rank " << rank() << " caught: " << e.what() << std::endl;
        if (name == "one_rank_raises") dist::destroy_process_group();  // as the exit would, or abort
        return 1;
      }
    } else if (name == "stopped_rank") {
      // Rank 1 stops itself in its second step; rank 0 waits in the gradient all-reduce.
      m.stop_self_at = 1;
      train::Trainer t(options(2));
      t.fit(m, loader(64, 8, true));
    } else if (name == "max_epochs") {  // rank 0 ends after 1 epoch (and waits at fit's last barrier), rank 1 goes on
      train::Trainer t(options(rank() == 0 ? 1 : 2));
      t.fit(m, loader(64, 8, true));
    } else if (name == "stream_lengths") {  // 3 batches on rank 0, 5 on rank 1, of a stream of unknown length
      train::Trainer t(options(1));
      t.fit(m, stream(rank() == 0 ? 24 : 40));
    } else {
      std::cout << "unknown scenario " << name << std::endl;
      return 2;
    }
    std::cout << "rank " << rank() << " finished without an error" << std::endl;
  } catch (const std::exception& e) {
    std::cout << "rank " << rank() << " caught: " << e.what() << std::endl;
    try {
      dist::world().barrier();
      std::cout << "rank " << rank() << " after: the barrier passed" << std::endl;
    } catch (const std::exception& again) {
      std::cout << "rank " << rank() << " after: " << again.what() << std::endl;
    }
  }
  return 0;
}

namespace {

// Whether a process runs this test program (a pid file may outlive its process and the pid be reused).
bool is_our_process(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return cmdline.find("ember_dist_tests") != std::string::npos;
}

struct ChildJob {
  int status = -1;
  bool killed = false;  // ran past the bound
  double seconds = 0;
  std::string output;
  bool exited_nonzero() const { return !killed && !(WIFEXITED(status) && WEXITSTATUS(status) == 0); }
};

// Runs `mpirun -np 2 <this program> --scenario name <dir>` as a job of its own (without this job's
// launcher variables) and returns its exit status and output. Past `bound` seconds the job is killed; so
// are, in any case, its ranks still alive (a stopped one is continued and killed).
ChildJob run_child_job(const std::string& name, double bound) {
  const fs::path dir = fs::temp_directory_path() / ("ember_dist_scenario_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string exe = fs::read_symlink("/proc/self/exe").string(), log = (dir / "output.txt").string();
  std::vector<std::string> args = {"mpirun",    "-np",  "2", "--oversubscribe", "--allow-run-as-root",
                                   "--bind-to", "none", exe, "--scenario",      name,
                                   dir.string()};
  // Drop what mpirun told this job's ranks (OMPI_* but the user's own MCA settings, PMIX_*), or the inner
  // mpirun and its ranks would take themselves for part of this job.
  std::vector<std::string> env;
  auto job_specific = [](const std::string& v) {
    for (const char* p :
         {"OMPI_MCA_orte_", "OMPI_MCA_ess", "OMPI_MCA_pmix", "OMPI_MCA_initial_wdir", "OMPI_MCA_mpi_oversubscribe",
          "OMPI_MCA_rmaps_base_oversubscribe", "OMPI_MCA_shmem_RUNTIME_QUERY_hint", "PMIX_", "PMI_", "OPAL_", "ORTE_"})
      if (v.rfind(p, 0) == 0) return true;
    return v.rfind("OMPI_", 0) == 0 && v.rfind("OMPI_MCA_", 0) != 0;
  };
  for (char** e = environ; *e != nullptr; ++e)
    if (!job_specific(*e)) env.emplace_back(*e);
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& v : env) envp.push_back(v.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);  // its own process group, to kill it whole
  posix_spawnattr_setpgroup(&attr, 0);
  ChildJob job;
  pid_t pid = -1;
  const auto start = std::chrono::steady_clock::now();
  const int rc = posix_spawnp(&pid, "mpirun", &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  CHECK_MESSAGE(rc == 0, "could not start mpirun from PATH");  // not REQUIRE: rank 1 waits at a barrier
  if (rc != 0) {
    job.killed = true;
    fs::remove_all(dir);
    return job;
  }
  for (;;) {
    if (waitpid(pid, &job.status, WNOHANG) == pid) break;
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > bound) {
      job.killed = true;
      kill(-pid, SIGKILL);
      waitpid(pid, &job.status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  job.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (int r = 0; r < 2; ++r) {  // no rank outlives the test, stopped or not
    std::ifstream in(dir / ("pid." + std::to_string(r)));
    pid_t rank_pid = 0;
    if (in >> rank_pid && rank_pid > 0 && is_our_process(rank_pid)) {
      kill(rank_pid, SIGCONT);
      kill(rank_pid, SIGKILL);
    }
  }
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  job.output = text.str();
  fs::remove_all(dir);
  return job;
}

// Rank 0 runs a child job while rank 1 waits; the checks run on rank 0.
void on_rank_zero(const std::function<void()>& f) {
  if (rank() == 0) f();
  comm().barrier();
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_SUITE("dist ranks that disagree") {
  TEST_CASE("ranks with different numbers of training batches stop at the epoch's start, naming both counts") {
    manual_seed(6);
    Plain m;
    train::Trainer t(trainer_test::quiet({.max_epochs = 2, .devices = 2}));
    // 64 and 80 examples: the DistributedSampler gives 32 and 40 per rank, in batches of 8.
    CHECK(throws_with<DistError>([&] { t.fit(m, loader(rank() == 0 ? 64 : 80, 8, true)); },
                                 "some rank has 4 and another 5 (this rank, " + std::to_string(rank()) + ", has " +
                                     std::to_string(rank() == 0 ? 4 : 5) + ")"));
    CHECK(t.global_step() == 0);
    // limit_train_batches evens them out, and the group still works.
    train::Trainer even(trainer_test::quiet({.max_epochs = 1, .devices = 2, .limit_train_batches = 4}));
    even.fit(m, loader(rank() == 0 ? 64 : 80, 8, true));
    CHECK(even.global_step() == 4);
    CHECK(same_on_all_ranks(flat(m)));
  }

  TEST_CASE("a rank that stopped (SIGSTOP): the other raises after ddp_timeout, and the job exits non-zero") {
    on_rank_zero([] {
      const ChildJob job = run_child_job("stopped_rank", 60);
      INFO(job.output);
      CHECK(!job.killed);
      CHECK(job.exited_nonzero());
      CHECK(has(job.output,
                "rank 0 caught: [dist::all_reduce] timed out after 4 s on rank 0 of 2 (mpi backend): "
                "all_reduce (sum) of 17 elements of float32 waited longer than the timeout"));
      CHECK(has(job.output, "rank 0 after: [dist::barrier] the mpi communicator is unusable after an earlier failure"));
      CHECK(has(job.output, "ending the job with MPI_Abort"));
      CHECK(!has(job.output, "rank 1 caught"));  // stopped, it raised nothing
      CHECK(job.seconds < 40);
    });
  }

  TEST_CASE("an error on one rank ends the job within dist::kExitWait, not after the ddp_timeout") {
    on_rank_zero([] {
      const ChildJob job = run_child_job("one_rank_raises", 120);
      INFO(job.output);
      CHECK(!job.killed);
      CHECK(job.exited_nonzero());
      CHECK(has(job.output, "rank 1 caught: [Plain] rank 1's batch is bad"));
      CHECK(has(job.output,
                "[dist] rank 1's run raised (fit: [Plain] rank 1's batch is bad) and the other ranks did "
                "not reach the end within 30 s: they may wait for it in a collective: ending the job "
                "with MPI_Abort"));
      CHECK(!has(job.output, "rank 0 caught"));  // its collective waits up to 600 s: the abort ends it first
      CHECK(job.seconds < dist::kExitWait + 30);
    });
  }

  TEST_CASE("an error on every rank: the ranks meet at the end and finalize normally") {
    on_rank_zero([] {
      const ChildJob job = run_child_job("every_rank_raises", 60);
      INFO(job.output);
      CHECK(!job.killed);
      CHECK(job.exited_nonzero());  // main returned 1
      CHECK(has(job.output, "rank 0 caught: [Plain] rank 0's batch is bad"));
      CHECK(has(job.output, "rank 1 caught: [Plain] rank 1's batch is bad"));
      CHECK(!has(job.output, "MPI_Abort"));
      CHECK(job.seconds < 20);
    });
  }

  TEST_CASE("ranks with different max_epochs: both raise after ddp_timeout instead of hanging") {
    on_rank_zero([] {
      const ChildJob job = run_child_job("max_epochs", 60);
      INFO(job.output);
      CHECK(!job.killed);
      CHECK(job.exited_nonzero());
      // Rank 0 waits at fit's closing barrier, rank 1 in its second epoch's batch count check; whichever
      // times out first ends the job, so the other may not get to print.
      CHECK((has(job.output, "rank 0 caught: [dist::barrier] timed out after 4 s on rank 0 of 2") ||
             has(job.output,
                 "rank 1 caught: [dist::all_reduce] timed out after 4 s on rank 1 of 2 (mpi backend): "
                 "all_reduce (max) of 2 elements of float64")));
      CHECK(!has(job.output, "finished without an error"));
      CHECK(job.seconds < 40);
    });
  }

  TEST_CASE("ranks with streams of different lengths: a timeout instead of a hang") {
    on_rank_zero([] {
      const ChildJob job = run_child_job("stream_lengths", 60);
      INFO(job.output);
      CHECK(!job.killed);
      CHECK(job.exited_nonzero());
      // Rank 0's stream ends after 3 batches: it waits in the epoch end's stop-flag all-reduce (f64) while
      // rank 1 waits in its 4th batch's gradient all-reduce (f32). Neither mixes the other's data.
      CHECK((has(job.output,
                 "rank 0 caught: [dist::all_reduce] timed out after 4 s on rank 0 of 2 (mpi backend): "
                 "all_reduce (max) of 3 elements of float64") ||
             has(job.output,
                 "rank 1 caught: [dist::all_reduce] timed out after 4 s on rank 1 of 2 (mpi backend): "
                 "all_reduce (sum) of 17 elements of float32")));
      CHECK(!has(job.output, "MPI failed"));
      CHECK(!has(job.output, "finished without an error"));
      CHECK(job.seconds < 40);
    });
  }
}
