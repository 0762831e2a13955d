// The process group: who this process is among those a launcher started (mpirun, srun), and the
// communicators Ember trains with. One process without a launcher is a group of one.
#pragma once
#include <string>

#include "core/device.hpp"
#include "dist/cluster_environment.hpp"
#include "dist/communicator.hpp"

namespace ember::dist {

// LaunchInfo and launch_info(), the detected launcher's placement, are in dist/cluster_environment.hpp.

// Starts the group once (later calls with the same backend do nothing). backend "auto": "mpi" when the
// launcher started more than one process, else "single". DistError when the launcher started several
// processes and this build has no MPI, or when MPI's view disagrees with the launcher's.
void init_process_group(const std::string& backend = "auto");
bool is_initialized();
// The group's CPU communicator (starting the group with "auto" if needed).
Communicator& world();
// The communicator for tensors on `device`: world() for the CPU, the NCCL group of a CUDA device.
Communicator& world(Device device);
int rank();
int world_size();
// Seconds any collective of the group may wait for the other ranks before it raises DistError (naming
// the op, dtype, count, rank and seconds) instead of hanging: kDefaultTimeout (30 minutes, as PyTorch)
// until set. Applies to the communicators made already and to later ones; the Trainer sets it from
// TrainerOptions::ddp_timeout. After a timeout the job cannot go on: at exit the group ends it with
// MPI_Abort, so the processes exit non-zero instead of waiting in MPI_Finalize for a rank that never comes.
void set_timeout(double seconds);
double timeout();
// Frees the communicators (a later init starts afresh). At exit Ember also finalises MPI if it started it.
// After a failed collective, or a Trainer run that raised on this rank while the other ranks do not reach
// this point within kExitWait seconds (set_run_failure, communicator.hpp), it ends the job with MPI_Abort
// instead, as the exit does: waiting for them could last forever.
void destroy_process_group();

}  // namespace ember::dist
