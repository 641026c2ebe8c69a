// The list of subcommands, in one place: main.cpp and the command-line fuzzer
// (fuzz/fuzz_cli.cpp) build the same CLI11 app from it.
#include "commands.hpp"

namespace hspec::cli {

std::vector<Command> add_commands(CLI::App& app) {
  return {add_analyze(app), add_train(app), add_compare(app)};
}

}  // namespace hspec::cli
