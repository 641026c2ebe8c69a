// Faults during a run, end to end through the hspec binary: NaN/Inf appearing mid-run
// (exit 1, never a NaN eigenvalue), the memory budget (--max-memory), byte-identical reruns
// (--no-timings) and SIGINT/SIGTERM (partial report, exit 130/143).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cli_test_util.hpp"
#include "hspec/backends/cpu/cpu_space.hpp"
#include "hspec/dense_operator.hpp"
#include "hspec/formats/safetensors.hpp"
#include "hspec/mlp/workloads.hpp"
#include "hspec/solvers/lanczos.hpp"

namespace hspec {
namespace {

std::string tmp(const std::string& name) {
  return testutil::scratch("faults_", name);
}

using testutil::CliResult;
using testutil::slurp;

CliResult run_cli(const std::string& args, const std::string& tag) {
  return testutil::run_cli(args, tmp(tag + ".stderr"));
}

// A teacher-labelled problem written as a user would hand it to us; returns "--model M
// --data D".
std::string write_problem(const std::string& tag, const std::vector<int64_t>& sizes,
                          int64_t samples, Activation act = Activation::Tanh) {
  const std::string model = tmp(tag + "_model.safetensors"), data = tmp(tag + "_data.safetensors");
  const Dataset ds = teacher_dataset(random_mlp(sizes, act, 11), samples, 12);
  save_model(model, random_mlp(sizes, act, 13), Loss::CE);
  write_safetensors(data, {make_tensor("inputs", {ds.n, ds.d}, ds.inputs),
                           make_tensor("labels", {ds.n}, ds.labels)});
  return "--model " + model + " --data " + data;
}

TEST(HostileNumerics, Fp32OverflowDuringTheRunExitsOneWithoutNaNOutput) {
  // Finite weights whose activations overflow fp32 (1e20 * 1e20): the loss and gradient
  // turn NaN/Inf inside the run. This must be a clear error, never a NaN eigenvalue.
  Model m = random_mlp({4, 4, 2}, Activation::Identity, 1);
  for (Layer& l : m.layers) std::fill(l.weight.begin(), l.weight.end(), 1e20);
  const std::string model = tmp("overflow_model.safetensors");
  save_model(model, m, Loss::CE);
  const Dataset ds = teacher_dataset(random_mlp({4, 4, 2}, Activation::Tanh, 2), 16, 3);
  const std::string data = tmp("overflow_data.safetensors");
  write_safetensors(data, {make_tensor("inputs", {ds.n, ds.d}, ds.inputs),
                           make_tensor("labels", {ds.n}, ds.labels)});
  const CliResult r =
      run_cli("analyze --model " + model + " --data " + data + " --json -", "overflow");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("not finite"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--precision fp64"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;  // no report, so no NaN in one
  // In fp64 the same checkpoint is finite throughout: no error, no NaN.
  const CliResult r64 = run_cli(
      "analyze --model " + model + " --data " + data + " --json - --precision fp64 --max-hvps 200",
      "overflow64");
  EXPECT_TRUE(r64.code == 0 || r64.code == 4) << r64.err;
  EXPECT_EQ(r64.out.find("nan"), std::string::npos) << r64.out;
}

TEST(Determinism, SameSeedGivesByteIdenticalJsonWithoutTimings) {
  const std::string files = write_problem("det", {6, 5, 3}, 40);
  for (const char* prec : {"fp32", "fp64"}) {
    SCOPED_TRACE(prec);
    std::string json[2];
    for (int i = 0; i < 2; ++i) {
      const std::string out = tmp(std::string("det_") + prec + std::to_string(i) + ".json");
      const CliResult r = run_cli("analyze " + files + " --top 3 --bottom 2 --block 2 --seed 5" +
                                      " --no-timings --precision " + prec + " --json " + out,
                                  "det");
      ASSERT_EQ(r.code, 0) << r.err;
      json[i] = slurp(out);
    }
    EXPECT_EQ(json[0], json[1]);
    const auto j = nlohmann::json::parse(json[0]);
    EXPECT_FALSE(j.contains("seconds"));
    EXPECT_FALSE(j["interrupted"].get<bool>());
  }
}

TEST(MemoryBudget, TooSmallForTheBasisIsAUsageErrorSayingHowMuch) {
  const std::string files = write_problem("mem", {6, 5, 3}, 40);
  const CliResult r = run_cli("analyze " + files + " --max-memory 1K", "mem_small");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("needs about"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--max-memory"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  const CliResult bad = run_cli("analyze " + files + " --max-memory 0.0001", "mem_bad");
  EXPECT_EQ(bad.code, 2) << bad.err;
}

TEST(MemoryBudget, TightBudgetShrinksChunksAndGivesTheSameValues) {
  const std::string files = write_problem("memfit", {6, 5, 3}, 40);
  const std::string args = "analyze " + files + " --top 3 --bottom 2 --precision fp64 --json -";
  const CliResult wide = run_cli(args, "mem_wide");
  // About 77 KiB go to the basis and the data; the rest forces two chunks of samples.
  const CliResult tight = run_cli(args + " --max-memory 100K", "mem_tight");
  ASSERT_EQ(wide.code, 0) << wide.err;
  ASSERT_EQ(tight.code, 0) << tight.err;
  const auto a = nlohmann::json::parse(wide.out), b = nlohmann::json::parse(tight.out);
  for (const char* end : {"top", "bottom"}) {
    ASSERT_EQ(a[end].size(), b[end].size());
    for (size_t i = 0; i < a[end].size(); ++i)
      EXPECT_NEAR(a[end][i]["value"].get<double>(), b[end][i]["value"].get<double>(), 1e-9);
  }
}

// Raises the cancel flag after `after` products, as a signal arriving mid-run would.
class CancellingOperator final : public CurvatureOperator<double> {
 public:
  CancellingOperator(DenseOperator<double>& op, std::atomic<bool>& flag, int64_t after)
      : op_(op), flag_(flag), after_(after) {}
  int64_t dim() const override { return op_.dim(); }
  int64_t max_block() const override { return op_.max_block(); }
  Where where() const override { return Where::Host; }
  void apply(BlockView<const double> X, BlockView<double> Y) override {
    op_.apply(X, Y);
    this->count_products(X.cols);
    if (this->products() >= after_) flag_ = true;
  }

 private:
  DenseOperator<double>& op_;
  std::atomic<bool>& flag_;
  int64_t after_;
};

TEST(Interrupt, LanczosStopsAtTheNextBlockWithEstimatesAndNoConvergedFlags) {
  const int64_t n = 400;  // 1-D Laplacian: eigenvalues in (0, 4), tightly clustered
  std::vector<double> a(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    a[i + i * n] = 2;
    if (i + 1 < n) a[i + (i + 1) * n] = a[(i + 1) + i * n] = -1;
  }
  DenseOperator<double> dense(a, n);
  std::atomic<bool> flag{false};
  CancellingOperator op(dense, flag, 60);
  CpuSpace<double> space;
  LanczosOptions lo;
  lo.top = 4;
  lo.bottom = 4;
  lo.block = 2;
  lo.tol = 1e-14;
  lo.cancel = &flag;
  const LanczosResult<double> r = BlockLanczos<double>(op, space).compute(lo);
  EXPECT_TRUE(r.interrupted);
  EXPECT_FALSE(r.converged);
  EXPECT_LE(r.products, 62);  // stopped at the next block, no final residual products
  ASSERT_EQ(r.top.size(), 4u);
  for (const auto* end : {&r.top, &r.bottom}) {
    for (const RitzValue& v : *end) {
      EXPECT_FALSE(v.converged);
      EXPECT_GT(v.value, 0.0);
      EXPECT_LT(v.value, 4.0);
      EXPECT_TRUE(std::isfinite(v.residual));
    }
  }
  EXPECT_GE(r.top[0].value, r.top[1].value);
  // Without a cancel request the same options run to convergence, not interrupted.
  lo.cancel = nullptr;
  lo.tol = 1e-8;
  const LanczosResult<double> full = BlockLanczos<double>(dense, space).compute(lo);
  EXPECT_FALSE(full.interrupted);
  EXPECT_TRUE(full.converged);
}

// Starts a long run, sends `sig` after `delay`, and returns the exit code (-1 when the
// process did not end within a minute after the signal, or died of a signal itself).
int interrupt_run(const std::vector<std::string>& args, int sig, std::chrono::milliseconds delay) {
  std::vector<char*> argv;
  std::vector<std::string> owned = args;
  for (std::string& a : owned) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(120);
    execv(argv[0], argv.data());
    _exit(127);
  }
  std::this_thread::sleep_for(delay);
  kill(pid, sig);
  // Again at once, as `timeout` does (to the process and to its group): the same request,
  // which must not cost the partial report.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  kill(pid, sig);
  int status = 0;
  for (int i = 0; i < 600; ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

TEST(Interrupt, SigtermAndSigintWritePartialReportAndExit143And130) {
  // Dozens of clustered Gauss-Newton eigenvalues at a tolerance near fp64 rounding: this
  // runs for minutes unless stopped.
  const std::string model = tmp("long_model.safetensors"), data = tmp("long_data.safetensors");
  const Dataset ds = teacher_dataset(random_mlp({48, 48, 48, 10}, Activation::Tanh, 21), 1500, 22);
  save_model(model, random_mlp({48, 48, 48, 10}, Activation::Tanh, 23), Loss::CE);
  write_safetensors(data, {make_tensor("inputs", {ds.n, ds.d}, ds.inputs),
                           make_tensor("labels", {ds.n}, ds.labels)});
  for (const int sig : {SIGTERM, SIGINT}) {
    SCOPED_TRACE(sig);
    const std::string out = tmp("long_" + std::to_string(sig) + ".json");
    std::remove(out.c_str());
    const int code = interrupt_run(
        {HSPEC_CLI_PATH, "analyze",   "--model",     model, "--data",      data,   "--top", "5",
         "--bottom",     "40",        "--curvature", "ggn", "--precision", "fp64", "--tol", "1e-15",
         "--max-hvps",   "100000000", "--json",      out},
        sig, std::chrono::milliseconds(1500));
    EXPECT_EQ(code, 128 + sig);
    const auto j = nlohmann::json::parse(slurp(out));  // throws (fails) when not JSON
    EXPECT_TRUE(j["interrupted"].get<bool>());
    EXPECT_FALSE(j["converged"].get<bool>());
    EXPECT_FALSE(j["top"].empty());
    for (const char* end : {"top", "bottom"}) {
      for (const auto& v : j[end]) {
        EXPECT_FALSE(v["converged"].get<bool>());
        EXPECT_TRUE(std::isfinite(v["value"].get<double>()));
        EXPECT_TRUE(std::isfinite(v["residual"].get<double>()));
      }
    }
  }
}

}  // namespace
}  // namespace hspec
