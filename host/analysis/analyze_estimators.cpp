// The trace, density and verdict stages of `hspec analyze`, kept out of
// analyze.cpp so the option checks and the run of each stage sit together.
#include "hspec/analysis/analyze_estimators.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "hspec/error.hpp"

namespace hspec {
namespace {

constexpr int64_t kTraceRound = 10;  // probes (or sketch columns) per trace round

// The budget of --max-memory (default: half of RAM, as for the solver). The solver's basis
// is freed by now; the operator's buffers were sized against the same budget, so this
// refuses only what clearly cannot fit.
void check_memory(const AnalyzeOptions& opt, double need, const char* what, const char* fix) {
  double budget = static_cast<double>(opt.max_memory);
  if (budget <= 0) {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    budget = pages > 0 && page > 0 ? 0.5 * static_cast<double>(pages) * page : 4.0 * (1ull << 30);
  }
  if (need > budget) {
    char buf[320];
    std::snprintf(buf, sizeof buf,
                  "%s needs about %.1f MiB, above the memory budget of %.1f MiB; %s", what,
                  need / 1048576.0, budget / 1048576.0, fix);
    throw UsageError(buf);
  }
}

}  // namespace

void check_estimator_options(const AnalyzeOptions& opt) {
  if (!(opt.trace_tol >= 0) || !(opt.trace_tol < 1))
    throw UsageError("--trace-tol must be in [0, 1)");
  if (opt.trace_hvps < 1 || opt.trace_hvps > 100000000)
    throw UsageError("--trace-hvps must be in [1, 1e8]");
  if (opt.probes < 1 || opt.probes > 4096) throw UsageError("--probes must be in [1, 4096]");
  if (opt.steps < 1 || opt.steps > 100000) throw UsageError("--steps must be in [1, 100000]");
  if (!(opt.lr >= 0) || !std::isfinite(opt.lr)) throw UsageError("--lr must be a number > 0");
}

void check_estimator_memory(const AnalyzeOptions& opt, int64_t n, size_t elem) {
  if (opt.exact) return;  // exact mode checks its dense matrix itself
  if (opt.trace)
    check_memory(opt, trace_bytes(n, opt.trace_hvps, kTraceRound, elem), "--trace",
                 "lower --trace-hvps or raise --max-memory");
  if (opt.density)
    check_memory(opt, density_bytes(n, opt.probes, opt.steps, elem), "--density",
                 "lower --probes or --steps, or raise --max-memory");
}

double estimator_bytes(const AnalyzeOptions& opt, int64_t n, size_t elem) {
  if (opt.exact) return 0;
  double bytes = 0;
  if (opt.trace) bytes = trace_bytes(n, opt.trace_hvps, kTraceRound, elem);
  if (opt.density) bytes = std::max(bytes, density_bytes(n, opt.probes, opt.steps, elem));
  return bytes;
}

int64_t estimator_block(const AnalyzeOptions& opt) {
  int64_t b = 0;
  if (opt.trace && !opt.exact) b = std::max(b, kTraceRound);
  if (opt.density && !opt.exact) b = std::max<int64_t>(b, opt.probes);
  return b;
}

template <class T>
void run_estimators(CurvatureOperator<T>& op, VectorSpace<T>& space, const AnalyzeOptions& opt,
                    AnalyzeReport& rep) {
  if (rep.interrupted) return;
  if (opt.exact) {
    // The dense spectrum is the exact answer: the trace is already in the report and the
    // density is the measure on the eigenvalues themselves.
    if (opt.density) {
      rep.density = density_from_eigenvalues(rep.eigenvalues);
      rep.has_density = true;
    }
    return;
  }
  if (opt.trace) {
    TraceOptions to;
    to.method = opt.trace_method;
    to.rel_tol = opt.trace_tol;
    to.max_products = opt.trace_hvps;
    to.round = kTraceRound;
    to.seed = opt.seed;
    to.cancel = opt.cancel;
    to.progress = opt.progress;
    report_phase(opt.progress, "trace", opt.trace_hvps);
    rep.trace_estimate = estimate_trace<T>(op, space, to);
    rep.has_trace_estimate = true;
  }
  if (opt.density && !(opt.cancel && opt.cancel->load())) {
    DensityOptions dopt;
    dopt.probes = opt.probes;
    dopt.steps = opt.steps;
    dopt.seed = opt.seed;
    dopt.cancel = opt.cancel;
    dopt.progress = opt.progress;
    report_phase(opt.progress, "density", int64_t{opt.probes} * opt.steps);
    rep.density = slq_density<T>(op, space, dopt);
    rep.has_density = true;
  }
  if (opt.cancel && opt.cancel->load()) rep.interrupted = true;
}

Verdict verdict_of(const AnalyzeReport& rep, double lr) {
  VerdictInput in;
  in.have_extremes = !rep.top.empty() && !rep.bottom.empty() && !rep.interrupted;
  if (in.have_extremes) {
    in.lambda_max = rep.top.front().value;
    in.lambda_min = rep.bottom.front().value;
  }
  if (rep.exact) {
    in.have_trace = true;
    in.trace = rep.trace;
  } else if (rep.has_trace_estimate) {
    in.have_trace = true;
    in.trace = rep.trace_estimate.estimate;
  }
  if (rep.has_density) {
    in.have_density = true;
    in.negative_fraction = negative_mass(rep.density);
  }
  in.lr = lr;
  return decide_verdict(in);
}

template void run_estimators<float>(CurvatureOperator<float>&, VectorSpace<float>&,
                                    const AnalyzeOptions&, AnalyzeReport&);
template void run_estimators<double>(CurvatureOperator<double>&, VectorSpace<double>&,
                                     const AnalyzeOptions&, AnalyzeReport&);

}  // namespace hspec
