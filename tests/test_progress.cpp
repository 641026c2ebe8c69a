// The progress display of the hspec binary: plain lines on a non-terminal stderr once the run
// is past the delay (lowered to 0 here through HSPEC_PROGRESS_DELAY), nothing with --quiet,
// and stdout (the JSON) byte-identical either way.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "cli_test_util.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/formats/safetensors.hpp"
#include "hspec/mlp/workloads.hpp"

namespace hspec {
namespace {

std::string tmp(const std::string& name) {
  return testutil::scratch("progress_", name);
}

testutil::CliResult run_cli(const std::string& args) {
  return testutil::run_cli(args, tmp("stderr.txt"));
}

// Sets an environment variable for the hspec processes this test starts.
struct ScopedEnv {
  std::string name;
  ScopedEnv(const char* n, const char* v) : name(n) { setenv(n, v, 1); }
  ~ScopedEnv() { unsetenv(name.c_str()); }
};

struct Files {
  std::string model = tmp("model.safetensors"), model2 = tmp("model2.safetensors"),
              data = tmp("data.safetensors");
  Files() {
    const Model teacher = random_mlp({6, 5, 3}, Activation::Tanh, 4);
    const Dataset ds = teacher_dataset(teacher, 40, 5);
    save_model(model, random_mlp({6, 5, 3}, Activation::Tanh, 6), Loss::CE);
    save_model(model2, random_mlp({6, 5, 3}, Activation::Tanh, 7), Loss::CE);
    write_safetensors(data, {make_tensor("inputs", {ds.n, ds.d}, ds.inputs),
                             make_tensor("labels", {ds.n}, ds.labels)});
  }
};

int count_lines_with(const std::string& text, const std::string& needle) {
  int n = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (text.substr(start, end - start).find(needle) != std::string::npos) ++n;
    start = end + 1;
  }
  return n;
}

TEST(ProgressCli, PlainLinesOnANonTerminalNothingWithQuietSameJson) {
  Files f;
  const ScopedEnv delay("HSPEC_PROGRESS_DELAY", "0");
  const std::string args = "analyze --model " + f.model + " --data " + f.data +
                           " --precision fp64 --trace --density --steps 10 --probes 2"
                           " --no-timings --json -";
  const auto loud = run_cli(args);
  const auto quiet = run_cli(args + " --quiet");
  ASSERT_EQ(loud.code, 0) << loud.err;
  ASSERT_EQ(quiet.code, 0) << quiet.err;
  EXPECT_EQ(quiet.err, "");
  EXPECT_EQ(loud.out, quiet.out);  // the JSON does not depend on the display
  EXPECT_NE(loud.out.find("\"top\""), std::string::npos);
  // One plain line per phase at least, no carriage returns (not a terminal).
  EXPECT_EQ(loud.err.find('\r'), std::string::npos);
  EXPECT_GE(count_lines_with(loud.err, "hspec: "), 4) << loud.err;
  for (const char* phase : {"primal pass", "eigenvalues", "trace", "density"})
    EXPECT_GE(count_lines_with(loud.err, phase), 1) << phase << "\n" << loud.err;
  EXPECT_EQ(std::count(loud.err.begin(), loud.err.end(), '\n'),
            count_lines_with(loud.err, "hspec: "));
}

TEST(ProgressCli, CompareNamesTheCheckpointOfHowMany) {
  Files f;
  const ScopedEnv delay("HSPEC_PROGRESS_DELAY", "0");
  const std::string args =
      "compare " + f.model + " " + f.model2 + " --data " + f.data + " --no-timings --jsonl -";
  const auto loud = run_cli(args);
  const auto quiet = run_cli(args + " --quiet");
  ASSERT_EQ(loud.code, 0) << loud.err;
  ASSERT_EQ(quiet.code, 0) << quiet.err;
  EXPECT_EQ(quiet.err, "");
  EXPECT_EQ(loud.out, quiet.out);
  EXPECT_GE(count_lines_with(loud.err, "[checkpoint 1/2 "), 1) << loud.err;
  EXPECT_GE(count_lines_with(loud.err, "[checkpoint 2/2 "), 1) << loud.err;
}

}  // namespace
}  // namespace hspec
