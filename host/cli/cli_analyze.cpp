// `hspec analyze`: options, run, summary and JSON report.
#include <time.h>

#include <atomic>
#include <csignal>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "hspec/analysis/analyze.hpp"
#include "hspec/analysis/analyze_estimators.hpp"
#include "hspec/distributed/communicator.hpp"
#include "hspec/error.hpp"
#include "progress_line.hpp"

namespace hspec::cli {
namespace {

// SIGINT/SIGTERM during a run: the handler only sets these (async-signal-safe: a lock-free
// atomic and a sig_atomic_t); the solver polls g_cancel between block extensions, the
// partial report is written, and the exit code is 128 + the signal (130, 143).
static_assert(std::atomic<bool>::is_always_lock_free, "the cancel flag must be signal-safe");
std::atomic<bool> g_cancel{false};
volatile std::sig_atomic_t g_signal = 0;
timespec g_first{};  // when the first signal came (written before g_signal is set)

extern "C" void on_stop_signal(int sig) {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);  // async-signal-safe
  if (g_signal == 0) {
    g_first = now;
    g_signal = sig;
    g_cancel.store(true);
    return;
  }
  // A second signal a second or more later (Ctrl-C again) ends the process at once. One
  // within the second is the same request delivered twice, as `timeout` and batch
  // schedulers do (to the process and to its group): it must not lose the partial report.
  if (now.tv_sec - g_first.tv_sec >= 2 ||
      (now.tv_sec - g_first.tv_sec == 1 && now.tv_nsec >= g_first.tv_nsec)) {
    signal(sig, SIG_DFL);
    raise(sig);
  }
}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGINT);  // one handler at a time
  sigaddset(&sa.sa_mask, SIGTERM);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace

Command add_analyze(CLI::App& app) {
  struct State : AnalyzeCli {
    std::string json, plot;
  };
  auto st = std::make_shared<State>();
  AnalyzeOptions& o = st->o;
  CLI::App* a = app.add_subcommand(
      "analyze", "top/bottom eigenvalues of the Hessian (or Gauss-Newton) of the training loss");
  a->add_option("--model", o.model_path, "checkpoint (.safetensors) or exported graph (.onnx)")
      ->required();
  a->add_option("--params", o.params_path,
                "state_dict (.safetensors) replacing an ONNX model's initializers by name");
  add_analyze_options(a, *st);  // shared with `compare`
  a->add_option("--json", st->json, "write the JSON report to PATH ('-' = stdout, JSON only)");
  a->add_option("--plot", st->plot, "draw the --density curve to an SVG file");
  auto check = [st]() {
    finish_analyze_options(*st);
    if (!st->plot.empty() && !st->o.density) throw UsageError("--plot needs --density");
  };
  auto run = [st, check]() {
    check();
    install_stop_handlers();
    st->o.cancel = &g_cancel;
    std::unique_ptr<ProgressLine> progress;
    if (!st->quiet && is_output_rank()) progress = std::make_unique<ProgressLine>();
    st->o.progress = progress.get();
    const AnalyzeReport r = run_analyze(st->o);
    st->o.progress = nullptr;
    if (progress) progress->finish();  // the live line goes before the results are printed
    if (is_output_rank()) {            // on several ranks every rank holds the same report
      if (st->json != "-") std::cout << report_summary(r) << std::flush;
      if (!st->json.empty()) write_output(st->json, report_json(r));
      if (!st->plot.empty() && r.has_density) write_output(st->plot, density_plot_svg(r));
    }
    if (g_signal != 0) return 128 + static_cast<int>(g_signal);
    // A rank stopped because another rank was signalled (the batch system's SIGTERM).
    if (r.interrupted) return 128 + SIGTERM;
    return r.converged ? 0 : 4;
  };
  return {a, run, check};
}

}  // namespace hspec::cli
