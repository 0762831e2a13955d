// The MPI backend (dist/mpi.cpp, built when MPI is found: EMBER_MPI). The process group uses it; users
// reach it through dist::world().
#pragma once
#include <memory>

#include "dist/communicator.hpp"

namespace ember::dist {

// A communicator over MPI_COMM_WORLD (duplicates, so the program's own MPI traffic cannot mix with
// Ember's); initialises MPI (MPI_THREAD_SERIALIZED) unless the program already did. Its collectives wait
// at most timeout() seconds (kDefaultTimeout until set_timeout).
std::unique_ptr<Communicator> make_mpi_communicator();
// MPI_Finalize, when make_mpi_communicator initialised MPI.
void mpi_finalize();
// MPI_Abort(MPI_COMM_WORLD, code) when MPI is running: ends this process with `code`, and the launcher
// ends the other ranks. For a job whose collectives failed, where MPI_Finalize would wait forever.
void mpi_abort(int code);

}  // namespace ember::dist
