// The hspec command line: parses arguments, runs a command, maps errors to exit codes
// (0 ok, 1 other failure, 2 usage, 3 input, 4 not converged) with one-line messages.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <new>
#include <string>

#include "hspec/analyze.hpp"
#include "hspec/error.hpp"

namespace {

// One line: newlines in a message (e.g. from a library) must not break the contract.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

void write_output(const std::string& path, const std::string& text) {
  if (path == "-") {
    std::cout << text << std::flush;
    return;
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw hspec::Error("cannot open '" + path + "' for writing");
  f << text;
  if (!f.flush()) throw hspec::Error("cannot write '" + path + "'");
}

void add_analyze_options(CLI::App* app, hspec::AnalyzeOptions& o, std::string& json,
                         std::string& max_memory) {
  app->add_option("--model", o.model_path, "checkpoint (.safetensors)")->required();
  app->add_option("--data", o.data_path, "data: safetensors, or IDX images (raw or .gz)")
      ->required();
  app->add_option("--labels", o.labels_path, "IDX labels (raw or .gz) for IDX images");
  app->add_option("--activation", o.activation,
                  "identity|relu|tanh|sigmoid|gelu (default: checkpoint metadata)");
  app->add_option("--loss", o.loss, "ce|mse|bce (default: metadata, else from the data)");
  app->add_option("--top", o.top, "largest eigenvalues wanted")->capture_default_str();
  app->add_option("--bottom", o.bottom, "smallest eigenvalues wanted")->capture_default_str();
  app->add_option("--curvature", o.curvature, "hessian|ggn")->capture_default_str();
  app->add_option("--precision", o.precision, "fp32|fp64|tf32")->capture_default_str();
  app->add_option("--block", o.block, "Lanczos block size (directions per product pass)")
      ->capture_default_str();
  app->add_option("--tol", o.tol, "relative residual tolerance")->capture_default_str();
  app->add_option("--max-hvps", o.max_hvps, "budget of Hessian-vector products (0: auto)")
      ->capture_default_str();
  app->add_option("--max-basis", o.max_basis, "Lanczos basis size (0: auto)");
  app->add_option("--samples", o.samples, "use the first N samples (0: all)");
  app->add_option("--seed", o.seed, "random seed")->capture_default_str();
  app->add_option("--device", o.device, "auto|cpu|cuda|cuda:N")->capture_default_str();
  app->add_flag("--exact", o.exact,
                "dense matrix from products + LAPACK: the whole spectrum (small models)");
  app->add_option("--max-memory", max_memory, "memory budget, e.g. 8G (default: half of RAM)");
  app->add_option("--json", json, "write the JSON report to PATH ('-' = stdout, JSON only)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hspec: Hessian spectrum of a trained model's loss, from the command line"};
  app.set_version_flag("--version", std::string("hspec ") + HSPEC_VERSION);
  app.require_subcommand(1);
  hspec::AnalyzeOptions opt;
  std::string json, max_memory;
  CLI::App* analyze = app.add_subcommand(
      "analyze", "top/bottom eigenvalues of the Hessian (or Gauss-Newton) of the training loss");
  add_analyze_options(analyze, opt, json, max_memory);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "hspec: " << one_line(e.what()) << " (see hspec --help)\n";
    return 2;
  }

  try {
    if (analyze->parsed()) {
      if (!max_memory.empty()) opt.max_memory = hspec::parse_bytes(max_memory);
      const hspec::AnalyzeReport r = hspec::run_analyze(opt);
      if (json != "-") std::cout << hspec::report_summary(r) << std::flush;
      if (!json.empty()) write_output(json, hspec::report_json(r));
      return r.converged ? 0 : 4;
    }
  } catch (const hspec::UsageError& e) {
    std::cerr << "hspec: " << one_line(e.what()) << "\n";
    return 2;
  } catch (const hspec::InputError& e) {
    std::cerr << "hspec: " << one_line(e.what()) << "\n";
    return 3;
  } catch (const std::bad_alloc&) {
    std::cerr << "hspec: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "hspec: " << one_line(e.what()) << "\n";
    return 1;
  }
  return 1;
}
