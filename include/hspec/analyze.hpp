// `hspec analyze`: from a checkpoint and a data set to a curvature report.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "hspec/lanczos.hpp"
#include "hspec/model.hpp"

namespace hspec {

struct AnalyzeOptions {
  std::string model_path;
  std::string data_path;
  std::string labels_path;
  std::string activation;  // "" = from the checkpoint's metadata
  std::string loss;        // "" = from the metadata, else inferred from the data
  int top = 5;
  int bottom = 1;
  std::string curvature = "hessian";
  std::string precision = "fp32";  // fp32 | fp64 | tf32 (CUDA only)
  int block = 1;
  double tol = 1e-6;
  int64_t max_hvps = 0;   // 0 = the solver's default budget
  int64_t max_basis = 0;  // 0 = the solver's default
  int64_t samples = 0;    // 0 = all
  uint64_t seed = 0;
  std::string device = "auto";  // auto | cpu | cuda | cuda:N
  bool exact = false;           // dense matrix + LAPACK instead of Lanczos (small models)
  uint64_t max_memory = 0;      // bytes; 0 = half of the host's physical memory
};

// Parses a byte count such as "512M", "8G", "1.5G" or "1048576" (UsageError otherwise).
uint64_t parse_bytes(const std::string& s);

struct AnalyzeReport {
  int64_t params = 0;
  int64_t samples = 0;
  std::vector<int64_t> layer_sizes;  // d0, d1, ..., dL
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
  bool exact = false;
  std::vector<double> eigenvalues;  // exact mode: the whole spectrum, ascending
  double trace = 0;                 // exact mode
  double asymmetry = 0;             // exact mode: max |C_ij - C_ji| / max |C_ij| as built
};

// Validates the options (UsageError), loads the files (InputError), runs the solver.
AnalyzeReport run_analyze(const AnalyzeOptions& opt);

// The JSON report (keys documented in README.md) and the short human summary.
std::string report_json(const AnalyzeReport& r);
std::string report_summary(const AnalyzeReport& r);

}  // namespace hspec
