// `hspec analyze`: from a checkpoint and a data set to a curvature report.
#pragma once
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "hspec/distributed/data_parallel.hpp"
#include "hspec/mlp/model.hpp"
#include "hspec/options.hpp"
#include "hspec/report/verdict.hpp"
#include "hspec/solvers/density.hpp"
#include "hspec/solvers/lanczos.hpp"
#include "hspec/solvers/trace.hpp"

namespace hspec {

struct AnalyzeOptions {
  std::string model_path;
  std::string params_path;  // --params: a state_dict (safetensors) for an ONNX --model
  std::string data_path;
  std::string labels_path;
  std::optional<Activation> activation;  // none: from the checkpoint's metadata
  std::optional<Loss> loss;              // none: from the metadata, else inferred from the data
  int top = 5;
  int bottom = 1;
  Curvature curvature = Curvature::Hessian;
  Precision precision = Precision::Fp32;  // tf32: CUDA only
  int block = 1;
  double tol = 1e-6;
  int64_t max_hvps = 0;   // 0 = the solver's default budget
  int64_t max_basis = 0;  // 0 = the solver's default
  int64_t samples = 0;    // 0 = all
  uint64_t seed = 0;
  DeviceRequest device;     // auto | cpu | cuda | cuda:N
  bool exact = false;       // dense matrix + LAPACK instead of Lanczos (small models)
  uint64_t max_memory = 0;  // bytes; 0 = half of the host's physical memory
  bool timings = true;      // false: the report omits wall times (byte-identical reruns)
  // Set asynchronously (signal handler) to stop the solver early; the report then holds
  // the values so far and interrupted = true.
  const std::atomic<bool>* cancel = nullptr;
  // When set, told what the run is doing (phases, products, Ritz values); the caller decides
  // what to show. Not part of the result: the report is the same with or without it.
  ProgressSink* progress = nullptr;
  // Set by run_analyze itself when the job has several ranks (MPI): the shard and the
  // collectives the operator uses. Callers leave it null.
  DataParallelRun* distributed = nullptr;
  // Trace, density, verdict (README.md "Trace", "Density", "Verdict").
  bool trace = false;  // --trace: Hutch++/Hutchinson estimate
  TraceMethod trace_method = TraceMethod::KrylovHutchPP;
  double trace_tol = 0.005;  // relative standard error to stop at
  int64_t trace_hvps = 200;  // budget of products for the trace
  bool density = false;      // --density: stochastic Lanczos quadrature
  int probes = 8;
  int steps = 80;
  double lr = 0;  // --lr: judge GD stability at this step (0: not given)
};

// The option checks run_analyze starts with (UsageError), without touching any file.
void check_analyze_options(const AnalyzeOptions& opt);

// Parses a byte count such as "512M", "8G", "1.5G" or "1048576" (UsageError otherwise).
uint64_t parse_bytes(const std::string& s);

struct AnalyzeReport {
  int64_t params = 0;
  int64_t samples = 0;
  std::vector<int64_t> layer_sizes;  // d0, d1, ..., dL (empty for a graph model)
  // Graph models (ONNX): the file, its node count and its parameters {name, shape} in flat
  // order; empty for an MLP checkpoint. `activation` is empty for a graph (JSON null).
  std::string graph_source;
  int64_t graph_nodes = 0;
  std::vector<std::pair<std::string, std::vector<int64_t>>> parameters;
  std::string activation, loss, curvature, precision;
  std::string backend;  // "cpu" or "cuda"
  std::string device;   // what ran it, e.g. "cpu" or "cuda:0 (NVIDIA H100 80GB HBM3)"
  double loss_value = 0;
  double grad_norm = 0;
  int64_t hvps = 0;
  int64_t restarts = 0;
  double seconds = 0;
  int block = 1;
  double tol = 0;
  uint64_t seed = 0;
  std::vector<RitzValue> top, bottom;
  bool converged = false;
  bool interrupted = false;  // stopped by AnalyzeOptions::cancel; residuals are estimates
  bool timings = true;       // whether `seconds` goes into the JSON
  bool exact = false;
  std::vector<double> eigenvalues;  // exact mode: the whole spectrum, ascending
  double trace = 0;                 // exact mode
  double asymmetry = 0;             // exact mode: max |C_ij - C_ji| / max |C_ij| as built
  std::string exact_solver;         // exact mode: the eigensolver that ran
  bool has_trace_estimate = false;  // --trace (not in exact mode, whose trace is exact)
  TraceResult trace_estimate;
  bool has_density = false;  // --density (SLQ; exact mode: the eigenvalues themselves)
  Density density;
  int ranks = 1;                   // MPI ranks the products were shared by
  DataParallelInfo data_parallel;  // when ranks > 1
  Verdict verdict;  // label empty when undecidable (no top or no bottom, interrupted)
};

// Validates the options (UsageError), loads the files (InputError), runs the solver.
// Under an MPI launch of several ranks (include/hspec/distributed/), every rank calls it
// with the same options: each keeps its shard of the samples, the products are summed over
// the ranks, every rank returns the same report and throws the same error.
AnalyzeReport run_analyze(const AnalyzeOptions& opt);

// The JSON report (keys documented in README.md) and the short human summary.
std::string report_json(const AnalyzeReport& r);
std::string report_summary(const AnalyzeReport& r);

}  // namespace hspec
