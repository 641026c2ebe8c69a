// Stand-in for host/distributed/mpi_comm.cpp in a build without MPI: every run is a single
// process, and a launch of several tasks is refused rather than run several times over.
#include <algorithm>
#include <cstdlib>
#include <string>

#include "hspec/distributed/communicator.hpp"
#include "hspec/error.hpp"

namespace hspec {

bool built_with_mpi() {
  return false;
}

void init_distributed(int*, char***) {
  long tasks = 0;
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"}) {
    const char* v = std::getenv(name);
    if (v != nullptr) tasks = std::max(tasks, std::strtol(v, nullptr, 10));
  }
  if (tasks > 1)
    throw UsageError("started as one of " + std::to_string(tasks) +
                     " tasks, but this hspec was built without MPI (rebuild with -DHSPEC_MPI=ON)");
}

void finalize_distributed() {}

Communicator* world() {
  return nullptr;
}

}  // namespace hspec
