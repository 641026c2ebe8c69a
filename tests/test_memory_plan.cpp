// The memory plan of a Lanczos run (hspec/analysis/memory_plan.hpp): the host budget against RAM or
// --max-memory, the device budget against the card's free memory, and the operator's share
// of what is left after the basis, for given "free device memory" numbers.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "hspec/analysis/memory_plan.hpp"
#include "hspec/error.hpp"

namespace hspec {
namespace {

constexpr uint64_t GiB = 1ull << 30, MiB = 1ull << 20;

RunMemoryNeed need_of(double basis, double fixed) {
  RunMemoryNeed n;
  n.basis = basis;
  n.fixed = fixed;
  n.basis_columns = 40;
  n.params = 1000;
  n.elem = 4;
  return n;
}

std::string usage_error(const RunMemoryNeed& need, const MemoryLimits& lim) {
  try {
    plan_operator_memory(need, lim);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(MemoryPlan, DeviceRunIsCheckedAgainstTheCardNotTheHostRam) {
  // 10 GiB of basis: fits half of a 64 GiB host, not an 8 GiB card.
  MemoryLimits lim;
  lim.host_default = 64 * GiB;
  lim.on_device = true;
  lim.device = 1;
  lim.device_free = 8 * GiB;
  const std::string err = usage_error(need_of(10.0 * GiB, 0.5 * GiB), lim);
  EXPECT_NE(err.find("needs about 10.50 GiB of device memory"), std::string::npos) << err;
  EXPECT_NE(err.find("free on cuda:1"), std::string::npos) << err;
  EXPECT_NE(err.find("--device cpu"), std::string::npos) << err;
  // The same run on the host fits the RAM budget.
  lim.on_device = false;
  EXPECT_NO_THROW(plan_operator_memory(need_of(10.0 * GiB, 0.5 * GiB), lim));
}

TEST(MemoryPlan, DeviceOperatorGetsWhatIsLeftAfterTheBasisAndTheReserve) {
  MemoryLimits lim;
  lim.host_default = 4 * GiB;  // the host's RAM plays no part
  lim.on_device = true;
  lim.device_free = 80 * GiB;
  // 512 MiB reserve (1/8 of 80 GiB is more), 6 GiB basis, 1 GiB fixed.
  EXPECT_EQ(plan_operator_memory(need_of(6.0 * GiB, 1.0 * GiB), lim),
            80 * GiB - 512 * MiB - 7 * GiB);
  // A small card keeps 1/8 of its free memory back.
  lim.device_free = 2 * GiB;
  EXPECT_EQ(plan_operator_memory(need_of(1.0 * GiB, 0), lim), 2 * GiB - 256 * MiB - 1 * GiB);
  // What cannot fit besides the reserve is refused before any work.
  EXPECT_THROW(plan_operator_memory(need_of(1.9 * GiB, 0), lim), UsageError);
}

TEST(MemoryPlan, MaxMemoryBoundsTheDeviceShare) {
  MemoryLimits lim;
  lim.max_memory = 3 * GiB;
  lim.host_default = 64 * GiB;
  lim.on_device = true;
  lim.device_free = 80 * GiB;
  EXPECT_EQ(plan_operator_memory(need_of(1.0 * GiB, 0.5 * GiB), lim), 3 * GiB - 3 * GiB / 2);
  const std::string err = usage_error(need_of(2.5 * GiB, 1.0 * GiB), lim);
  EXPECT_NE(err.find("above the --max-memory of 3.00 GiB"), std::string::npos) << err;
  // A --max-memory above the free memory does not let the run past the card.
  lim.max_memory = 1000 * GiB;
  const std::string over = usage_error(need_of(100.0 * GiB, 0), lim);
  EXPECT_NE(over.find("free on cuda:0"), std::string::npos) << over;
}

TEST(MemoryPlan, HostShareIsCappedOnlyWithoutMaxMemory) {
  MemoryLimits lim;
  lim.host_default = 32 * GiB;  // half of 64 GiB of RAM: the operator gets a quarter of it
  EXPECT_EQ(plan_operator_memory(need_of(1.0 * GiB, 0), lim), 16 * GiB);
  lim.host_default = 2 * GiB;  // a small machine: 2 GiB, or what is left when less
  EXPECT_EQ(plan_operator_memory(need_of(0.5 * GiB, 0), lim), 3 * GiB / 2);
  lim.host_default = 3 * GiB;
  EXPECT_EQ(plan_operator_memory(need_of(0.5 * GiB, 0), lim), 2 * GiB);
  lim.host_default = 32 * GiB;
  lim.max_memory = 8 * GiB;
  EXPECT_EQ(plan_operator_memory(need_of(1.0 * GiB, 0), lim), 7 * GiB);
  const std::string err = usage_error(need_of(8.0 * GiB, 1.0), lim);
  EXPECT_NE(err.find("--max-memory"), std::string::npos) << err;
  EXPECT_EQ(err.find("device"), std::string::npos) << err;
}

TEST(MemoryPlan, TraceAndDensityStorageTakesTheBasisPlaceWhenLarger) {
  MemoryLimits lim;
  lim.host_default = 64 * GiB;
  lim.on_device = true;
  lim.device_free = 16 * GiB;
  RunMemoryNeed need = need_of(1.0 * GiB, 1.0 * GiB);
  need.after = 4.0 * GiB;  // allocated once the basis is freed: 1 + max(1, 4) GiB in all
  EXPECT_EQ(plan_operator_memory(need, lim), 16 * GiB - 512 * MiB - 5 * GiB);
  need.after = 20.0 * GiB;
  const std::string err = usage_error(need, lim);
  EXPECT_NE(err.find("needs about 21.00 GiB of device memory (--trace / --density storage"),
            std::string::npos)
      << err;
  need.after = 0.5 * GiB;  // smaller than the basis: the basis counts
  EXPECT_EQ(plan_operator_memory(need, lim), 16 * GiB - 512 * MiB - 2 * GiB);
}

TEST(MemoryPlan, NeedCountsTheBasisInTheComputePrecision) {
  // 6-5-3 (53 parameters), top 5 bottom 1 block 1: the basis has min(53, 40) = 40 columns.
  LanczosOptions lo;
  const RunMemoryNeed d = lanczos_basis_need(lo, 53, sizeof(double), 1, false);
  EXPECT_EQ(d.basis_columns, 40);
  // 8 bytes x 53 x (2 x 40 + 2 x 1 + 6) + 3 projected 40 x 40 doubles.
  EXPECT_DOUBLE_EQ(d.basis, 8.0 * 53 * 88 + 24.0 * 1600);
  const RunMemoryNeed f = lanczos_basis_need(lo, 53, sizeof(float), 1, false);
  EXPECT_DOUBLE_EQ(f.basis, 4.0 * 53 * 88 + 24.0 * 1600);
  // On a device the space's random fills go through a scratch block of b columns.
  const RunMemoryNeed g = lanczos_basis_need(lo, 53, sizeof(double), 1, true);
  EXPECT_DOUBLE_EQ(g.basis - d.basis, 8.0 * 53);
}

}  // namespace
}  // namespace hspec
