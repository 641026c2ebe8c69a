// The memory plan of a Lanczos run (include/hspec/analysis/memory_plan.hpp): its needs counted from
// the sizes, and the split of the host or device budget between them and the operator.
#include "hspec/analysis/memory_plan.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "hspec/error.hpp"

namespace hspec {

RunMemoryNeed lanczos_basis_need(const LanczosOptions& lo, int64_t params, size_t elem,
                                 int64_t max_block, bool on_device) {
  RunMemoryNeed need;
  need.params = params;
  need.elem = elem;
  need.basis_columns = lanczos_basis_columns(lo, need.params, max_block);
  const double n = static_cast<double>(need.params), t = static_cast<double>(elem);
  const double b = static_cast<double>(std::min<int64_t>(lo.block, max_block));
  const double want = std::min<double>(lo.top, n) + std::min<double>(lo.bottom, n);
  const double md = static_cast<double>(need.basis_columns);
  need.basis = t * n * (2 * md + 2 * b + want) + 8.0 * 3 * md * md;
  // The device space fills random blocks through a scratch block (Gaussian values, or the
  // 32-bit words of Rademacher signs) instead of in place.
  if (on_device) need.basis += std::max(t, 4.0) * n * b;
  return need;
}

uint64_t default_host_budget() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return 4ull << 30;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / 2;
}

uint64_t device_reserve(uint64_t device_free) {
  return std::min<uint64_t>(device_free / 8, 512ull << 20);
}

std::string format_bytes(double b) {
  char buf[64];
  if (b >= 1024.0 * 1024 * 1024)
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  else if (b >= 1024.0 * 1024)
    std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024));
  else
    std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  return buf;
}

uint64_t plan_operator_memory(const RunMemoryNeed& need, const MemoryLimits& limits) {
  const bool capped = limits.max_memory > 0;
  uint64_t budget = 0;
  std::string budget_text;
  if (limits.on_device) {
    const std::string where = "cuda:" + std::to_string(limits.device);
    const uint64_t usable = limits.device_free - device_reserve(limits.device_free);
    if (capped && limits.max_memory < usable) {
      budget = limits.max_memory;
      budget_text = "the --max-memory of " + format_bytes(static_cast<double>(budget));
    } else {
      budget = usable;
      budget_text = "the " + format_bytes(static_cast<double>(budget)) + " free on " + where +
                    " (less " +
                    format_bytes(static_cast<double>(device_reserve(limits.device_free))) +
                    " kept for cuBLAS and cuRAND)";
    }
  } else {
    budget = capped ? limits.max_memory : limits.host_default;
    budget_text = (capped ? "the --max-memory of " : "the default budget (half of RAM) of ") +
                  format_bytes(static_cast<double>(budget));
  }
  const double total = need.total();
  if (total > static_cast<double>(budget)) {
    const char* prec = need.elem == 4 ? "fp32" : "fp64";
    const std::string what = need.after > need.basis
                                 ? "--trace / --density storage for " +
                                       std::to_string(need.params) + " " + prec + " parameters"
                                 : "Lanczos basis of " + std::to_string(need.basis_columns) +
                                       " x " + std::to_string(need.params) + " " + prec;
    throw UsageError("this run needs about " + format_bytes(total) +
                     (limits.on_device ? " of device memory" : "") + " (" + what +
                     " plus the data), above " + budget_text +
                     "; lower --max-basis, --block or --samples" +
                     (limits.on_device ? ", or use --device cpu" : ", or raise --max-memory"));
  }
  const uint64_t left = budget - static_cast<uint64_t>(total);
  // On the host, without an explicit budget, the operator takes at most half of it (a
  // quarter of the RAM; 2 GiB on small machines): enough to cache the primal pass of a
  // convolutional net on thousands of images, which saves a forward and a backward pass per
  // product, while the rest of the RAM stays free for other work.
  if (!limits.on_device && !capped)
    return std::min<uint64_t>(left, std::max<uint64_t>(limits.host_default / 2, 2ull << 30));
  return left;
}

}  // namespace hspec
