// Accuracy sweep of the trace estimators against a known exact trace: runs estimate_trace
// (the code `hspec analyze --trace` runs, with the same options and seeds) over many seeds
// on one checkpoint and data set, on the CPU in fp64, and prints one JSON line per method:
// how many runs landed within 0.5% of the exact trace, the mean and largest relative error,
// the mean reported standard error, the rms of error/stderr and how many runs were beyond
// three standard errors. The exact trace comes from `hspec analyze --exact --precision fp64`.
//
// usage: hspec_bench_trace MODEL DATA LABELS|- SAMPLES EXACT_TRACE [BUDGET] [TOL] [SEEDS]
//                          [METHOD...]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "hspec/backends/cpu/cpu_space.hpp"
#include "hspec/error.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/graph/graph_operator.hpp"
#include "hspec/mlp/model.hpp"
#include "hspec/solvers/trace.hpp"

namespace {

struct Sweep {
  int within = 0, beyond3 = 0, runs = 0;
  double abs_err = 0, max_err = 0, stderr_sum = 0, z2 = 0, products = 0;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace hspec;
  if (argc < 6) {
    std::fprintf(stderr,
                 "usage: %s MODEL DATA LABELS|- SAMPLES EXACT_TRACE [BUDGET=100] [TOL=0] "
                 "[SEEDS=200] [METHOD...]\n",
                 argv[0]);
    return 2;
  }
  try {
    const Model model = load_model(argv[1]);
    Dataset ds = load_dataset(argv[2], std::string(argv[3]) == "-" ? "" : argv[3]);
    truncate_dataset(ds, std::atoll(argv[4]));
    const double exact = std::atof(argv[5]);
    const int64_t budget = argc > 6 ? std::atoll(argv[6]) : 100;
    const double tol = argc > 7 ? std::atof(argv[7]) : 0.0;
    const int seeds = argc > 8 ? std::atoi(argv[8]) : 200;
    std::vector<std::string> methods;
    for (int i = 9; i < argc; ++i) methods.emplace_back(argv[i]);
    if (methods.empty()) methods = {"krylov-hutchpp", "hutchpp", "hutchinson"};
    if (!(exact != 0) || budget < 1 || seeds < 1) throw UsageError("bad arguments");

    GraphOperatorOptions co;  // the operator `hspec analyze` runs an MLP checkpoint on
    co.loss = model.has_loss_hint ? model.loss_hint : Loss::CE;
    co.max_block = 16;
    check_data_fits(model, ds, co.loss);
    GraphCurvatureOperator<double> op(graph_from_mlp(model), ds, co);
    CpuSpace<double> space;
    for (const std::string& name : methods) {
      TraceOptions o;  // the CLI's defaults but for method, budget, tolerance and seed
      o.method = parse_trace_method(name);
      o.max_products = budget;
      o.rel_tol = tol;
      Sweep s;
      for (int seed = 0; seed < seeds; ++seed) {
        o.seed = static_cast<uint64_t>(seed);
        const TraceResult r = estimate_trace<double>(op, space, o);
        const double err = std::fabs(r.estimate - exact) / std::fabs(exact);
        const double z = (r.estimate - exact) / r.std_error;
        ++s.runs;
        s.within += err <= 0.005;
        s.beyond3 += std::fabs(z) > 3;
        s.abs_err += err;
        s.max_err = std::max(s.max_err, err);
        s.stderr_sum += r.std_error / std::fabs(exact);
        s.z2 += z * z;
        s.products += static_cast<double>(r.products);
      }
      std::printf(
          "{\"method\": \"%s\", \"budget\": %lld, \"tol\": %g, \"seeds\": %d, "
          "\"within_0.5pct\": %d, \"mean_abs_err_pct\": %.3f, \"max_err_pct\": %.3f, "
          "\"mean_stderr_pct\": %.3f, \"rms_err_over_stderr\": %.2f, \"beyond_3_stderr\": %d, "
          "\"mean_products\": %.1f}\n",
          trace_method_name(o.method), static_cast<long long>(budget), tol, s.runs, s.within,
          100 * s.abs_err / s.runs, 100 * s.max_err, 100 * s.stderr_sum / s.runs,
          std::sqrt(s.z2 / s.runs), s.beyond3, s.products / s.runs);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hspec_bench_trace: %s\n", e.what());
    return 1;
  }
  return 0;
}
