// The process group: launcher environment, the communicators (made once, freed at exit in reverse
// order: NCCL before the MPI group that bootstrapped it, then MPI_Finalize).
#include "dist/process_group.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>

#include "core/error.hpp"
#ifdef EMBER_MPI
#include "dist/mpi.hpp"
#endif
#ifdef EMBER_NCCL
#include "dist/nccl.hpp"
#endif

namespace ember::dist {
namespace {

struct Group {
  std::string backend;
  double timeout = kDefaultTimeout;
  std::unique_ptr<Communicator> cpu;
  std::map<int, std::unique_ptr<Communicator>> cuda;  // per device index

  ~Group() {
    shut_down();
#ifdef EMBER_MPI
    mpi_finalize();  // at exit only: MPI cannot start again once finalised
#endif
  }
  // Frees the communicators. First, when the other ranks may never come (a collective failed, or this rank's
  // run raised alone: they may wait for it in a collective, and they do not reach a barrier within
  // kExitWait), ends the job with MPI_Abort: freeing the communicators or MPI_Finalize would wait forever.
  void shut_down() {
#ifdef EMBER_MPI
    std::string why;
    if (collective_failed()) {
      why = "a collective failed or timed out earlier";
    } else if (const std::string failed = run_failure(); !failed.empty() && !others_reach_barrier()) {
      why = detail::cat_str("rank ", cpu->rank(), "'s run raised (", failed,
                            ") and the other ranks did not reach the end within ", cpu->timeout(),
                            " s: they may wait for it in a collective");
    }
    if (!why.empty()) {
      std::cerr << "[dist] " << why
                << ": ending the job with MPI_Abort instead of waiting for the other ranks (MPI_Finalize), which "
                   "could last forever"
                << std::endl;
      mpi_abort(1);
    }
#endif
    set_run_failure("");  // the others came
    cuda.clear();
    cpu.reset();
    backend.clear();
  }
  // Whether every rank comes to a barrier within kExitWait seconds (or the group's timeout, if shorter).
  bool others_reach_barrier() {
    if (!cpu || cpu->world_size() == 1) return true;
    cpu->set_timeout(std::min(cpu->timeout(), kExitWait));
    try {
      cpu->barrier();
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }
};

std::mutex g_mutex;
Group& group() {
  static Group g;
  return g;
}

void init_locked(const std::string& requested) {
  Group& g = group();
  const LaunchInfo info = launch_info();
  std::string backend = requested == "auto" ? (info.world_size > 1 ? "mpi" : "single") : requested;
  EMBER_CHECK(backend == "single" || backend == "mpi", ValueError,
              "[dist::init_process_group] backend must be \"auto\", \"single\" or \"mpi\" (NCCL groups come from "
              "dist::world(cuda_device)), got \"",
              requested, "\"");
  if (!g.backend.empty()) {
    EMBER_CHECK(g.backend == backend, DistError, "[dist::init_process_group] the group already runs on \"", g.backend,
                "\"; call destroy_process_group() before starting it on \"", backend, "\"");
    return;
  }
  if (backend == "single") {
    EMBER_CHECK(info.world_size == 1, DistError, "[dist::init_process_group] ", info.launcher, " started ",
                info.world_size, " processes but the backend is \"single\"");
    g.cpu = make_single_process_communicator();
  } else {
#ifdef EMBER_MPI
    g.cpu = make_mpi_communicator();
    EMBER_CHECK(info.launcher == "none" || g.cpu->world_size() == info.world_size, DistError,
                "[dist::init_process_group] ", info.launcher, " says ", info.world_size, " processes but MPI sees ",
                g.cpu->world_size(), " (was the program built against another MPI than the one launching it?)");
#else
    throw DistError(detail::cat_str("[dist::init_process_group] ", info.launcher, " started ", info.world_size,
                                    " processes but this build of Ember has no MPI: install libopenmpi-dev and "
                                    "reconfigure (meson setup --reconfigure -Dmpi=enabled)"));
#endif
  }
  g.cpu->set_timeout(g.timeout);
  g.backend = backend;
}

}  // namespace

void init_process_group(const std::string& backend) {
  std::lock_guard lock(g_mutex);
  init_locked(backend);
}

bool is_initialized() {
  std::lock_guard lock(g_mutex);
  return !group().backend.empty();
}

Communicator& world() {
  std::lock_guard lock(g_mutex);
  if (group().backend.empty()) init_locked("auto");
  return *group().cpu;
}

Communicator& world(Device device) {
  Communicator& cpu = world();
  if (device.is_cpu() || cpu.world_size() == 1) return cpu;  // "single" takes tensors on any device
  std::lock_guard lock(g_mutex);
  auto& slot = group().cuda[device.index];
  if (!slot) {
#ifdef EMBER_NCCL
    slot = make_nccl_communicator(device.index, cpu);
    slot->set_timeout(group().timeout);
#else
    throw DistError(detail::cat_str("[dist::world] tensors on ", device, " need the NCCL backend, and this build has ",
                                    "none (it needs CUDA, NCCL and MPI)"));
#endif
  }
  return *slot;
}

void set_timeout(double seconds) {
  EMBER_CHECK(std::isfinite(seconds) && seconds > 0, ValueError,
              "[dist::set_timeout] the timeout must be a positive number of seconds, got ", seconds);
  std::lock_guard lock(g_mutex);
  Group& g = group();
  g.timeout = seconds;
  if (g.cpu) g.cpu->set_timeout(seconds);
  for (auto& [index, comm] : g.cuda) comm->set_timeout(seconds);
}

double timeout() {
  std::lock_guard lock(g_mutex);
  return group().timeout;
}

int rank() { return world().rank(); }
int world_size() { return world().world_size(); }

void destroy_process_group() {
  std::lock_guard lock(g_mutex);
  group().shut_down();
}

}  // namespace ember::dist
