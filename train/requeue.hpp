// SLURM auto-requeue (Lightning's SLURMEnvironment(auto_requeue=True)): when the requeue signal
// (SIGUSR1, from sbatch --signal=USR1@90) stops a fit, rank 0 asks SLURM to requeue the job after the
// interrupted checkpoint is saved; when the requeued job starts, fit resumes from that checkpoint.
// The Trainer calls these three; TrainerOptions::auto_requeue = false turns both halves off.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "dist/cluster_environment.hpp"

namespace ember::train {

class Trainer;

// Under a SLURMEnvironment in a job: state["slurm"] = {"job_id", "restart_count"}, so a later start of
// the job can tell its own checkpoint from one another job left in the same folder.
void record_slurm_job(const dist::ClusterEnvironment& environment, nlohmann::json& state);

// After a signal stopped the fit and interrupted_checkpoint_path() was written: on rank 0, under a
// SLURMEnvironment with auto_requeue, when the signal is its requeue_signal, requeue the job if
// `scontrol show job` says Requeue=1, else print why not. A failing scontrol is printed, not thrown:
// the run is saved either way.
void requeue_after_signal(const Trainer& trainer);

// For fit with an empty ckpt_path: interrupted_checkpoint_path() when, under a SLURMEnvironment with
// auto_requeue, that file records this job's id and an earlier restart count (this is the requeued
// job), else "". Rank 0 decides for every rank; it prints one line when it resumes.
std::string requeued_checkpoint_path(const Trainer& trainer);

}  // namespace ember::train
