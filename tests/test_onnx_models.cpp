// End to end on the PyTorch fixtures: the graph engine's loss, gradient, Hessian- and
// Gauss-Newton-vector products and extreme eigenvalues on imported ONNX models, against the
// float64 references of tests/fixtures/make_onnx_fixtures.py (also after --params with the
// perturbed state_dict), and the CLI's --params and compare --graph on them.
#include <gtest/gtest.h>

#if HSPEC_WITH_ONNX
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_test_util.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/formats/onnx.hpp"
#include "hspec/formats/safetensors.hpp"
#include "hspec/graph/graph_operator.hpp"
#include "hspec/solvers/exact.hpp"

namespace hspec {
namespace {

std::string fixture(const std::string& name) {
  return std::string(HSPEC_FIXTURES) + "/onnx/" + name;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::fabs(v));
  return m;
}

// Checks one graph (optionally with --params applied) against the references stored under
// `prefix` ("" for the true state_dict, "perturbed." for the perturbed one).
void check_against_reference(const std::string& onnx, const std::string& model,
                             const std::string& params, const std::string& prefix) {
  SCOPED_TRACE(onnx + " " + prefix);
  Graph g = load_onnx(fixture(onnx));
  if (!params.empty()) apply_params(g, fixture(params));
  const Dataset ds = load_dataset(fixture(model + "_data.safetensors"));
  const SafeTensorsFile ref(fixture(model + "_ref.safetensors"));
  const int64_t p = g.num_params();

  for (Curvature c : {Curvature::Hessian, Curvature::GGN}) {
    GraphOperatorOptions opt;
    opt.curvature = c;
    opt.loss = Loss::CE;
    opt.max_block = 8;
    GraphCurvatureOperator<double> op(g, ds, opt);
    ASSERT_EQ(op.dim(), p);
    EXPECT_NEAR(op.loss_value(), ref.read_double(prefix + "loss")[0], 1e-10);
    const auto grad = ref.read_double(prefix + "gradient");
    EXPECT_LE(max_abs_diff(op.gradient(), grad), 1e-10 * std::max(1.0, max_abs(grad)));

    const auto dirs = ref.read_double(prefix + "directions");
    const auto want = ref.read_double(prefix + (c == Curvature::Hessian ? "hvp" : "gnvp"));
    const int64_t k = int64_t(dirs.size()) / p;
    std::vector<double> y(dirs.size());
    op.apply(BlockView<const double>(dirs.data(), p, k), BlockView<double>(y.data(), p, k));
    EXPECT_LE(max_abs_diff(y, want), 1e-9 * std::max(1.0, max_abs(want)));

    if (c != Curvature::Hessian) continue;
    // Dense Hessian from identity blocks, then LAPACK: top-3 and bottom-1 eigenvalues.
    std::vector<double> h(size_t(p * p)), eye(size_t(p * 8));
    for (int64_t j0 = 0; j0 < p; j0 += 8) {
      const int64_t cols = std::min<int64_t>(8, p - j0);
      std::fill(eye.begin(), eye.end(), 0.0);
      for (int64_t j = 0; j < cols; ++j) eye[size_t(j * p + j0 + j)] = 1.0;
      op.apply(BlockView<const double>(eye.data(), p, cols),
               BlockView<double>(h.data() + j0 * p, p, cols));
    }
    std::vector<double> w(static_cast<size_t>(p));
    lapack_eigensolver().solve(p, h.data(), p, w.data());
    const auto top = ref.read_double(prefix + "eig_top");
    const auto bottom = ref.read_double(prefix + "eig_bottom");
    for (size_t i = 0; i < top.size(); ++i)
      EXPECT_NEAR(w[size_t(p) - 1 - i], top[i], 1e-8 * std::fabs(top[0]));
    EXPECT_NEAR(w[0], bottom[0], 1e-8 * std::fabs(top[0]));
  }
}

TEST(OnnxModels, ProductsAndEigenvaluesMatchPyTorch) {
  const std::vector<std::pair<std::string, std::string>> all = {
      {"cnn_dynamo.onnx", "cnn"},       {"cnn_legacy.onnx", "cnn"},
      {"resnet_dynamo.onnx", "resnet"}, {"resnet_legacy.onnx", "resnet"},
      {"gelu_dynamo.onnx", "gelu"},     {"gelu_legacy.onnx", "gelu"}};
  for (const auto& [onnx, model] : all) {
    check_against_reference(onnx, model, "", "");
    check_against_reference(onnx, model, model + "_perturbed.safetensors", "perturbed.");
  }
}

TEST(OnnxModels, CliAnalyzeWithParams) {
  const std::string err = testutil::scratch("onnx_", "cli.err");
  const std::string base = "analyze --model " + fixture("cnn_legacy.onnx") + " --data " +
                           fixture("cnn_data.safetensors") + " --top 3 --bottom 1 --exact";
  const auto plain = testutil::run_cli(base, err);
  EXPECT_EQ(plain.code, 0) << plain.err;
  const auto perturbed =
      testutil::run_cli(base + " --params " + fixture("cnn_perturbed.safetensors"), err);
  EXPECT_EQ(perturbed.code, 0) << perturbed.err;
  EXPECT_NE(plain.out, perturbed.out);  // --params really changes the answer
  // The true state_dict against the BatchNorm-folded default export: exit 3, with advice.
  const auto folded = testutil::run_cli("analyze --model " + fixture("cnn_folded.onnx") +
                                            " --data " + fixture("cnn_data.safetensors") +
                                            " --params " + fixture("cnn.safetensors"),
                                        err);
  EXPECT_EQ(folded.code, 3);
  EXPECT_NE(folded.err.find("dynamo=True, optimize=False"), std::string::npos) << folded.err;
  std::remove(err.c_str());
}

// compare --graph: every checkpoint is a state_dict for the one graph; its rows carry the
// fp64 reference eigenvalues of the true and the perturbed state_dict.
TEST(OnnxModels, CompareGraphWithStateDicts) {
  const std::string err = testutil::scratch("onnx_", "compare.err");
  const auto run = testutil::run_cli(
      "compare --graph " + fixture("cnn_legacy.onnx") + " " + fixture("cnn.safetensors") + " " +
          fixture("cnn_perturbed.safetensors") + " --data " + fixture("cnn_data.safetensors") +
          " --precision fp64 --top 1 --bottom 1 --exact --jsonl -",
      err);
  ASSERT_EQ(run.code, 0) << run.err;
  const SafeTensorsFile ref(fixture("cnn_ref.safetensors"));
  std::istringstream lines(run.out);
  std::string line;
  int rows = 0;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    const std::string ckpt = j.at("checkpoint");
    const std::string prefix = ckpt.find("perturbed") != std::string::npos ? "perturbed." : "";
    const double top = ref.read_double(prefix + "eig_top")[0];
    EXPECT_NEAR(j.at("top").at(0).at("value").get<double>(), top, 1e-8 * std::fabs(top)) << ckpt;
    ++rows;
  }
  EXPECT_EQ(rows, 2);
  std::remove(err.c_str());
}

}  // namespace
}  // namespace hspec
#endif
