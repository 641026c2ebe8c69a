// The CLI's subcommands: each file in host/cli/ registers one on the CLI11 app and returns
// how to run it once parsed. Runners return the process exit code; errors are thrown and
// mapped to exit codes in main.cpp.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace hspec::cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command add_analyze(CLI::App& app);

// Writes text to a path, or to stdout for "-"; throws hspec::Error when it cannot.
void write_output(const std::string& path, const std::string& text);

}  // namespace hspec::cli
