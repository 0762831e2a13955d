// The NCCL backend for CUDA tensors (dist/nccl.cpp, built with CUDA and NCCL: EMBER_NCCL). Collectives
// run on a communication stream of their own, ordered after the work already queued on the device, and
// Work::wait() orders the device's stream after them (the host does not block).
#pragma once
#include <memory>

#include "dist/communicator.hpp"

namespace ember::dist {

// A communicator over CUDA device `device` with the ranks of `bootstrap`, which carries NCCL's unique id
// from rank 0 to the others (MPI in practice).
std::unique_ptr<Communicator> make_nccl_communicator(int device, Communicator& bootstrap);

}  // namespace ember::dist
