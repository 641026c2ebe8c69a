// The options `hspec analyze` and `hspec compare` share, defined once: everything that
// says how to analyze a checkpoint (data, solver, trace, density, verdict, memory).
#include "commands.hpp"
#include "hspec/backends/cpu/blas_runtime.hpp"

namespace hspec::cli {

void add_analyze_options(CLI::App* a, AnalyzeCli& st) {
  AnalyzeOptions& o = st.o;
  a->add_option("--data", o.data_path, "data: safetensors, or IDX images (raw or .gz)")->required();
  a->add_option("--labels", o.labels_path, "IDX labels (raw or .gz) for IDX images");
  // Each string option becomes its typed value here, once (include/hspec/options.hpp); a bad
  // value is a UsageError naming the accepted ones.
  a->add_option_function<std::string>(
      "--activation", [&o](const std::string& s) { o.activation = parse_activation(s); },
      "identity|relu|tanh|sigmoid|gelu (default: checkpoint metadata)");
  a->add_option_function<std::string>(
      "--loss", [&o](const std::string& s) { o.loss = parse_loss(s); },
      "ce|mse|bce (default: metadata, else from the data)");
  a->add_option("--top", o.top, "largest eigenvalues wanted")->capture_default_str();
  a->add_option("--bottom", o.bottom, "smallest eigenvalues wanted")->capture_default_str();
  a->add_option_function<std::string>(
       "--curvature", [&o](const std::string& s) { o.curvature = parse_curvature(s); },
       "hessian|ggn")
      ->default_str(curvature_name(o.curvature));
  a->add_option_function<std::string>(
       "--precision", [&o](const std::string& s) { o.precision = parse_precision(s); },
       "fp32|fp64|tf32")
      ->default_str(precision_name(o.precision));
  a->add_option("--block", o.block, "Lanczos block size (directions per product pass)")
      ->capture_default_str();
  a->add_option("--tol", o.tol, "residual tolerance relative to ||C||")->capture_default_str();
  a->add_option("--max-hvps", o.max_hvps, "budget of Hessian-vector products (0: auto)")
      ->capture_default_str();
  a->add_option("--max-basis", o.max_basis, "Lanczos basis size (0: auto)");
  a->add_option("--samples", o.samples, "use the first N samples (0: all)");
  a->add_option("--seed", o.seed, "random seed")->capture_default_str();
  a->add_option_function<std::string>(
       "--device", [&o](const std::string& s) { o.device = parse_device(s); },
       "auto|cpu|cuda|cuda:N")
      ->default_str(o.device.text());
  a->add_flag("--exact", o.exact,
              "dense matrix from products + LAPACK: the whole spectrum (small models)");
  a->add_option("--max-memory", st.max_memory, "memory budget, e.g. 8G (default: half of RAM)");
  a->add_option("--threads", st.threads,
                "CPU threads for the BLAS and hspec's loops (default: OMP_NUM_THREADS)")
      ->check(CLI::PositiveNumber);
  a->add_flag("--quiet", st.quiet, "show no progress on stderr (results and errors still)");
  a->add_flag("--no-timings", st.no_timings,
              "omit wall times from the JSON, so reruns with the same seed are byte-identical");
  a->add_flag("--trace", o.trace, "estimate the trace (Krylov Hutch++ on Rademacher probes)");
  a->add_option_function<std::string>(
       "--trace-method", [&o](const std::string& s) { o.trace_method = parse_trace_method(s); },
       "krylov-hutchpp|hutchpp|hutchinson")
      ->default_str(trace_method_name(o.trace_method));
  a->add_option("--trace-tol", o.trace_tol, "stop at this relative standard error")
      ->capture_default_str();
  a->add_option("--trace-hvps", o.trace_hvps, "budget of products for the trace")
      ->capture_default_str();
  a->add_flag("--density", o.density, "eigenvalue density by stochastic Lanczos quadrature");
  a->add_option("--probes", o.probes, "density: Lanczos probes (one batched block)")
      ->capture_default_str();
  a->add_option("--steps", o.steps, "density: Lanczos steps per probe")->capture_default_str();
  a->add_option("--lr", o.lr, "learning rate: the verdict judges GD stability lambda_max*lr/2")
      ->check(CLI::PositiveNumber);
}

void finish_analyze_options(AnalyzeCli& st) {
  if (!st.max_memory.empty()) st.o.max_memory = parse_bytes(st.max_memory);
  st.o.timings = !st.no_timings;
  if (st.threads > 0) cpu::set_threads(st.threads);
  check_analyze_options(st.o);
}

}  // namespace hspec::cli
