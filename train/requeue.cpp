// SLURM auto-requeue: the decisions the Trainer delegates (see requeue.hpp).
#include "train/requeue.hpp"

#include <iostream>

#include "core/error.hpp"
#include "train/trainer.hpp"

namespace ember::train {
namespace {

// The Trainer's SLURM environment when auto_requeue applies to it, else null.
const dist::SLURMEnvironment* slurm_of(const Trainer& trainer) {
  if (!trainer.options().auto_requeue) return nullptr;
  const auto* slurm = dynamic_cast<const dist::SLURMEnvironment*>(trainer.cluster_environment().get());
  return slurm != nullptr && !slurm->job_id().empty() ? slurm : nullptr;
}

}  // namespace

void record_slurm_job(const dist::ClusterEnvironment& environment, nlohmann::json& state) {
  const auto* slurm = dynamic_cast<const dist::SLURMEnvironment*>(&environment);
  if (slurm == nullptr || slurm->job_id().empty()) return;
  state["slurm"] = {{"job_id", slurm->job_id()}, {"restart_count", slurm->restart_count()}};
}

void requeue_after_signal(const Trainer& trainer) {
  const dist::SLURMEnvironment* slurm = slurm_of(trainer);
  if (slurm == nullptr || !trainer.interrupted() || !trainer.is_global_zero()) return;
  if (trainer.received_signal() != slurm->options().requeue_signal) return;  // scancel's SIGTERM ends the job
  const std::string& id = slurm->job_id();
  try {
    if (!slurm->requeue_allowed()) {
      std::cerr << "[Trainer] SLURM job " << id
                << " is not requeued: `scontrol show job` says Requeue=0 (submit it with sbatch --requeue)\n";
      return;
    }
    trainer.checkpoint_io().teardown();  // requeueing ends this job: the checkpoint must be stored first
    slurm->requeue();
    std::cerr << "[Trainer] requeued SLURM job " << id << ": when it starts again, fit resumes from "
              << trainer.interrupted_checkpoint_path() << "\n";
  } catch (const Error& e) {  // the run is saved; a human can still requeue it
    std::cerr << "[Trainer] SLURM job " << id << " could not be requeued: " << e.what() << "\n";
  }
}

std::string requeued_checkpoint_path(const Trainer& trainer) {
  const dist::SLURMEnvironment* slurm = slurm_of(trainer);
  if (slurm == nullptr) return "";  // the same on every rank: the environment is the job's
  std::string path;
  if (trainer.is_global_zero()) {
    const std::string p = trainer.interrupted_checkpoint_path();
    try {
      if (trainer.checkpoint_io().exists(p)) {
        const Checkpoint ck = trainer.checkpoint_io().load_checkpoint(p);
        const nlohmann::json& j = ck.state.contains("slurm") ? ck.state["slurm"] : nlohmann::json();
        const bool same_job = j.is_object() && j.contains("job_id") && j["job_id"].is_string() &&
                              j["job_id"].get<std::string>() == slurm->job_id();
        // An earlier start of this job wrote it (a later fit of the same start does not resume it again).
        const bool earlier = same_job && j.contains("restart_count") && j["restart_count"].is_number_integer() &&
                             j["restart_count"].get<int64_t>() < slurm->restart_count();
        if (earlier) {
          path = p;
          std::cerr << "[Trainer] SLURM job " << slurm->job_id()
                    << " was requeued (SLURM_RESTART_COUNT=" << slurm->restart_count() << "): resuming from " << p
                    << "\n";
        }
      }
    } catch (const std::exception& e) {  // a damaged file is no reason to refuse a fresh start; say so
      std::cerr << "[Trainer] warning: SLURM job " << slurm->job_id() << " cannot read " << p
                << " to resume from it, starting afresh: " << e.what() << "\n";
    }
  }
  if (dist::Communicator* comm = trainer.communicator()) path = comm->broadcast_string(path);
  return path;
}

}  // namespace ember::train
