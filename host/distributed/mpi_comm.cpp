// The Communicator on MPI (built with HSPEC_MPI): MPI_COMM_WORLD, joined only when a
// launcher started this process, and reductions split into pieces that fit MPI's int counts.
#include <mpi.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>

#include "hspec/distributed/communicator.hpp"
#include "hspec/error.hpp"

namespace hspec {
namespace {

// MPI counts are int: reduce and broadcast in pieces of at most 2^30 elements.
constexpr int64_t kPiece = int64_t{1} << 30;

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(std::string(what) + " failed: " + std::string(msg, static_cast<size_t>(len)));
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    // Errors come back as codes (turned into exceptions) rather than aborting the job, so a
    // failure still reaches the one-line error path where MPI allows it.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void allreduce_sum(double* data, int64_t n) override { reduce(data, n, MPI_DOUBLE, MPI_SUM); }
  void allreduce_sum(float* data, int64_t n) override { reduce(data, n, MPI_FLOAT, MPI_SUM); }
  void allreduce_max(int64_t* data, int n) override { reduce(data, n, MPI_INT64_T, MPI_MAX); }
  void broadcast(void* data, int64_t bytes, int root) override {
    auto* p = static_cast<char*>(data);
    for (int64_t done = 0; done < bytes; done += kPiece)
      check(MPI_Bcast(p + done, static_cast<int>(std::min(kPiece, bytes - done)), MPI_BYTE, root,
                      MPI_COMM_WORLD),
            "MPI_Bcast");
  }
  std::string library() const override {
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(v, &len);
    std::string s(v, static_cast<size_t>(len));
    // The first line names it ("Open MPI v4.1.4, package: ..."); keep its head.
    s = s.substr(0, s.find_first_of(",\n"));
    return s;
  }

 private:
  template <class T>
  void reduce(T* data, int64_t n, MPI_Datatype type, MPI_Op op) {
    for (int64_t done = 0; done < n; done += kPiece)
      check(MPI_Allreduce(MPI_IN_PLACE, data + done, static_cast<int>(std::min(kPiece, n - done)),
                          type, op, MPI_COMM_WORLD),
            "MPI_Allreduce");
  }
  int rank_ = 0, size_ = 1;
};

std::unique_ptr<MpiCommunicator> g_world;
bool g_initialized = false;

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0';
}

long env_long(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? 0 : std::strtol(v, nullptr, 10);
}

}  // namespace

bool built_with_mpi() {
  return true;
}

void init_distributed(int* argc, char*** argv) {
  // Open MPI's mpiexec, PMIx (Open MPI 5, srun --mpi=pmix), PMI-1/2 (MPICH's hydra,
  // srun --mpi=pmi2); srun of several tasks without them is tried too and checked below.
  const long slurm_tasks = env_long("SLURM_STEP_NUM_TASKS");
  const bool launched = env_set("OMPI_COMM_WORLD_SIZE") || env_set("PMIX_RANK") ||
                        env_set("PMI_RANK") || env_set("PMI_SIZE") || slurm_tasks > 1 ||
                        env_long("HSPEC_MPI") == 1;
  if (!launched) return;
  int provided = 0;
  check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  g_initialized = true;
  auto comm = std::make_unique<MpiCommunicator>();
  if (comm->size() == 1 && slurm_tasks > 1)
    throw UsageError("srun started " + std::to_string(slurm_tasks) +
                     " tasks but MPI sees one: launch with srun --mpi=pmix (or pmi2), or mpiexec");
  if (comm->size() > 1) g_world = std::move(comm);
}

void finalize_distributed() {
  g_world.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (g_initialized && !finalized) MPI_Finalize();
  g_initialized = false;
}

Communicator* world() {
  return g_world.get();
}

}  // namespace hspec
