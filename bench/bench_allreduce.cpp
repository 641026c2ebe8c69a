// The reduction of a data-parallel product alone: Communicator::allreduce_sum of P fp32
// numbers (as DataParallelOperator does per direction), median of 7 after a barrier-like
// warm-up, for the in-node rate the scaling model in bench/RESULTS.md takes as a parameter.
// Usage: mpiexec -n R build/bench/hspec_bench_allreduce [P...]   (default 1024 1M 25.6M)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

#include "hspec/distributed/communicator.hpp"

int main(int argc, char** argv) {
  try {
    hspec::init_distributed(&argc, &argv);
    hspec::Communicator* comm = hspec::world();
    if (comm == nullptr) {
      std::fprintf(stderr, "run it under mpiexec with 2 or more ranks (built with MPI)\n");
      hspec::finalize_distributed();
      return 2;
    }
    std::vector<long> sizes;
    for (int i = 1; i < argc; ++i) sizes.push_back(std::atol(argv[i]));
    if (sizes.empty()) sizes = {1024, 1L << 20, 25600000};
    for (long n : sizes) {
      std::vector<float> v(size_t(n), 1.0f);
      std::vector<double> t;
      int64_t sync = 0;
      for (int rep = 0; rep < 8; ++rep) {
        comm->allreduce_max(&sync, 1);  // start together
        const auto t0 = std::chrono::steady_clock::now();
        comm->allreduce_sum(v.data(), n);
        if (rep > 0)  // the first one pays the connection set-up
          t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      std::sort(t.begin(), t.end());
      if (comm->rank() == 0)
        std::printf(
            "%d ranks, %ld fp32 (%.1f MB): median %.3f ms (min %.3f, max %.3f), %.2f GB/s\n",
            comm->size(), n, n * 4e-6, t[t.size() / 2] * 1e3, t.front() * 1e3, t.back() * 1e3,
            n * 4e-9 / t[t.size() / 2]);
    }
    hspec::finalize_distributed();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hspec_bench_allreduce: %s\n", e.what());
    return 1;
  }
}
