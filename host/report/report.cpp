// The analyze report: JSON with stable keys (README.md documents them) and a human summary.
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "hspec/analysis/analyze.hpp"
#include "hspec/analysis/analyze_estimators.hpp"
#include "hspec/backends/cpu/blas_runtime.hpp"

namespace hspec {
namespace {

nlohmann::json values(const std::vector<RitzValue>& v) {
  nlohmann::json a = nlohmann::json::array();
  for (const RitzValue& r : v) {
    nlohmann::json e = {{"value", r.value}, {"residual", r.residual}, {"converged", r.converged}};
    // |value - lambda| <= residual always; residual^2 / gap too where the gap is known.
    e["gap"] = r.gap > 0 ? nlohmann::json(r.gap) : nlohmann::json(nullptr);
    e["gap_error_bound"] =
        r.gap > 0 ? nlohmann::json(r.residual * r.residual / r.gap) : nlohmann::json(nullptr);
    a.push_back(e);
  }
  return a;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

std::string report_json(const AnalyzeReport& r) {
  nlohmann::json j;
  j["version"] = HSPEC_VERSION;
  j["params"] = r.params;
  j["samples"] = r.samples;
  j["layers"] = r.layer_sizes;
  if (r.activation.empty())
    j["activation"] = nullptr;  // a graph model: its activations are nodes of the graph
  else
    j["activation"] = r.activation;
  if (!r.graph_source.empty()) {
    nlohmann::json ps = nlohmann::json::array();
    for (const auto& [name, shape] : r.parameters) ps.push_back({{"name", name}, {"shape", shape}});
    j["parameters"] = ps;
  }
  j["loss"] = r.loss;
  j["loss_value"] = r.loss_value;
  j["grad_norm"] = r.grad_norm;
  j["curvature"] = r.curvature;
  j["precision"] = r.precision;
  j["backend"] = r.backend;
  j["device"] = r.device;
  j["ranks"] = r.ranks;
  if (r.ranks > 1) {
    const DataParallelInfo& d = r.data_parallel;
    nlohmann::json dp = {{"library", d.library},
                         {"shard_samples", {d.shard_min, d.shard_max}},
                         {"reductions", d.reductions},
                         {"reduced_bytes_per_rank", d.reduced_bytes},
                         {"resyncs", d.resyncs}};
    if (!d.device_staging.empty()) dp["device_staging"] = d.device_staging;
    if (r.timings) dp["reduce_seconds"] = d.reduce_seconds;
    j["data_parallel"] = dp;
  }
  if (r.backend == "cpu") {
    const cpu::KernelInfo& k = cpu::kernel_info();
    j["cpu_kernels"] = {{"library", k.library},
                        {"version", k.version},
                        {"kernel", k.kernel},
                        {"threads", k.threads},
                        {"slow_fallback", !k.warning.empty()}};
  }
  j["block"] = r.block;
  j["tol"] = r.tol;
  j["seed"] = r.seed;
  j["hvps"] = r.hvps;
  j["restarts"] = r.restarts;
  if (r.timings) j["seconds"] = r.seconds;  // omitted by --no-timings: reruns byte-identical
  j["converged"] = r.converged;
  j["interrupted"] = r.interrupted;
  j["top"] = values(r.top);
  j["bottom"] = values(r.bottom);
  j["exact"] = r.exact;
  if (r.exact) {
    j["eigenvalues"] = r.eigenvalues;
    j["trace"] = r.trace;
    j["asymmetry"] = r.asymmetry;
    j["solver"] = r.exact_solver;
  }
  add_estimators_json(j, r);  // trace estimate, density, verdict
  // Full precision so a report can be compared to a reference without rounding loss.
  return j.dump(2) + "\n";
}

std::string report_summary(const AnalyzeReport& r) {
  std::ostringstream s;
  s << "model     ";
  if (!r.graph_source.empty()) {
    s << "graph " << r.graph_source << ", " << r.graph_nodes << " nodes (" << r.params
      << " parameters in " << r.parameters.size() << " tensors, loss " << r.loss << ")\n";
  } else {
    for (size_t i = 0; i < r.layer_sizes.size(); ++i) s << (i ? "-" : "") << r.layer_sizes[i];
    s << " (" << r.params << " parameters, activation " << r.activation << ", loss " << r.loss
      << ")\n";
  }
  s << "data      " << r.samples << " samples";
  if (r.ranks > 1)
    s << " on " << r.ranks << " ranks (" << r.data_parallel.shard_min
      << (r.data_parallel.shard_max != r.data_parallel.shard_min
              ? "-" + std::to_string(r.data_parallel.shard_max)
              : std::string())
      << " each, products summed by " << r.data_parallel.library << ")";
  s << "\n";
  s << "loss      " << fmt("%.6g", r.loss_value) << "   gradient norm " << fmt("%.3e", r.grad_norm)
    << "\n";
  s << "curvature " << r.curvature << ", " << r.precision << " on " << r.device << ", " << r.hvps
    << " products in " << fmt("%.2f", r.seconds) << " s\n";
  auto list = [&](const char* name, const std::vector<RitzValue>& v) {
    for (size_t i = 0; i < v.size(); ++i) {
      s << (i == 0 ? name : "         ") << fmt(" %+.10e", v[i].value) << "   residual "
        << fmt("%.1e", v[i].residual) << (v[i].converged ? "" : "   NOT CONVERGED") << "\n";
    }
  };
  if (r.exact)
    s << "exact     dense " << r.eigenvalues.size() << " x " << r.eigenvalues.size() << " matrix ("
      << r.exact_solver << "), trace " << fmt("%.10e", r.trace) << ", asymmetry as built "
      << fmt("%.1e", r.asymmetry) << "\n";
  list("top      ", r.top);
  list("bottom   ", r.bottom);
  s << estimators_summary(r);
  if (r.interrupted)
    s << "interrupted: partial results; residuals are the solver's estimates\n";
  else if (!r.converged)
    s << "warning: some eigenvalues did not converge within the budget "
         "(raise --max-hvps or --tol)\n";
  return s.str();
}

}  // namespace hspec
