// Shard arithmetic and the launcher's local rank: shared by the MPI build and the stand-in.
#include <cstdlib>
#include <string>

#include "hspec/distributed/communicator.hpp"

namespace hspec {

Shard shard_of(int64_t n, int ranks, int rank) {
  // In 128-bit-safe form: n * rank overflows int64 only beyond 2^63 / ranks samples, which
  // no dataset reaches, but the division is done on the exact product anyway.
  const auto bound = [n, ranks](int r) {
    return static_cast<int64_t>((static_cast<__int128>(n) * r) / ranks);
  };
  return {bound(rank), bound(rank + 1) - bound(rank)};
}

int local_rank() {
  for (const char* name :
       {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "PMI_LOCAL_RANK"}) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') continue;
    char* end = nullptr;
    const long r = std::strtol(v, &end, 10);
    if (*end == '\0' && r >= 0 && r < (1L << 20)) return static_cast<int>(r);
  }
  return 0;
}

bool is_output_rank() {
  const Communicator* c = world();
  return c == nullptr || c->rank() == 0;
}

}  // namespace hspec
