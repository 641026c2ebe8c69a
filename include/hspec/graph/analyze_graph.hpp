// `hspec analyze` for graph models (ONNX): the graph operator on the CPU or the CUDA compute
// backend under the same solver, estimators, exact mode, verdict and report as the MLP path.
#pragma once
#include <functional>
#include <string>

#include "hspec/analysis/analyze.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/graph/graph.hpp"
#include "hspec/graph/plan.hpp"
#include "hspec/operator.hpp"
#include "hspec/solvers/exact.hpp"
#include "hspec/solvers/lanczos.hpp"
#include "hspec/space.hpp"

namespace hspec {

// Whether --model names a graph model: a .onnx file name, or a file whose first bytes are
// an ONNX ModelProto's (field 1, ir_version, as a varint: 0x08).
bool is_graph_model(const std::string& path);

// Runs the analysis of `graph` (already loaded) with the options' data and settings; the
// entry point run_analyze uses for ONNX models, and the hook tests drive directly.
// `load_seconds` is added to the reported wall time.
AnalyzeReport run_analyze_graph(const AnalyzeOptions& opt, const Graph& graph,
                                double load_seconds = 0);

// From analyze.cpp, shared with the graph path: the --device choice, the solver's options,
// the memory budget of a run (--max-memory, else half of RAM) and the eigen solve (Lanczos,
// or exact mode with the given dense eigensolver).
struct DeviceChoice {
  bool cuda = false;
  int index = 0;
  std::string fallback;  // --device auto in a CUDA build that found no device: why
};
// --device auto|cpu|cuda|cuda:N; UsageError for a CUDA device this process cannot use.
DeviceChoice choose_device(const DeviceRequest& device);
// Exact mode's dense solve on CUDA device `device` (cuSOLVER syevd).
SymmetricEigensolver cuda_eigensolver(int device);
LanczosOptions analyze_lanczos_options(const AnalyzeOptions& opt);
// The run's settings in the report: loss, curvature, precision, block, tol, seed, timings.
void report_run_settings(const AnalyzeOptions& opt, Loss loss, AnalyzeReport& rep);
uint64_t analyze_memory_budget(const AnalyzeOptions& opt);
// The solver and estimators on the operator `build` makes, or, on several ranks
// (opt.distributed), on the data-parallel operator over every rank's shard operator. `eig` is
// exact mode's dense solver; `device` the CUDA device the operator's blocks live on (-1: host).
template <class T>
void run_analyze_operator(const std::function<ShardOperator<T>()>& build, VectorSpace<T>& space,
                          const AnalyzeOptions& opt, const LanczosOptions& lo,
                          const SymmetricEigensolver& eig, int device, AnalyzeReport& rep);

// The graph operator's part of a run, for a graph and data already checked and loaded: the
// memory plan (host RAM, or the card's free memory with --device cuda), the operator on the
// CPU or the CUDA compute backend, the solver and the estimators. ONNX models and MLP
// checkpoints (as graphs, graph_from_mlp) both run through it.
template <class T>
void solve_graph(const AnalyzeOptions& opt, const Graph& graph, const Plan& plan, const Dataset& ds,
                 Loss loss, const DeviceChoice& dev, AnalyzeReport& rep);

}  // namespace hspec
