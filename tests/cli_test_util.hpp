// Helpers shared by the tests that run the hspec binary: per-process scratch paths (ctest -j
// runs tests of one file as parallel processes) and running the CLI with its exit code,
// stdout and stderr captured.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

namespace hspec::testutil {

// HSPEC_TEST_TMP/<prefix><pid>_<name>: no two test processes share a file.
inline std::string scratch(const std::string& prefix, const std::string& name) {
  return std::string(HSPEC_TEST_TMP) + "/" + prefix + std::to_string(getpid()) + "_" + name;
}

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

struct CliResult {
  int code = -1;
  std::string out, err;
};

// Runs `hspec ARGS` under `timeout`, so a hang fails the test instead of stalling it; stderr
// goes to err_path (read back into err), stdin is empty.
inline CliResult run_cli(const std::string& args, const std::string& err_path,
                         int timeout_s = 300) {
  const std::string cmd = "timeout " + std::to_string(timeout_s) + " " +
                          std::string(HSPEC_CLI_PATH) + " " + args + " 2>" + err_path +
                          " </dev/null";
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t got;
  while ((got = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), got);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = slurp(err_path);
  return r;
}

}  // namespace hspec::testutil
