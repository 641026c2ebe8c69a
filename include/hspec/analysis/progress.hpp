// Progress reports from long computations: the solvers and estimators describe what they are
// doing to an observer they are given; what to show, when and where is the caller's business
// (the CLI draws a live line on a terminal, the library itself never prints).
#pragma once
#include <cstdint>

namespace hspec {

struct Progress {
  const char* phase = "";  // "loading", "primal pass", "eigenvalues", "trace", "density", "exact"
  int64_t products = 0;    // operator columns applied so far in this phase
  int64_t budget = 0;      // the phase's budget of products (0: none known)
  // Eigenvalue solver only: the current extreme Ritz values and how many of the wanted
  // values meet the tolerance by the recurrence's residual estimates.
  bool has_ritz = false;
  double lowest = 0, highest = 0;
  int64_t converged = 0, wanted = 0;
  // Trace only: the running estimate and its standard error.
  bool has_estimate = false;
  double estimate = 0, std_error = 0;
};

// Called from the computing thread after each step (a block of products, a phase change);
// must return quickly and must not throw. Implementations decide whether to show anything.
class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  virtual void report(const Progress& p) = 0;
};

// Reports a phase change with no products yet; a no-op without a sink.
inline void report_phase(ProgressSink* sink, const char* phase, int64_t budget = 0) {
  if (!sink) return;
  Progress p;
  p.phase = phase;
  p.budget = budget;
  sink->report(p);
}

}  // namespace hspec
