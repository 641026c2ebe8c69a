// `hspec analyze`: options, run, summary and JSON report.
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "hspec/analyze.hpp"

namespace hspec::cli {

Command add_analyze(CLI::App& app) {
  struct State {
    AnalyzeOptions o;
    std::string json, max_memory;
  };
  auto st = std::make_shared<State>();
  AnalyzeOptions& o = st->o;
  CLI::App* a = app.add_subcommand(
      "analyze", "top/bottom eigenvalues of the Hessian (or Gauss-Newton) of the training loss");
  a->add_option("--model", o.model_path, "checkpoint (.safetensors)")->required();
  a->add_option("--data", o.data_path, "data: safetensors, or IDX images (raw or .gz)")->required();
  a->add_option("--labels", o.labels_path, "IDX labels (raw or .gz) for IDX images");
  a->add_option("--activation", o.activation,
                "identity|relu|tanh|sigmoid|gelu (default: checkpoint metadata)");
  a->add_option("--loss", o.loss, "ce|mse|bce (default: metadata, else from the data)");
  a->add_option("--top", o.top, "largest eigenvalues wanted")->capture_default_str();
  a->add_option("--bottom", o.bottom, "smallest eigenvalues wanted")->capture_default_str();
  a->add_option("--curvature", o.curvature, "hessian|ggn")->capture_default_str();
  a->add_option("--precision", o.precision, "fp32|fp64|tf32")->capture_default_str();
  a->add_option("--block", o.block, "Lanczos block size (directions per product pass)")
      ->capture_default_str();
  a->add_option("--tol", o.tol, "residual tolerance relative to ||C||")->capture_default_str();
  a->add_option("--max-hvps", o.max_hvps, "budget of Hessian-vector products (0: auto)")
      ->capture_default_str();
  a->add_option("--max-basis", o.max_basis, "Lanczos basis size (0: auto)");
  a->add_option("--samples", o.samples, "use the first N samples (0: all)");
  a->add_option("--seed", o.seed, "random seed")->capture_default_str();
  a->add_option("--device", o.device, "auto|cpu|cuda|cuda:N")->capture_default_str();
  a->add_flag("--exact", o.exact,
              "dense matrix from products + LAPACK: the whole spectrum (small models)");
  a->add_option("--max-memory", st->max_memory, "memory budget, e.g. 8G (default: half of RAM)");
  a->add_option("--json", st->json, "write the JSON report to PATH ('-' = stdout, JSON only)");
  return {a, [st]() {
            if (!st->max_memory.empty()) st->o.max_memory = parse_bytes(st->max_memory);
            const AnalyzeReport r = run_analyze(st->o);
            if (st->json != "-") std::cout << report_summary(r) << std::flush;
            if (!st->json.empty()) write_output(st->json, report_json(r));
            return r.converged ? 0 : 4;
          }};
}

}  // namespace hspec::cli
