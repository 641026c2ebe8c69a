// The verdict rule, the analyze report's trace/density/verdict keys and --plot, and
// `hspec compare` end to end: ordering by sharpness on models of known curvature, and a
// failing checkpoint reported while the others still run.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_test_util.hpp"
#include "hspec/backends/cpu/blas.hpp"
#include "hspec/formats/safetensors.hpp"
#include "hspec/mlp/model.hpp"
#include "hspec/random.hpp"
#include "hspec/report/verdict.hpp"

namespace hspec {
namespace {

std::string tmp(const std::string& name) {
  return testutil::scratch("vc_", name);
}

using testutil::CliResult;
using testutil::slurp;

CliResult run_cli(const std::string& args) {
  return testutil::run_cli(args, tmp("stderr"));
}

TEST(VerdictRule, SaddleFlatSharp) {
  VerdictInput in;
  in.have_extremes = true;
  in.lambda_max = 10;
  in.lambda_min = -1;  // 10% of lambda_max: saddle
  EXPECT_EQ(decide_verdict(in).label, "saddle");
  in.lambda_min = -0.4;  // 4%: the small negative tail of a minimum
  Verdict v = decide_verdict(in);
  EXPECT_EQ(v.label, "flat minimum");  // 10 * 0.1 / 2 = 0.5 at the reference lr
  EXPECT_DOUBLE_EQ(v.ratio, 0.04);
  EXPECT_DOUBLE_EQ(v.stability, 0.5);
  EXPECT_FALSE(v.lr_given);
  in.lr = 0.3;  // 10 * 0.3 / 2 = 1.5 > 1: GD diverges along the top eigenvector
  v = decide_verdict(in);
  EXPECT_EQ(v.label, "sharp minimum");
  EXPECT_DOUBLE_EQ(v.stability, 1.5);
  EXPECT_TRUE(v.lr_given);
  in.lr = 0.19;
  EXPECT_EQ(decide_verdict(in).label, "flat minimum");
  in.lr = 0;
  in.lambda_max = 25;  // above 2 / 0.1 = 20 without --lr
  in.lambda_min = 0.5;
  EXPECT_EQ(decide_verdict(in).label, "sharp minimum");
  in.lambda_max = -0.1;
  in.lambda_min = -2;
  EXPECT_EQ(decide_verdict(in).label, "saddle");
  in.have_extremes = false;
  EXPECT_EQ(decide_verdict(in).label, "");
}

// Logistic regression on fixed data with weights c * w0: the Hessian X^T diag(p(1-p)) X / N
// shrinks in the Loewner order as c grows (p(1-p) falls with |z|), so lambda_max is
// largest at c = 0, where it is lambda_max(X^T X) / (4 N) in closed form.
struct Logistic {
  std::string data;
  double lambda_max_at_0 = 0;
};

Logistic write_logistic(const std::vector<double>& scales) {
  const int64_t n = 200, d = 5;
  std::vector<float> x(n * d);
  std::vector<int64_t> y(n);
  std::vector<double> xtx((d + 1) * (d + 1), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j)
      x[i * d + j] = static_cast<float>(rng::gaussian(41, 1, i * d + j));
    y[i] = rng::uniform(41, 2, i) < 0.5 ? 0 : 1;
    for (int64_t a = 0; a <= d; ++a)
      for (int64_t b = 0; b <= d; ++b)
        xtx[a + b * (d + 1)] += (a < d ? x[i * d + a] : 1.0) * (b < d ? x[i * d + b] : 1.0);
  }
  Logistic L;
  L.data = tmp("logistic_data.safetensors");
  write_safetensors(L.data, {make_tensor("inputs", {n, d}, x), make_tensor("labels", {n}, y)});
  std::vector<double> w(d + 1);
  blas::syev(d + 1, xtx.data(), d + 1, w.data());
  L.lambda_max_at_0 = w.back() / (4.0 * n);
  for (double c : scales) {
    Model m;
    Layer l;
    l.name = "0";
    l.in = d;
    l.out = 1;
    for (int64_t j = 0; j < d; ++j) l.weight.push_back(c * rng::gaussian(42, 1, j));
    l.bias.push_back(c * 0.3);
    m.layers.push_back(l);
    std::ostringstream name;
    name << "logistic_c" << c << ".safetensors";
    save_model(tmp(name.str()), m, Loss::BCE);
  }
  return L;
}

TEST(CompareOrder, SortedBySharpnessOnKnownCurvature) {
  const Logistic L = write_logistic({0, 1, 3});
  const std::string jsonl = tmp("order.jsonl");
  const CliResult r =
      run_cli("compare " + tmp("logistic_c1.safetensors") + " " + tmp("logistic_c3.safetensors") +
              " " + tmp("logistic_c0.safetensors") + " --data " + L.data +
              " --precision fp64 --top 1 --bottom 1 --trace --jsonl " + jsonl);
  ASSERT_EQ(r.code, 0) << r.out;
  // Table: the sharpest (c = 0) first.
  const size_t p0 = r.out.find("logistic_c0"), p1 = r.out.find("logistic_c1"),
               p3 = r.out.find("logistic_c3");
  ASSERT_NE(p0, std::string::npos);
  EXPECT_LT(p0, p1);
  EXPECT_LT(p1, p3);
  std::istringstream lines(slurp(jsonl));
  std::string line;
  std::vector<nlohmann::json> objs;
  while (std::getline(lines, line)) objs.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(objs.size(), 3u);
  const char* order[] = {"logistic_c0", "logistic_c1", "logistic_c3"};
  double prev = 1e300;
  for (int i = 0; i < 3; ++i) {
    EXPECT_NE(objs[i]["checkpoint"].get<std::string>().find(order[i]), std::string::npos);
    EXPECT_EQ(objs[i]["rank"], i + 1);
    EXPECT_EQ(objs[i]["exit_code"], 0);
    const double lmax = objs[i]["top"][0]["value"];
    EXPECT_LT(lmax, prev);
    prev = lmax;
    EXPECT_TRUE(objs[i]["trace"].is_object());
    EXPECT_EQ(objs[i]["verdict"]["label"], "flat minimum");  // PSD, small curvature
  }
  EXPECT_NEAR(objs[0]["top"][0]["value"].get<double>(), L.lambda_max_at_0,
              1e-9 * L.lambda_max_at_0);
}

TEST(CompareErrors, FailingCheckpointReportedOthersStillRun) {
  const Logistic L = write_logistic({0, 2});
  const std::string bad = tmp("not_a_checkpoint.safetensors");
  std::ofstream(bad) << "this is not a safetensors file";
  const std::string jsonl = tmp("errors.jsonl");
  const CliResult r = run_cli("compare " + tmp("logistic_c2.safetensors") + " " + bad + " " +
                              tmp("logistic_c0.safetensors") + " --data " + L.data +
                              " --precision fp64 --top 1 --bottom 1 --jsonl " + jsonl);
  EXPECT_EQ(r.code, 3) << r.out;  // the input error of the bad file, the others ran
  EXPECT_NE(r.out.find("FAILED"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("not_a_checkpoint"), std::string::npos);
  std::istringstream lines(slurp(jsonl));
  std::string line;
  int ok = 0, failed = 0;
  while (std::getline(lines, line)) {
    const nlohmann::json j = nlohmann::json::parse(line);
    if (j.contains("error")) {
      ++failed;
      EXPECT_EQ(j["exit_code"], 3);
      EXPECT_NE(j["checkpoint"].get<std::string>().find("not_a_checkpoint"), std::string::npos);
      EXPECT_FALSE(j["error"].get<std::string>().empty());
    } else {
      ++ok;
      EXPECT_EQ(j["exit_code"], 0);
      EXPECT_TRUE(j["top"].is_array());
    }
  }
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(failed, 1);
  // Usage errors stop before any work; --jsonl - prints only the JSON lines.
  EXPECT_EQ(run_cli("compare " + bad + " --data " + L.data + " --top -1").code, 2);
  EXPECT_EQ(run_cli("compare --data " + L.data).code, 2);
  const CliResult only = run_cli("compare " + tmp("logistic_c0.safetensors") + " --data " + L.data +
                                 " --top 1 --bottom 1 --jsonl -");
  EXPECT_EQ(only.code, 0);
  EXPECT_NO_THROW(nlohmann::json::parse(only.out));
}

TEST(VerdictReport, AnalyzeJsonHoldsTraceDensityVerdictAndPlot) {
  const Logistic L = write_logistic({1});
  const std::string model = tmp("logistic_c1.safetensors"), svg = tmp("plot.svg");
  const CliResult r =
      run_cli("analyze --model " + model + " --data " + L.data +
              " --precision fp64 --top 1 --bottom 1 --trace --density --probes 4 --steps 6"
              " --lr 1000 --plot " +
              svg + " --json -");
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  for (const char* k : {"estimate", "stderr", "hvps", "method"})
    EXPECT_TRUE(j["trace"].contains(k));
  EXPECT_EQ(j["trace"]["method"], "krylov-hutchpp");
  // Six parameters: the sketch spans the space, the trace is exact.
  EXPECT_EQ(j["trace"]["stderr"], 0.0);
  for (const char* k : {"nodes", "weights", "grid", "values", "sigma"})
    EXPECT_TRUE(j["density"].contains(k));
  double sum = 0;
  for (double w : j["density"]["weights"]) sum += w;
  EXPECT_NEAR(sum, 1.0, 1e-12);
  EXPECT_EQ(j["verdict"]["label"], "sharp minimum");  // lambda_max * 1000 / 2 > 1
  EXPECT_TRUE(j["verdict"]["lr_given"].get<bool>());
  EXPECT_GT(j["verdict"]["stability_ratio"].get<double>(), 1.0);
  EXPECT_NE(slurp(svg).find("<path id=\"density\""), std::string::npos);
  const CliResult text =
      run_cli("analyze --model " + model + " --data " + L.data + " --top 1 --bottom 1 --trace");
  EXPECT_EQ(text.code, 0);
  EXPECT_NE(text.out.find("verdict   flat minimum"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("trace     "), std::string::npos);
  EXPECT_EQ(run_cli("analyze --model " + model + " --data " + L.data + " --plot " + svg).code, 2);
  EXPECT_EQ(run_cli("analyze --model " + model + " --data " + L.data + " --trace-method x").code,
            2);
  EXPECT_EQ(run_cli("analyze --model " + model + " --data " + L.data + " --lr -1").code, 2);
  // The density's bases are checked against --max-memory before any work.
  EXPECT_EQ(run_cli("analyze --model " + model + " --data " + L.data +
                    " --density --steps 6 --probes 200 --max-memory 20K")
                .code,
            2);
  EXPECT_NE(slurp(tmp("stderr")).find("--density needs about"), std::string::npos);
  const CliResult ex = run_cli("analyze --model " + model + " --data " + L.data +
                               " --exact --density --top 1 --bottom 1 --json -");
  ASSERT_EQ(ex.code, 0);
  const nlohmann::json je = nlohmann::json::parse(ex.out);
  EXPECT_EQ(je["density"]["method"], "exact");
  EXPECT_EQ(je["density"]["nodes"].size(), 6u);
  EXPECT_TRUE(je["trace"].is_number());
}

}  // namespace
}  // namespace hspec
