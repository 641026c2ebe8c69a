// The trace, density and verdict stages of `hspec analyze`, run after the eigen solver on
// the same operator and vector space (either backend).
#pragma once
#include <cstddef>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "hspec/analysis/analyze.hpp"
#include "hspec/operator.hpp"
#include "hspec/space.hpp"

namespace hspec {

// UsageError for bad --trace-*, --probes, --steps, --lr values.
void check_estimator_options(const AnalyzeOptions& opt);

// UsageError when the --trace or --density storage (trace_bytes, density_bytes) for n
// parameters exceeds --max-memory (default: half of RAM); called before any work.
void check_estimator_memory(const AnalyzeOptions& opt, int64_t n, size_t elem);

// Bytes the --trace or --density storage for n parameters holds, the larger of the two (they
// run one after the other, after the solver's basis is freed); 0 when neither runs.
double estimator_bytes(const AnalyzeOptions& opt, int64_t n, size_t elem);

// The widest block the estimators ask of the operator (0 when none runs): trace rounds of
// 10 probes, density blocks of --probes.
int64_t estimator_block(const AnalyzeOptions& opt);

// Runs --trace and --density (unless the run was interrupted) and fills the report.
template <class T>
void run_estimators(CurvatureOperator<T>& op, VectorSpace<T>& space, const AnalyzeOptions& opt,
                    AnalyzeReport& rep);

// The verdict from what the report holds (extremes, trace, density) and --lr (0: none).
Verdict verdict_of(const AnalyzeReport& rep, double lr);

// The report's `trace` (estimate), `density` and `verdict` keys (README.md), and their lines
// in the human summary (report.cpp calls these).
void add_estimators_json(nlohmann::json& j, const AnalyzeReport& r);
std::string estimators_summary(const AnalyzeReport& r);
// The --plot SVG of the report's density with its extreme eigenvalues marked.
std::string density_plot_svg(const AnalyzeReport& r);

}  // namespace hspec
