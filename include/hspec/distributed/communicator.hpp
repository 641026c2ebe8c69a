// The process group of a data-parallel run (one rank per GPU or per CPU socket): the few
// collectives the run needs, behind an interface so that a build without MPI has a
// stand-in (host/distributed/no_mpi.cpp) and the rest of the code needs no #ifdefs.
#pragma once
#include <cstdint>
#include <string>

namespace hspec {

// Collectives over every rank of the job. All ranks must call them in the same order.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place: data becomes the element-wise sum over the ranks.
  virtual void allreduce_sum(double* data, int64_t n) = 0;
  virtual void allreduce_sum(float* data, int64_t n) = 0;
  // In place: the element-wise maximum over the ranks.
  virtual void allreduce_max(int64_t* data, int n) = 0;
  // `bytes` bytes of root's buffer into every rank's.
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  // What runs the reductions, for the report (e.g. "Open MPI v4.1.4").
  virtual std::string library() const = 0;
};

// Joins the job when hspec was started by an MPI launcher (mpiexec, srun with PMI/PMIx:
// the launcher's environment variables say so) and this build has MPI; does nothing
// otherwise, so a plain `hspec analyze` never pays MPI's start-up. A launch of several
// tasks that this build cannot join is a UsageError (each would run the whole analysis).
// Call once, first thing in main.
void init_distributed(int* argc, char*** argv);
// Leaves the job (MPI_Finalize); safe to call when init_distributed did nothing.
void finalize_distributed();

// The job's ranks, or null for a single-process run (also an MPI launch of one task).
Communicator* world();
bool built_with_mpi();
// Whether this process prints and writes files: rank 0, or a single-process run.
bool is_output_rank();
// This rank's index among the ranks on its node, from the launcher's environment
// (OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID, MPI_LOCALRANKID, PMI_LOCAL_RANK); 0 when
// none is set. Picks the rank's GPU: local rank mod the node's device count.
int local_rank();

// The contiguous samples [first, first + count) of rank r of R out of n: rank r gets
// [r*n/R, (r+1)*n/R), so shard sizes differ by at most one.
struct Shard {
  int64_t first = 0;
  int64_t count = 0;
};
Shard shard_of(int64_t n, int ranks, int rank);

}  // namespace hspec
