// The memory plan of a Lanczos run: what its basis and its fixed copies need, the budget they
// are checked against (host RAM, or the free memory of the CUDA device that holds the basis
// with --device cuda), and the share left to the operator's chunked buffers. Pure functions
// of sizes, so the split is testable without a device.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "hspec/solvers/lanczos.hpp"

namespace hspec {

// Bytes a Lanczos run holds besides the operator's cache and tangent buffers. Doubles, so
// absurd sizes cannot overflow.
struct RunMemoryNeed {
  double basis = 0;  // basis V (m + b), block W, restart scratch S, Ritz vectors, projected
                     // matrices; on a device also the vector space's scratch block
  double fixed = 0;  // the operator's copies of data and weights, labels, the gradient, and
                     // one sample's worth of its buffers
  double after = 0;  // the --trace / --density storage, allocated once the basis is freed
  int64_t basis_columns = 0;
  int64_t params = 0;
  size_t elem = 4;  // bytes per number of the compute precision
  double total() const { return fixed + (after > basis ? after : basis); }
};

// The solver's part alone (basis and projected matrices; fixed = 0), for any operator of
// `params` dimensions and `elem`-byte numbers.
RunMemoryNeed lanczos_basis_need(const LanczosOptions& lo, int64_t params, size_t elem,
                                 int64_t max_block, bool on_device);

struct MemoryLimits {
  uint64_t max_memory = 0;    // --max-memory; 0 = not given
  uint64_t host_default = 0;  // the host budget without it (half of the RAM)
  bool on_device = false;     // the basis and the operator live on CUDA device `device`
  int device = 0;
  uint64_t device_free = 0;  // that device's free bytes before the run (cudaMemGetInfo)
};

// Half of the physical RAM (4 GiB when the system does not say).
uint64_t default_host_budget();

// Device bytes no plan hands out: cuBLAS, cuRAND and cuSOLVER workspaces and allocation
// granularity. 1/8 of the free memory, at most 512 MiB.
uint64_t device_reserve(uint64_t device_free);

// Checks the run against its budget and returns the operator's share in bytes.
// Host: the budget is --max-memory, else host_default; the share is what is left, without
// --max-memory at most half of host_default (and at least 2 GiB when that much is left). Device:
// the budget is the free device memory less device_reserve, and --max-memory when that is smaller;
// the share is what is left. UsageError (exit 2) saying how much the run needs when it does not
// fit.
uint64_t plan_operator_memory(const RunMemoryNeed& need, const MemoryLimits& limits);

// "1.50 GiB", "12.0 MiB", "3.0 KiB".
std::string format_bytes(double bytes);

}  // namespace hspec
