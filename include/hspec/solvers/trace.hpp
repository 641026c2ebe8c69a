// Stochastic trace estimation (Hutchinson, Hutch++) with an honest standard error, written
// once against the CurvatureOperator and VectorSpace seams.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "hspec/analysis/progress.hpp"
#include "hspec/operator.hpp"
#include "hspec/space.hpp"

namespace hspec {

enum class TraceMethod { Hutchinson, HutchPP, KrylovHutchPP };

const char* trace_method_name(TraceMethod m);
TraceMethod parse_trace_method(const std::string& s);  // UsageError on anything else

struct TraceOptions {
  TraceMethod method = TraceMethod::KrylovHutchPP;
  double rel_tol = 0.005;      // stop when stderr <= rel_tol * |estimate|
  int64_t max_products = 200;  // budget of operator columns
  int64_t round = 10;          // columns added per round (sketch or probes)
  // Probes before the stopping rule is trusted: with fewer, the sample standard deviation of
  // a skewed remainder (a few strong directions left) is too often far too small.
  int64_t min_probes = 20;
  // Grow the low-rank basis while its size s <= sketch_ratio * probes; 0 picks the method's
  // default: 1 for the classic sketch (the paper's equal split: sketch, its image and the
  // probes a third of the products each), 2 for Krylov (two thirds to the basis: on the
  // Fashion-MNIST Hessians in the README the remainder's variance still falls fast there).
  double sketch_ratio = 0;
  uint64_t seed = 0;
  const std::atomic<bool>* cancel = nullptr;  // stop between rounds when it becomes true
  ProgressSink* progress = nullptr;           // told after every round (phase "trace")
};

struct TraceResult {
  double estimate = 0;
  double std_error = 0;    // standard error of the estimate (see trace.cpp)
  int64_t products = 0;    // operator columns used
  int64_t sketch = 0;      // rank of the exact low-rank part (Hutch++)
  int64_t probes = 0;      // Hutchinson probes on the remainder
  double low_rank = 0;     // tr(Q^T C Q)
  bool converged = false;  // stderr <= rel_tol |estimate|
  double rel_tol = 0;      // the tolerance asked for (0: spend the whole budget)
  TraceMethod method = TraceMethod::KrylovHutchPP;
};

// Upper bound of the bytes estimate_trace allocates in the vector space for an operator of
// dimension n with elements of `elem` bytes (callers check it against a memory budget).
double trace_bytes(int64_t n, int64_t max_products, int64_t round, size_t elem);

// Adaptive Hutch++ (Meyer, Musco, Musco, Woodruff 2021) / Hutchinson on Rademacher probes.
// Rounds of `round` columns alternate between growing the low-rank basis Q and adding probes
// of the deflated remainder (I-QQ^T) C (I-QQ^T), keeping dim Q <= sketch_ratio * probes,
// until the relative standard error reaches rel_tol or the budget is spent. KrylovHutchPP
// grows Q as a block Krylov space (one product per column, as in Chen and Hallman's
// Krylov-aware estimators, 2023); HutchPP as orth(C S) for fresh Gaussian S (two per column).
template <class T>
TraceResult estimate_trace(CurvatureOperator<T>& op, VectorSpace<T>& space,
                           const TraceOptions& opt);

}  // namespace hspec
