// End-to-end tests of the hspec command line: files written by our own writers, the binary
// run as a user would, exit codes and one-line errors checked, eigenvalues compared with
// LAPACK on the dense Hessian.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_test_util.hpp"
#include "hspec/backends/cpu/blas.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/formats/safetensors.hpp"
#include "hspec/mlp/reference_operator.hpp"
#include "hspec/mlp/workloads.hpp"

namespace hspec {
namespace {

using CliRun = testutil::CliResult;

// Per process, so parallel tests (ctest -j) never read a file another one is rewriting.
std::string tmp(const std::string& name) {
  return testutil::scratch("cli_", name);
}

CliRun run_cli(const std::string& args) {
  return testutil::run_cli(args, tmp("stderr.txt"));
}

// A 6-5-3 tanh MLP and 40 labelled samples, written as a user would hand them to us.
struct Files {
  std::string model = tmp("model.safetensors"), data = tmp("data.safetensors");
  Files() {
    const Model teacher = random_mlp({6, 5, 3}, Activation::Tanh, 4);
    const Dataset ds = teacher_dataset(teacher, 40, 5);
    save_model(model, random_mlp({6, 5, 3}, Activation::Tanh, 6), Loss::CE);
    write_safetensors(data, {make_tensor("inputs", {ds.n, ds.d}, ds.inputs),
                             make_tensor("labels", {ds.n}, ds.labels)});
  }
};

std::vector<double> dense_eigenvalues(const std::string& model, const std::string& data,
                                      Curvature c) {
  const Model m = load_model(model);
  const Dataset ds = load_dataset(data);
  MlpReferenceOptions opt;
  opt.curvature = c;
  opt.max_block = 8;
  MlpReferenceOperator<double> op(m, ds, opt);
  const int64_t p = op.dim();
  std::vector<double> h(p * p), e(p * 8);
  for (int64_t j0 = 0; j0 < p; j0 += 8) {
    const int64_t k = std::min<int64_t>(8, p - j0);
    std::fill(e.begin(), e.end(), 0.0);
    for (int64_t j = 0; j < k; ++j) e[(j0 + j) + j * p] = 1.0;
    op.apply(BlockView<const double>(e.data(), p, k), BlockView<double>(h.data() + j0 * p, p, k));
  }
  for (int64_t i = 0; i < p; ++i)
    for (int64_t j = 0; j < i; ++j)
      h[i + j * p] = h[j + i * p] = 0.5 * (h[i + j * p] + h[j + i * p]);
  std::vector<double> w(p);
  blas::syev(p, h.data(), p, w.data());
  return w;
}

TEST(CliTest, AnalyzeMatchesDenseReferenceBothCurvaturesBothPrecisions) {
  Files f;
  for (const char* curv : {"hessian", "ggn"}) {
    const auto w = dense_eigenvalues(f.model, f.data, parse_curvature(curv));
    const double lmax = std::max(std::fabs(w.front()), std::fabs(w.back()));
    for (const char* prec : {"fp64", "fp32"}) {
      SCOPED_TRACE(std::string(curv) + " " + prec);
      const CliRun r = run_cli("analyze --model " + f.model + " --data " + f.data +
                               " --top 5 --bottom 5 --tol 1e-9 --json - --precision " + prec +
                               " --curvature " + curv);
      ASSERT_EQ(r.code, 0) << r.err;
      const auto j = nlohmann::json::parse(r.out);  // only JSON on stdout
      const double tol = std::string(prec) == "fp64" ? 1e-8 : 1e-4;
      ASSERT_EQ(j["top"].size(), 5u);
      ASSERT_EQ(j["bottom"].size(), 5u);
      for (int i = 0; i < 5; ++i) {
        EXPECT_NEAR(j["top"][i]["value"].get<double>(), w[w.size() - 1 - i], tol * lmax);
        EXPECT_NEAR(j["bottom"][i]["value"].get<double>(), w[i], tol * lmax);
        EXPECT_TRUE(j["top"][i]["converged"].get<bool>());
      }
      EXPECT_EQ(j["params"].get<int64_t>(), 6 * 5 + 5 + 5 * 3 + 3);
      EXPECT_EQ(j["samples"].get<int64_t>(), 40);
      EXPECT_EQ(j["curvature"].get<std::string>(), curv);
      EXPECT_EQ(j["precision"].get<std::string>(), prec);
      EXPECT_EQ(j["backend"].get<std::string>(), "cpu");
      EXPECT_GT(j["hvps"].get<int64_t>(), 0);
      for (const char* key : {"loss_value", "grad_norm", "seconds"}) EXPECT_TRUE(j.contains(key));
    }
  }
}

TEST(CliTest, SameSeedSameEigenvalues) {
  Files f;
  const std::string args =
      "analyze --model " + f.model + " --data " + f.data + " --json - --seed 7";
  const auto a = nlohmann::json::parse(run_cli(args).out),
             b = nlohmann::json::parse(run_cli(args).out);
  EXPECT_EQ(a["top"], b["top"]);
  EXPECT_EQ(a["bottom"], b["bottom"]);
  EXPECT_EQ(a["hvps"], b["hvps"]);
}

TEST(CliTest, HumanSummaryAndJsonFile) {
  Files f;
  const std::string json = tmp("report.json");
  std::remove(json.c_str());
  const CliRun r = run_cli("analyze --model " + f.model + " --data " + f.data + " --json " + json);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("top"), std::string::npos);
  std::ifstream in(json);
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["top"].size(), 5u);  // defaults: top 5, bottom 1
  EXPECT_EQ(j["bottom"].size(), 1u);
  EXPECT_EQ(j["precision"].get<std::string>(), "fp32");
}

TEST(CliTest, BudgetTooSmallExitsFourWithFlagsFalse) {
  Files f;
  const CliRun r = run_cli("analyze --model " + f.model + " --data " + f.data +
                           " --max-hvps 8 --tol 1e-12 --json -");
  EXPECT_EQ(r.code, 4) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["converged"].get<bool>());
  bool any_false = false;
  for (const auto& v : j["top"]) any_false |= !v["converged"].get<bool>();
  EXPECT_TRUE(any_false);
}

void expect_error(const std::string& args, int code, const std::string& needle) {
  SCOPED_TRACE(args);
  const CliRun r = run_cli(args);
  EXPECT_EQ(r.code, code) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;  // one line
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(CliTest, UsageErrorsExitTwo) {
  Files f;
  const std::string base = "analyze --model " + f.model + " --data " + f.data;
  expect_error("analyze --data " + f.data, 2, "--model");
  expect_error(base + " --curvature fisher", 2, "curvature");
  expect_error(base + " --precision fp16", 2, "precision");
  expect_error(base + " --block 0", 2, "block");
  expect_error(base + " --tol -1", 2, "tol");
  expect_error(base + " --top 0 --bottom 0", 2, "top");
  expect_error(base + " --device tpu", 2, "device");
  expect_error(base + " --bogus", 2, "bogus");
  expect_error(base + " --activation swish", 2, "activation");
}

TEST(CliTest, InputErrorsExitThreeNamingTheFile) {
  Files f;
  const std::string missing = tmp("no_such_file.safetensors");
  expect_error("analyze --model " + missing + " --data " + f.data, 3, missing);
  // Truncated checkpoint.
  const std::string cut = tmp("cut.safetensors");
  {
    std::ifstream in(f.model, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() - 7);
  }
  expect_error("analyze --model " + cut + " --data " + f.data, 3, cut);
  // Data whose width does not fit the model.
  const std::string wide = tmp("wide.safetensors");
  write_safetensors(wide, {make_tensor("inputs", {2, 7}, std::vector<float>(14, 0.5f)),
                           make_tensor("labels", {2}, std::vector<int64_t>{0, 1})});
  expect_error("analyze --model " + f.model + " --data " + wide, 3, "features");
  // Labels out of range for 3 classes.
  const std::string bad_labels = tmp("bad_labels.safetensors");
  write_safetensors(bad_labels, {make_tensor("inputs", {2, 6}, std::vector<float>(12, 0.5f)),
                                 make_tensor("labels", {2}, std::vector<int64_t>{0, 3})});
  expect_error("analyze --model " + f.model + " --data " + bad_labels, 3, "out of range");
  // NaN in the data.
  const std::string nan = tmp("nan.safetensors");
  std::vector<float> x(12, 0.5f);
  x[5] = std::nanf("");
  write_safetensors(nan, {make_tensor("inputs", {2, 6}, x),
                          make_tensor("labels", {2}, std::vector<int64_t>{0, 1})});
  expect_error("analyze --model " + f.model + " --data " + nan, 3, "NaN");
}

TEST(CliTest, VersionAndHelp) {
  const CliRun v = run_cli("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.out.find("hspec"), std::string::npos);
  const CliRun h = run_cli("analyze --help");
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.out.find("--curvature"), std::string::npos);
}

}  // namespace
}  // namespace hspec
