// JSON keys and summary lines of the trace, density and verdict stages (README.md documents
// the keys); report.cpp calls these so its own layout stays as it was.
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "hspec/analysis/analyze_estimators.hpp"
#include "hspec/report/svg.hpp"

namespace hspec {
namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// JSON has no Inf/NaN: an unknown standard error (fewer than two probes) is null.
nlohmann::json finite_or_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nullptr;
}

}  // namespace

void add_estimators_json(nlohmann::json& j, const AnalyzeReport& r) {
  if (r.has_trace_estimate) {
    const TraceResult& t = r.trace_estimate;
    // In exact mode `trace` stays the exact number; a trace estimate only exists otherwise.
    j["trace"] = {{"estimate", t.estimate},  {"stderr", finite_or_null(t.std_error)},
                  {"hvps", t.products},      {"method", trace_method_name(t.method)},
                  {"sketch", t.sketch},      {"probes", t.probes},
                  {"converged", t.converged}};
  }
  if (r.has_density) {
    const Density& d = r.density;
    j["density"] = {{"nodes", d.nodes},
                    {"weights", d.weights},
                    {"grid", d.grid},
                    {"values", d.values},
                    {"sigma", d.sigma},
                    {"method", r.exact ? "exact" : "slq"},
                    {"probes", d.probes},
                    {"steps", d.steps},
                    {"hvps", d.products},
                    {"negative_fraction", negative_mass(d)},
                    {"negative_fraction_bounds", {d.negative_lo, d.negative_hi}}};
  }
  const Verdict& v = r.verdict;
  nlohmann::json o;
  o["label"] = v.label.empty() ? nlohmann::json(nullptr) : nlohmann::json(v.label);
  o["rule"] = v.rule;
  if (!v.label.empty()) {
    o["lambda_max"] = v.lambda_max;
    o["lambda_min"] = v.lambda_min;
    o["ratio"] = v.ratio;
    o["lr"] = v.lr;
    o["lr_given"] = v.lr_given;
    o["stability_ratio"] = v.stability;
    o["trace"] = v.have_trace ? nlohmann::json(v.trace) : nlohmann::json(nullptr);
    o["negative_fraction"] =
        v.have_density ? nlohmann::json(v.negative_fraction) : nlohmann::json(nullptr);
  }
  j["verdict"] = o;
}

std::string estimators_summary(const AnalyzeReport& r) {
  std::ostringstream s;
  if (r.has_trace_estimate) {
    const TraceResult& t = r.trace_estimate;
    const double rel = t.estimate != 0 ? 100 * t.std_error / std::fabs(t.estimate) : 0;
    s << "trace     " << fmt("%+.6e", t.estimate) << " +- " << fmt("%.1e", t.std_error) << " ("
      << fmt("%.2g", rel) << "%, " << trace_method_name(t.method) << ", " << t.products
      << " products"
      << (t.converged     ? ""
          : t.rel_tol > 0 ? ", tolerance NOT reached"
                          : ", whole budget spent as --trace-tol 0 asks")
      << ")\n";
  }
  if (r.has_density) {
    const Density& d = r.density;
    s << "density   " << d.nodes.size() << " nodes";
    if (!r.exact)
      s << " (" << d.probes << " probes x " << d.steps << " steps, " << d.products << " products)";
    s << ", " << fmt("%.1f", 100 * negative_mass(d)) << "% negative (quadrature bounds "
      << fmt("%.1f", 100 * d.negative_lo) << "-" << fmt("%.1f", 100 * d.negative_hi)
      << "%), broadened by sigma " << fmt("%.2e", d.sigma) << "\n";
  }
  const Verdict& v = r.verdict;
  if (!v.label.empty()) {
    s << "verdict   " << v.label << ": " << v.rule << "\n";
    s << "          lambda_max " << fmt("%.4g", v.lambda_max) << ", lambda_min "
      << fmt("%.4g", v.lambda_min) << ", |lambda_min|/lambda_max " << fmt("%.3g", v.ratio);
    if (v.lr_given) s << ", lambda_max*lr/2 " << fmt("%.3g", v.stability);
    s << "\n";
  }
  return s.str();
}

std::string density_plot_svg(const AnalyzeReport& r) {
  DensityPlot p;
  std::ostringstream t;
  t << (r.curvature == "ggn" ? "Gauss-Newton" : "Hessian") << " eigenvalue density, ";
  for (size_t i = 0; i < r.layer_sizes.size(); ++i) t << (i ? "-" : "") << r.layer_sizes[i];
  t << " " << r.activation << ", " << r.loss << ", " << r.samples << " samples ("
    << (r.exact ? "exact" : "SLQ") << ")";
  p.title = t.str();
  if (!r.top.empty() && !r.bottom.empty()) {
    p.have_extremes = true;
    p.lambda_max = r.top.front().value;
    p.lambda_min = r.bottom.front().value;
  }
  return density_svg(r.density, p);
}

}  // namespace hspec
