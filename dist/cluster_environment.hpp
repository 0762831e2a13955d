// ClusterEnvironment: where this process stands among those a launcher started (Lightning's plugin of
// the same name). Built in: one local process, OpenMPI's mpirun, MPICH/Hydra's mpiexec and SLURM (srun,
// or a batch job of one task), detected from the environment; a user subclasses it for another launcher.
// SLURMEnvironment also speaks to the scheduler: the job id, its restart count, and `scontrol requeue`.
#pragma once
#include <csignal>
#include <memory>
#include <string>

namespace ember::dist {

// What the launcher's environment says: OpenMPI's mpirun (OMPI_COMM_WORLD_*), MPICH/Hydra (PMI_*),
// or SLURM's srun (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID); else rank 0 of 1.
struct LaunchInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // among the processes on this node: picks the CUDA device
  int local_world_size = 1;
  std::string launcher = "none";  // "mpirun", "hydra", "srun", "sbatch" (one process of a batch job) or "none"
  int node_rank = 0;
  int num_nodes = 1;
};

// The CUDA device index a process of `launch` trains on, with `device_count` devices visible to it: its
// local rank, or 0 when it sees a single GPU (srun --gpus-per-task=1, a CUDA_VISIBLE_DEVICES per rank).
// DeviceError when the node has fewer GPUs than processes, instead of a rank failing while the others
// wait for it in the NCCL setup.
int local_cuda_device(const LaunchInfo& launch, int device_count);

// The extension point: a launcher Ember does not know becomes a subclass that reads its own variables
// (or asks its own service). Values are fixed for the life of the process; read them in the constructor
// and raise DistError there for values that make no sense, as the built-ins do.
class ClusterEnvironment {
 public:
  virtual ~ClusterEnvironment() = default;
  virtual std::string name() const = 0;  // "local", "openmpi", "mpich", "slurm", or the user's
  // True when a launcher started every process (mpirun, srun); false when the program is alone.
  virtual bool creates_processes_externally() const = 0;
  virtual int world_size() const = 0;
  virtual int global_rank() const = 0;
  virtual int local_rank() const = 0;  // among this node's processes: the CUDA device index
  virtual int local_world_size() const = 0;
  // By default nodes are filled in rank order with local_world_size() processes each (mpirun's default
  // by-slot mapping): node global_rank() / local_world_size() of ceil(world_size() / local_world_size()).
  virtual int node_rank() const;
  virtual int num_nodes() const;
  // The launcher's name in LaunchInfo and in messages ("mpirun started 4 processes"); default name().
  virtual std::string launcher() const { return name(); }
  // All of the above, checked for consistency (DistError naming the environment and the values).
  LaunchInfo info() const;
};

// One process started by hand: rank 0 of 1.
class LocalEnvironment : public ClusterEnvironment {
 public:
  static bool detect() { return true; }
  std::string name() const override { return "local"; }
  std::string launcher() const override { return "none"; }
  bool creates_processes_externally() const override { return false; }
  int world_size() const override { return 1; }
  int global_rank() const override { return 0; }
  int local_rank() const override { return 0; }
  int local_world_size() const override { return 1; }
};

// Values read once, in the constructor, by the environments below.
class LaunchedEnvironment : public ClusterEnvironment {
 public:
  bool creates_processes_externally() const override { return true; }
  int world_size() const override { return world_size_; }
  int global_rank() const override { return rank_; }
  int local_rank() const override { return local_rank_; }
  int local_world_size() const override { return local_world_size_; }

 protected:
  int world_size_ = 1, rank_ = 0, local_rank_ = 0, local_world_size_ = 1;
};

// OpenMPI's mpirun: OMPI_COMM_WORLD_{SIZE,RANK,LOCAL_RANK,LOCAL_SIZE}; the node count from
// OMPI_MCA_orte_num_nodes when set.
class OpenMPIEnvironment : public LaunchedEnvironment {
 public:
  OpenMPIEnvironment();  // DistError when a variable is missing, not a number, or out of range
  static bool detect();  // OMPI_COMM_WORLD_SIZE is set
  std::string name() const override { return "openmpi"; }
  std::string launcher() const override { return "mpirun"; }
  int num_nodes() const override;

 private:
  int num_nodes_ = 0;  // 0: not given (the default layout rule)
};

// MPICH's (and Intel MPI's) Hydra mpiexec: PMI_RANK, PMI_SIZE, MPI_LOCALRANKID, MPI_LOCALNRANKS.
class MPICHEnvironment : public LaunchedEnvironment {
 public:
  MPICHEnvironment();
  // PMI_SIZE is set, and either Hydra's MPI_LOCALRANKID is or srun did not start the process (srun's
  // PMI-2 plugin sets PMI_* too; SLURMEnvironment reads that case).
  static bool detect();
  std::string name() const override { return "mpich"; }
  std::string launcher() const override { return "hydra"; }
};

struct SLURMOptions {
  // The signal on which the Trainer requeues the job (sbatch --signal=USR1@90). SIGTERM is what scancel
  // and the time limit send, so requeueing on it would bring back a job its owner cancelled.
  int requeue_signal = SIGUSR1;
  double command_timeout = 30.0;  // seconds scontrol may take before it is killed and DistError raised
};

// SLURM. Under srun: SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID, SLURM_NODEID,
// SLURM_STEP_NUM_NODES and SLURM_STEP_TASKS_PER_NODE ("2(x3),1": 2 tasks on each of 3 nodes, then 1).
// In a batch script without srun (SLURM_JOB_ID set, one task): rank 0 of 1, a job that can be requeued.
class SLURMEnvironment : public LaunchedEnvironment {
 public:
  explicit SLURMEnvironment(SLURMOptions options = {});
  // srun started this process (SLURM_STEP_NUM_TASKS is set).
  static bool detect_srun();
  // A batch job's own process (SLURM_JOB_ID set, not an interactive salloc/srun shell named "bash" or
  // "interactive", and SLURM_NTASKS unset or 1): one process, which SLURM can requeue.
  static bool detect_batch();
  static bool detect() { return detect_srun() || detect_batch(); }
  std::string name() const override { return "slurm"; }
  std::string launcher() const override { return srun_ ? "srun" : "sbatch"; }
  int node_rank() const override { return node_rank_; }
  int num_nodes() const override { return num_nodes_; }

  // SLURM_ARRAY_JOB_ID + "_" + SLURM_ARRAY_TASK_ID in an array job (what scontrol calls the task), else
  // SLURM_JOB_ID; "" outside a job.
  const std::string& job_id() const { return job_id_; }
  int restart_count() const { return restart_count_; }  // SLURM_RESTART_COUNT: 0 until requeued
  const SLURMOptions& options() const { return options_; }
  // `scontrol show job <id>` reports Requeue=1 (sbatch --requeue, or the cluster's JobRequeue=1).
  // DistError when there is no job id or scontrol fails (its output and exit status in the message).
  bool requeue_allowed() const;
  // `scontrol requeue <id>`: the job goes back to the queue and starts again, SLURM_RESTART_COUNT + 1.
  void requeue() const;

 private:
  SLURMOptions options_;
  bool srun_ = false;
  int node_rank_ = 0, num_nodes_ = 1, restart_count_ = 0;
  std::string job_id_;
};

// The first that applies: OpenMPI, MPICH/Hydra, SLURM under srun, a SLURM batch job of one task, local.
// mpirun and mpiexec come before SLURM because, run inside an allocation, they start their daemons with
// srun: the SLURM_STEP_* variables their ranks inherit describe those daemons, not the ranks. A program
// started by srun directly (srun --mpi=pmix ./train, OpenMPI or MPICH) has no OMPI_COMM_WORLD_* or
// MPI_LOCALRANKID and is SLURM's. SLURM-only features (requeue) need the srun or batch form.
std::shared_ptr<ClusterEnvironment> detect_cluster_environment();

// The detected environment's info() (kept for callers that only need the placement).
LaunchInfo launch_info();

// For an environment given explicitly (TrainerOptions::cluster_environment): with several processes,
// starts the process group over MPI (its "auto" backend only knows the detected launchers) and checks
// that MPI's rank and world size are the environment's (DistError naming both); one process: nothing.
void init_process_group(const ClusterEnvironment& environment);

}  // namespace ember::dist
