// The MPI backend (dist/mpi.cpp, built when MPI is found: EMBER_MPI). The process group uses it; users
// reach it through dist::world().
#pragma once
#include <memory>

#include "dist/communicator.hpp"

namespace ember::dist {

// A communicator over MPI_COMM_WORLD (a duplicate, so the program's own MPI traffic cannot mix with
// Ember's); initialises MPI (MPI_THREAD_SERIALIZED) unless the program already did.
std::unique_ptr<Communicator> make_mpi_communicator();
// MPI_Finalize, when make_mpi_communicator initialised MPI.
void mpi_finalize();

}  // namespace ember::dist
