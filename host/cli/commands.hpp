// The CLI's subcommands: each file in host/cli/ registers one on the CLI11 app and returns
// how to run it once parsed. Runners return the process exit code; errors are thrown and
// mapped to exit codes in main.cpp.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "hspec/analysis/analyze.hpp"

namespace hspec::cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
  // Optional: the checks of the parsed options that need no file and no work (UsageError);
  // lets the command-line fuzzer (fuzz/fuzz_cli.cpp) go past parsing without running.
  std::function<void()> check;
};

Command add_analyze(CLI::App& app);
Command add_train(CLI::App& app);
Command add_compare(CLI::App& app);

// The options `analyze` and `compare` share (analyze_options.cpp): all of AnalyzeOptions
// but the checkpoint, plus the raw strings that need parsing after CLI11 is done.
struct AnalyzeCli {
  AnalyzeOptions o;
  std::string max_memory;
  bool no_timings = false;
  int threads = 0;     // --threads: CPU threads (0: OMP_NUM_THREADS or the BLAS's default)
  bool quiet = false;  // --quiet: no progress on stderr
};
void add_analyze_options(CLI::App* a, AnalyzeCli& st);
// Parses --max-memory, sets timings, runs check_analyze_options (UsageError).
void finish_analyze_options(AnalyzeCli& st);

// Registers every subcommand above (commands.cpp); main.cpp and fuzz/fuzz_cli.cpp use it.
std::vector<Command> add_commands(CLI::App& app);

// Writes text to a path, or to stdout for "-"; throws hspec::Error when it cannot.
void write_output(const std::string& path, const std::string& text);

}  // namespace hspec::cli
