// Cluster environments: detection of each launcher from its variables (and which wins when several are
// set), errors for bad values, a user's own environment, SLURM's scontrol calls through a stand-in
// script on PATH, and the Trainer's SLURM auto-requeue: SIGUSR1 saves and requeues, the requeued job
// resumes by itself and ends with the uninterrupted run's weights.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include "tests/trainer_fixtures.hpp"

using namespace ember;
using namespace trainer_test;

namespace {

// Every variable a launcher or SLURM sets that Ember reads, plus PATH.
const char* const kLauncherVars[] = {"OMPI_COMM_WORLD_SIZE",
                                     "OMPI_COMM_WORLD_RANK",
                                     "OMPI_COMM_WORLD_LOCAL_RANK",
                                     "OMPI_COMM_WORLD_LOCAL_SIZE",
                                     "OMPI_MCA_orte_num_nodes",
                                     "PMI_SIZE",
                                     "PMI_RANK",
                                     "MPI_LOCALRANKID",
                                     "MPI_LOCALNRANKS",
                                     "SLURM_STEP_NUM_TASKS",
                                     "SLURM_PROCID",
                                     "SLURM_LOCALID",
                                     "SLURM_NODEID",
                                     "SLURM_STEP_NUM_NODES",
                                     "SLURM_STEP_TASKS_PER_NODE",
                                     "SLURM_NTASKS",
                                     "SLURM_JOB_ID",
                                     "SLURM_JOB_NAME",
                                     "SLURM_ARRAY_JOB_ID",
                                     "SLURM_ARRAY_TASK_ID",
                                     "SLURM_RESTART_COUNT",
                                     "WORLD_SIZE",
                                     "PATH"};

// For one scope: no launcher variable but those given (so the tests pass inside a real SLURM job or
// under mpirun too); every variable's previous value is back afterwards.
class EnvGuard {
 public:
  explicit EnvGuard(std::initializer_list<std::pair<const char*, std::string>> vars) {
    for (const char* name : kLauncherVars) {
      const char* v = std::getenv(name);
      saved_.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
      if (std::string(name) != "PATH") unsetenv(name);
    }
    for (const auto& [k, v] : vars) setenv(k, v.c_str(), 1);
  }
  ~EnvGuard() {
    for (const auto& [name, v] : saved_) v ? setenv(name.c_str(), v->c_str(), 1) : unsetenv(name.c_str());
  }
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A stand-in `scontrol` in <dir>/bin: appends its arguments to <dir>/calls.txt and answers like SLURM.
// mode "allow": Requeue=1; "deny": Requeue=0; "fail": exit 3 with an error; "hang": sleeps.
struct FakeScontrol {
  TempDir dir;
  fs::path calls;
  explicit FakeScontrol(const std::string& mode) : dir("scontrol_" + mode), calls(dir.path / "calls.txt") {
    fs::create_directories(dir.path / "bin");
    const fs::path script = dir.path / "bin" / "scontrol";
    std::ofstream(script)
        << "#!/bin/sh\n"
        << "echo \"$@\" >> '" << calls.string() << "'\n"
        << "mode=" << mode << "\n"
        << "if [ $mode = fail ]; then echo 'scontrol: error: Access/permission denied' >&2; exit 3; fi\n"
        << "if [ $mode = hang ]; then sleep 20; fi\n"
        << "if [ \"$1\" = show ]; then\n"
        << "  echo \"JobId=$3 JobName=train\"\n"
        << "  echo \"   Priority=1 Nice=0 Account=(null) QOS=normal\"\n"
        << "  echo \"   Requeue=" << (mode == "deny" ? 0 : 1) << " Restarts=0 BatchFlag=1 Reboot=0\"\n"
        << "fi\n";
    fs::permissions(script, fs::perms::owner_all);
  }
  // PATH with the stand-in first.
  std::string path_var() const {
    const char* p = std::getenv("PATH");
    return (dir.path / "bin").string() + ":" + (p ? p : "/usr/bin:/bin");
  }
  std::string log() const { return fs::exists(calls) ? read_text(calls) : ""; }
};

}  // namespace

TEST_SUITE("cluster environment") {
  TEST_CASE("detection: local, OpenMPI, MPICH/Hydra, srun and a SLURM batch job, and which wins") {
    {
      EnvGuard env({});
      auto e = dist::detect_cluster_environment();
      CHECK(e->name() == "local");
      CHECK_FALSE(e->creates_processes_externally());
      dist::LaunchInfo i = e->info();
      CHECK(i.launcher == "none");
      CHECK(i.world_size == 1);
      CHECK(dist::launch_info().launcher == "none");
    }
    {
      EnvGuard env({{"OMPI_COMM_WORLD_SIZE", "8"},
                    {"OMPI_COMM_WORLD_RANK", "5"},
                    {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                    {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"},
                    {"OMPI_MCA_orte_num_nodes", "2"},
                    // mpirun inside an allocation starts its daemons with srun: this step is theirs.
                    {"SLURM_STEP_NUM_TASKS", "2"},
                    {"SLURM_PROCID", "1"},
                    {"SLURM_JOB_ID", "77"}});
      auto e = dist::detect_cluster_environment();
      REQUIRE(e->name() == "openmpi");
      CHECK(dynamic_cast<dist::OpenMPIEnvironment*>(e.get()) != nullptr);
      CHECK(e->creates_processes_externally());
      dist::LaunchInfo i = e->info();
      CHECK(i.launcher == "mpirun");
      CHECK(i.rank == 5);
      CHECK(i.world_size == 8);
      CHECK(i.local_rank == 1);
      CHECK(i.local_world_size == 4);
      CHECK(i.node_rank == 1);
      CHECK(i.num_nodes == 2);
      CHECK(dist::launch_info().rank == 5);
    }
    {
      EnvGuard env({{"PMI_SIZE", "4"}, {"PMI_RANK", "3"}, {"MPI_LOCALRANKID", "1"}, {"MPI_LOCALNRANKS", "2"}});
      auto e = dist::detect_cluster_environment();
      REQUIRE(e->name() == "mpich");
      dist::LaunchInfo i = e->info();
      CHECK(i.launcher == "hydra");
      CHECK(i.rank == 3);
      CHECK(i.world_size == 4);
      CHECK(i.local_rank == 1);
      CHECK(i.local_world_size == 2);
      CHECK(i.node_rank == 1);  // the default rule: nodes filled in rank order
      CHECK(i.num_nodes == 2);
    }
    {
      // srun started the process directly: two nodes of two tasks and a third of one; srun's PMI-2
      // plugin sets PMI_* too, without Hydra's MPI_LOCALRANKID.
      EnvGuard env({{"SLURM_STEP_NUM_TASKS", "5"},
                    {"SLURM_PROCID", "4"},
                    {"SLURM_LOCALID", "0"},
                    {"SLURM_NODEID", "2"},
                    {"SLURM_STEP_NUM_NODES", "3"},
                    {"SLURM_STEP_TASKS_PER_NODE", "2(x2),1"},
                    {"SLURM_NTASKS", "5"},
                    {"SLURM_JOB_ID", "1234"},
                    {"PMI_SIZE", "5"},
                    {"PMI_RANK", "4"}});
      auto e = dist::detect_cluster_environment();
      REQUIRE(e->name() == "slurm");
      auto* slurm = dynamic_cast<dist::SLURMEnvironment*>(e.get());
      REQUIRE(slurm != nullptr);
      dist::LaunchInfo i = e->info();
      CHECK(i.launcher == "srun");
      CHECK(i.rank == 4);
      CHECK(i.world_size == 5);
      CHECK(i.local_rank == 0);
      CHECK(i.local_world_size == 1);
      CHECK(i.node_rank == 2);
      CHECK(i.num_nodes == 3);
      CHECK(slurm->job_id() == "1234");
      CHECK(slurm->restart_count() == 0);
    }
    {
      // The batch script's own process: rank 0 of 1, a requeueable job; array tasks are <array>_<task>.
      EnvGuard env({{"SLURM_JOB_ID", "107"},
                    {"SLURM_ARRAY_JOB_ID", "100"},
                    {"SLURM_ARRAY_TASK_ID", "7"},
                    {"SLURM_NTASKS", "1"},
                    {"SLURM_JOB_NAME", "train.sh"},
                    {"SLURM_RESTART_COUNT", "2"}});
      auto e = dist::detect_cluster_environment();
      REQUIRE(e->name() == "slurm");
      auto* slurm = dynamic_cast<dist::SLURMEnvironment*>(e.get());
      CHECK(slurm->job_id() == "100_7");
      CHECK(slurm->restart_count() == 2);
      CHECK(e->info().launcher == "sbatch");
      CHECK(e->info().world_size == 1);
    }
    {
      // An interactive shell (salloc, srun --pty bash) is not a job to requeue; nor is a job of 4 tasks
      // whose script started the program without srun (it runs as one local process, with a warning).
      EnvGuard env({{"SLURM_JOB_ID", "5"}, {"SLURM_JOB_NAME", "bash"}});
      CHECK(dist::detect_cluster_environment()->name() == "local");
      setenv("SLURM_JOB_NAME", "train", 1);
      CHECK(dist::detect_cluster_environment()->name() == "slurm");
      setenv("SLURM_NTASKS", "4", 1);
      CHECK(dist::detect_cluster_environment()->name() == "local");
    }
  }

  TEST_CASE("bad or inconsistent launcher variables are a DistError naming the variable and its value") {
    auto fails = [](std::initializer_list<std::pair<const char*, std::string>> vars, const char* message) {
      EnvGuard env(vars);
      return throws_with<DistError>([] { dist::detect_cluster_environment(); }, message);
    };
    CHECK(fails({{"OMPI_COMM_WORLD_SIZE", "four"}, {"OMPI_COMM_WORLD_RANK", "0"}},
                "[dist::OpenMPIEnvironment] OMPI_COMM_WORLD_SIZE=\"four\" is not a non-negative integer"));
    CHECK(fails({{"OMPI_COMM_WORLD_SIZE", "2"}}, "[dist::OpenMPIEnvironment] OMPI_COMM_WORLD_RANK is not set"));
    CHECK(fails({{"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_RANK", "-1"}}, "OMPI_COMM_WORLD_RANK=\"-1\""));
    CHECK(fails({{"OMPI_COMM_WORLD_SIZE", "4"},
                 {"OMPI_COMM_WORLD_RANK", "0"},
                 {"OMPI_COMM_WORLD_LOCAL_RANK", "2"},
                 {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}},
                "OMPI_COMM_WORLD_LOCAL_RANK=2 and OMPI_COMM_WORLD_LOCAL_SIZE=2 do not fit a world of 4"));
    CHECK(fails({{"PMI_SIZE", "2"}, {"PMI_RANK", "2"}}, "PMI_RANK=2 is not a rank of PMI_SIZE=2 (rank 2 of 2)"));
    CHECK(fails({{"SLURM_STEP_NUM_TASKS", "4"}, {"SLURM_PROCID", "4"}},
                "[dist::SLURMEnvironment] SLURM_PROCID=4 is not a rank of SLURM_STEP_NUM_TASKS=4"));
    CHECK(fails({{"SLURM_STEP_NUM_TASKS", "4"}, {"SLURM_PROCID", "0"}, {"SLURM_STEP_TASKS_PER_NODE", "2(x"}},
                "SLURM_STEP_TASKS_PER_NODE=\"2(x\" is not a task count per node"));
    CHECK(fails({{"SLURM_STEP_NUM_TASKS", "4"}, {"SLURM_PROCID", "0"}, {"SLURM_STEP_TASKS_PER_NODE", "2(x3)"}},
                "SLURM_STEP_TASKS_PER_NODE=\"2(x3)\" counts 6 tasks but SLURM_STEP_NUM_TASKS=4"));
    CHECK(fails({{"SLURM_STEP_NUM_TASKS", "4"},
                 {"SLURM_PROCID", "0"},
                 {"SLURM_STEP_TASKS_PER_NODE", "2(x2)"},
                 {"SLURM_NODEID", "1"},
                 {"SLURM_LOCALID", "2"}},
                "SLURM_LOCALID=2 is not a task of the 2 on node 1"));
    CHECK(fails({{"SLURM_STEP_NUM_TASKS", "4"},
                 {"SLURM_PROCID", "0"},
                 {"SLURM_STEP_TASKS_PER_NODE", "2(x2)"},
                 {"SLURM_STEP_NUM_NODES", "3"}},
                "SLURM_STEP_NUM_NODES=3 but SLURM_STEP_TASKS_PER_NODE lists 2 nodes"));
    CHECK(fails({{"SLURM_JOB_ID", "12a"}}, "[dist::SLURMEnvironment] SLURM_JOB_ID=\"12a\" is not a job id"));
    CHECK(fails({{"SLURM_JOB_ID", "12"}, {"SLURM_RESTART_COUNT", "x"}}, "SLURM_RESTART_COUNT=\"x\""));
    // torchrun's variables alone: the processes are not connected, so each would train alone.
    CHECK(fails({{"WORLD_SIZE", "4"}}, "[dist] WORLD_SIZE=4 is set (torchrun sets it) but no MPI launcher"));
    {
      EnvGuard one({{"WORLD_SIZE", "1"}});
      CHECK(dist::detect_cluster_environment()->name() == "local");
    }
    {
      EnvGuard under_mpirun({{"WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_RANK", "1"}});
      CHECK(dist::detect_cluster_environment()->info().world_size == 2);
    }
    // The Trainer raises them at construction, before anything runs.
    EnvGuard env({{"PMI_SIZE", "2"}, {"PMI_RANK", "5"}});
    CHECK(throws_with<DistError>([] { train::Trainer t(quiet({})); }, "PMI_RANK=5"));
  }

  TEST_CASE("each process's GPU: its local rank, or the one GPU it sees; too few GPUs is a DeviceError") {
    const dist::LaunchInfo third{.rank = 6, .world_size = 8, .local_rank = 2, .local_world_size = 4, .node_rank = 1};
    CHECK(dist::local_cuda_device(third, 4) == 2);
    CHECK(dist::local_cuda_device(third, 8) == 2);
    CHECK(dist::local_cuda_device(third, 1) == 0);  // srun --gpus-per-task=1: each task sees its own GPU as 0
    CHECK(throws_with<DeviceError>([&] { dist::local_cuda_device(third, 2); },
                                   "[dist] local rank 2 of the 4 processes on node 1 has no GPU of its own: the "
                                   "node shows 2 CUDA devices"));
    CHECK(throws_with<DeviceError>([&] { dist::local_cuda_device(third, 0); }, "rank 6 of 8 sees no CUDA device"));
  }

  TEST_CASE("a user's own ClusterEnvironment: the Trainer uses it instead of detecting, and checks it") {
    struct Fixed : dist::ClusterEnvironment {
      int rank = 0, size = 1;
      std::string name() const override { return "fixed"; }
      bool creates_processes_externally() const override { return true; }
      int world_size() const override { return size; }
      int global_rank() const override { return rank; }
      int local_rank() const override { return 0; }
      int local_world_size() const override { return 1; }
    };
    // mpirun's variables say 2 processes; the explicit environment says this one is alone.
    EnvGuard env({{"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_RANK", "0"}});
    auto fixed = std::make_shared<Fixed>();
    train::Trainer t(quiet({.cluster_environment = fixed}));
    CHECK(t.cluster_environment() == fixed);
    CHECK(t.communicator() == nullptr);
    CHECK(t.world_size() == 1);
    CHECK(throws_with<ValueError>([] { train::Trainer d(quiet({.devices = 4})); }, "mpirun started 2"));
    fixed->rank = 3;
    fixed->size = 2;
    CHECK(throws_with<DistError>([&] { train::Trainer bad(quiet({.cluster_environment = fixed})); },
                                 "[dist::launch_info] fixed (fixed) gives rank 3 of 2"));
    {
      EnvGuard none({});
      train::Trainer detected(quiet({}));
      CHECK(detected.cluster_environment()->name() == "local");
    }
  }

  TEST_CASE("SLURMEnvironment runs scontrol without a shell, reads Requeue=, and reports failures") {
    FakeScontrol allow("allow");
    {
      EnvGuard env({{"SLURM_JOB_ID", "4242"}, {"PATH", allow.path_var()}});
      dist::SLURMEnvironment slurm;
      CHECK(slurm.requeue_allowed());
      slurm.requeue();
      CHECK(allow.log() == "show job 4242\nrequeue 4242\n");
    }
    FakeScontrol deny("deny");
    {
      EnvGuard env({{"SLURM_JOB_ID", "4242"}, {"PATH", deny.path_var()}});
      CHECK_FALSE(dist::SLURMEnvironment().requeue_allowed());
    }
    FakeScontrol fail("fail");
    {
      EnvGuard env({{"SLURM_JOB_ID", "4242"}, {"PATH", fail.path_var()}});
      CHECK(throws_with<DistError>([] { dist::SLURMEnvironment().requeue(); },
                                   "[dist::SLURMEnvironment] `scontrol requeue 4242` exited with status 3: "
                                   "scontrol: error: Access/permission denied"));
    }
    FakeScontrol hang("hang");
    {
      EnvGuard env({{"SLURM_JOB_ID", "4242"}, {"PATH", hang.path_var()}});
      const auto start = std::chrono::steady_clock::now();
      CHECK(throws_with<DistError>([] { dist::SLURMEnvironment({.command_timeout = 0.3}).requeue_allowed(); },
                                   "`scontrol show job 4242` did not finish within 0.3 s and was killed"));
      CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
    }
    {
      EnvGuard env({{"SLURM_JOB_ID", "4242"}, {"PATH", (allow.dir.path / "nothing").string()}});
      CHECK(throws_with<DistError>([] { dist::SLURMEnvironment().requeue(); },
                                   "cannot run `scontrol requeue 4242`: No such file or directory (is SLURM's "
                                   "scontrol on PATH?)"));
      EnvGuard no_job({});
      CHECK(throws_with<DistError>([] { dist::SLURMEnvironment().requeue(); }, "SLURM_JOB_ID is not set"));
    }
  }

  TEST_CASE("SLURM auto-requeue: SIGUSR1 saves and requeues; the requeued job resumes where it stopped") {
    // Raises a signal at the start of one training batch, once; records the step fit began at.
    struct Raiser : train::Callback {
      int sig = 0;
      int64_t at = -1, first_step = -1;
      void on_train_batch_start(train::Trainer& t, train::TrainModule&, const data::Batch&, int64_t) override {
        if (first_step < 0) first_step = t.global_step();
        if (t.global_step() == at && sig != 0) {
          std::raise(sig);
          sig = 0;
        }
      }
    };
    TempDir root("requeue");
    auto options = [&](std::shared_ptr<Raiser> r, bool auto_requeue = true) {
      return quiet({.max_epochs = 2, .callbacks = {r}, .default_root_dir = root.str(), .auto_requeue = auto_requeue});
    };
    auto make_model = [](uint64_t seed) {
      manual_seed(seed);
      auto m = std::make_unique<Tiny>();
      m->use_adam = true;
      return m;
    };
    auto full_model = make_model(5);
    {
      EnvGuard env({});
      train::Trainer full(options(std::make_shared<Raiser>()));
      full.fit(*full_model, loader(24, 4, true));  // 6 batches per epoch, 12 steps
    }
    // The first start of job 4242 gets SIGUSR1 (sbatch --signal=USR1@90) at step 3.
    FakeScontrol scontrol("allow");
    {
      EnvGuard env({{"SLURM_JOB_ID", "4242"}, {"SLURM_JOB_NAME", "train"}, {"PATH", scontrol.path_var()}});
      auto model = make_model(5);
      auto r = std::make_shared<Raiser>();
      r->sig = SIGUSR1;
      r->at = 3;
      train::Trainer first(options(r));
      CHECK(first.cluster_environment()->name() == "slurm");
      first.fit(*model, loader(24, 4, true));
      CHECK(first.interrupted());
      CHECK(first.global_step() == 4);
      train::Checkpoint ck = train::Checkpoint::load(first.interrupted_checkpoint_path());
      CHECK(ck.state.at("slurm").at("job_id") == "4242");
      CHECK(ck.state.at("slurm").at("restart_count") == 0);
      CHECK(scontrol.log() == "show job 4242\nrequeue 4242\n");
      // A later fit in the same start of the job does not take the checkpoint as its own.
      auto again = std::make_shared<Raiser>();
      train::Trainer same_start(options(again));
      auto other = make_model(5);
      same_start.fit(*other, loader(24, 4, true));
      CHECK(again->first_step == 0);
    }
    // Another job (or this one with auto_requeue off) starts afresh from the same folder.
    for (const auto& [job_, on_] : {std::pair<std::string, bool>{"999", true}, {"4242", false}}) {
      const std::string& job = job_;  // (clang 14: doctest's CAPTURE cannot capture a structured binding)
      const bool on = on_;
      CAPTURE(job);
      EnvGuard env({{"SLURM_JOB_ID", job}, {"SLURM_RESTART_COUNT", "1"}, {"PATH", scontrol.path_var()}});
      auto r = std::make_shared<Raiser>();
      train::Trainer other(options(r, on));
      auto m = make_model(5);
      other.fit(*m, loader(24, 4, true));
      CHECK(r->first_step == 0);
    }
    // The requeued start (SLURM_RESTART_COUNT=1) of job 4242, with an empty ckpt_path: it resumes at step 4
    // and ends with the uninterrupted run's weights.
    {
      EnvGuard env({{"SLURM_JOB_ID", "4242"}, {"SLURM_RESTART_COUNT", "1"}, {"PATH", scontrol.path_var()}});
      auto r = std::make_shared<Raiser>();
      train::Trainer second(options(r));
      auto resumed = make_model(77);
      second.fit(*resumed, loader(24, 4, true));
      CHECK_FALSE(second.interrupted());
      CHECK(r->first_step == 4);
      CHECK(second.global_step() == 12);
      CHECK(flat_params(*resumed) == flat_params(*full_model));
    }
    CHECK(scontrol.log() == "show job 4242\nrequeue 4242\n");  // nobody else called scontrol
  }

  TEST_CASE("SLURM auto-requeue: not when the job forbids it, on SIGTERM, or with auto_requeue off") {
    struct Raiser : train::Callback {
      int sig = 0;
      void on_train_batch_start(train::Trainer&, train::TrainModule&, const data::Batch&, int64_t) override {
        if (sig != 0) std::raise(std::exchange(sig, 0));
      }
    };
    struct Case {
      const char* mode;
      int sig;
      bool auto_requeue;
      const char* calls;
    };
    for (const Case& c : {Case{"deny", SIGUSR1, true, "show job 31\n"}, Case{"allow", SIGTERM, true, ""},
                          Case{"allow", SIGUSR1, false, ""}, Case{"fail", SIGUSR1, true, "show job 31\n"}}) {
      CAPTURE(c.mode);
      CAPTURE(c.sig);
      FakeScontrol scontrol(c.mode);
      TempDir root("requeue_not");
      EnvGuard env({{"SLURM_JOB_ID", "31"}, {"PATH", scontrol.path_var()}});
      auto r = std::make_shared<Raiser>();
      r->sig = c.sig;
      train::Trainer t(
          quiet({.max_epochs = 1, .callbacks = {r}, .default_root_dir = root.str(), .auto_requeue = c.auto_requeue}));
      Tiny m;
      t.fit(m, loader(8, 4, false));  // a failing scontrol is reported, not thrown: the run is saved
      CHECK(t.interrupted());
      CHECK(fs::exists(t.interrupted_checkpoint_path()));
      CHECK(scontrol.log() == c.calls);
    }
  }
}
