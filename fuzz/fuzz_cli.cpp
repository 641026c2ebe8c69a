// libFuzzer target: the hspec command line. The input is split into arguments at NUL or
// newline bytes and parsed by the same CLI11 app main.cpp builds; a parsed command then runs
// its option checks (Command::check: byte counts, names, ranges) but never its work, so no
// file is opened. CLI11 errors and hspec::UsageError are the expected outcomes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../host/cli/commands.hpp"
#include "hspec/error.hpp"

namespace hspec::cli {
// main.cpp is not linked (libFuzzer brings its own main); runners never execute here.
void write_output(const std::string&, const std::string&) {}
}  // namespace hspec::cli

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> args = {"hspec"};
  std::string cur;
  for (size_t i = 0; i < size && args.size() < 64; ++i) {
    const char c = static_cast<char>(data[i]);
    if (c == '\0' || c == '\n') {
      args.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty() && args.size() < 64) args.push_back(cur);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  // As in main.cpp.
  CLI::App app{"hspec"};
  app.set_version_flag("--version", std::string("hspec ") + HSPEC_VERSION);
  app.require_subcommand(1);
  const std::vector<hspec::cli::Command> commands = hspec::cli::add_commands(app);
  try {
    app.parse(static_cast<int>(args.size()), argv.data());
  } catch (const CLI::ParseError&) {
    return 0;  // includes --help and --version
  } catch (const hspec::UsageError&) {
    return 0;  // a typed option's value refused while parsing (e.g. --device gpu)
  }
  for (const auto& c : commands) {
    if (!c.app->parsed() || !c.check) continue;
    try {
      c.check();
    } catch (const hspec::UsageError&) {
    }
  }
  return 0;
}
