// The graph path of `hspec analyze`: an MLP checkpoint (which runs as a graph) must give the
// eigenvalues of the MLP reference operator's dense matrix, also through the test hook
// (run_analyze_graph, since this build may not read ONNX files); the report names the
// parameters, and graph-only option rules hold.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_test_util.hpp"
#include "hspec/backends/cuda/cuda_compute.hpp"
#include "hspec/device.hpp"
#include "hspec/error.hpp"
#include "hspec/formats/safetensors.hpp"
#include "hspec/graph/analyze_graph.hpp"
#include "hspec/mlp/workloads.hpp"
#include "hvp_test_util.hpp"

namespace hspec {
namespace {

struct GraphFiles {
  std::string model = testutil::scratch("graph_", "model.safetensors");
  std::string data = testutil::scratch("graph_", "data.safetensors");
  GraphFiles() {
    const Model teacher = random_mlp({6, 5, 3}, Activation::Tanh, 4);
    const Dataset ds = teacher_dataset(teacher, 40, 5);
    save_model(model, random_mlp({6, 5, 3}, Activation::Tanh, 6), Loss::CE);
    write_safetensors(data, {make_tensor("inputs", {ds.n, ds.d}, ds.inputs),
                             make_tensor("labels", {ds.n}, ds.labels)});
  }
};

AnalyzeOptions options(const GraphFiles& f) {
  AnalyzeOptions o;
  o.model_path = f.model;
  o.data_path = f.data;
  o.top = 3;
  o.bottom = 2;
  o.precision = Precision::Fp64;
  o.tol = 1e-10;
  o.seed = 3;
  o.timings = false;
  o.device = parse_device("cpu");
  return o;
}

// The reference: the dense matrix of the MLP reference operator (an independent
// implementation of the same products), its loss and gradient, and LAPACK's eigenvalues.
struct DenseReference {
  double loss = 0, grad_norm = 0;
  std::vector<double> eigenvalues;  // ascending
};
DenseReference dense_reference(const GraphFiles& f, Curvature c) {
  const Model m = load_model(f.model);
  const Dataset ds = load_dataset(f.data);
  MlpReferenceOperator<double> op(m, ds, hvptest::options(Loss::CE, c));
  const int64_t p = op.dim();
  return {op.loss_value(), op.grad_norm(),
          hvptest::eigenvalues(hvptest::symmetrised(hvptest::dense_from_operator(op), p), p)};
}

void expect_ends_match(const AnalyzeReport& r, const DenseReference& ref) {
  ASSERT_TRUE(r.converged);
  const std::vector<double>& w = ref.eigenvalues;
  const double scale = std::max(std::abs(w.front()), std::abs(w.back()));
  EXPECT_EQ(r.params, int64_t(w.size()));
  EXPECT_NEAR(r.loss_value, ref.loss, 1e-13);
  EXPECT_NEAR(r.grad_norm, ref.grad_norm, 1e-13);
  ASSERT_EQ(r.top.size(), 3u);
  ASSERT_EQ(r.bottom.size(), 2u);
  for (size_t i = 0; i < r.top.size(); ++i)
    EXPECT_NEAR(r.top[i].value, w[w.size() - 1 - i], 1e-9 * scale) << "top " << i;
  for (size_t i = 0; i < r.bottom.size(); ++i)
    EXPECT_NEAR(r.bottom[i].value, w[i], 1e-9 * scale) << "bottom " << i;
}

TEST(GraphAnalyze, MlpCheckpointMatchesTheReferenceOperatorsDenseSpectrum) {
  const GraphFiles f;
  for (const char* curv : {"hessian", "ggn"}) {
    SCOPED_TRACE(curv);
    AnalyzeOptions o = options(f);
    o.curvature = parse_curvature(curv);
    const DenseReference ref = dense_reference(f, o.curvature);
    {
      SCOPED_TRACE("run_analyze on the checkpoint");
      expect_ends_match(run_analyze(o), ref);
    }
    {
      SCOPED_TRACE("run_analyze_graph on graph_from_mlp");
      expect_ends_match(run_analyze_graph(o, graph_from_mlp(load_model(f.model))), ref);
    }
  }
  AnalyzeOptions o = options(f);
  o.exact = true;
  const DenseReference ref = dense_reference(f, Curvature::Hessian);
  const AnalyzeReport r = run_analyze(o);
  ASSERT_EQ(r.eigenvalues.size(), ref.eigenvalues.size());
  for (size_t i = 0; i < ref.eigenvalues.size(); ++i)
    EXPECT_NEAR(r.eigenvalues[i], ref.eigenvalues[i], 1e-12 * std::abs(ref.eigenvalues.back()));
}

TEST(GraphAnalyze, ReportNamesTheParameters) {
  const GraphFiles f;
  AnalyzeOptions o = options(f);
  o.precision = Precision::Fp32;
  Graph g = graph_from_mlp(load_model(f.model));
  g.source = "net.onnx";
  const AnalyzeReport r = run_analyze_graph(o, g);
  const auto j = nlohmann::json::parse(report_json(r));
  ASSERT_EQ(j["parameters"].size(), 4u);
  EXPECT_EQ(j["parameters"][0]["name"], "0.weight");
  EXPECT_EQ(j["parameters"][0]["shape"], nlohmann::json({5, 6}));
  EXPECT_EQ(j["parameters"][3]["name"], "2.bias");
  EXPECT_EQ(j["parameters"][3]["shape"], nlohmann::json({3}));
  EXPECT_TRUE(j["activation"].is_null());
  EXPECT_TRUE(j["layers"].empty());
  EXPECT_EQ(j["params"], 53);
  EXPECT_NE(report_summary(r).find("graph net.onnx, 3 nodes (53 parameters in 4 tensors, loss ce)"),
            std::string::npos)
      << report_summary(r);
}

TEST(GraphAnalyze, OptionRulesForGraphModels) {
  const GraphFiles f;
  const Graph g = graph_from_mlp(load_model(f.model));
  AnalyzeOptions o = options(f);
  EXPECT_THROW(parse_device("gpu"), UsageError);  // the CLI's parse, before any run
  o.device = parse_device("cpu");
  o.precision = Precision::Tf32;  // a tensor-core format: CUDA only
  EXPECT_THROW(run_analyze_graph(o, g), UsageError);
  o = options(f);
  o.activation = Activation::Relu;
  EXPECT_THROW(run_analyze_graph(o, g), UsageError);
  o = options(f);
  o.max_memory = 4096;
  EXPECT_THROW(run_analyze_graph(o, g), UsageError);
}

// Without a usable device, graph models get the MLP path's device rules: --device cuda is a
// usage error carrying the runtime's reason, --device auto runs on the CPU and says why.
// (With a device, tests/gpu/test_gpu_graph_operator.cpp runs them on it.)
TEST(GraphAnalyze, DeviceRulesWithoutAGpu) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present (tests/gpu covers it)";
  const GraphFiles f;
  const Graph g = graph_from_mlp(load_model(f.model));
  AnalyzeOptions o = options(f);
  o.device = parse_device("cuda:0");
  try {
    run_analyze_graph(o, g);
    FAIL() << "--device cuda accepted without a device";
  } catch (const UsageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(built_with_cuda() ? "no usable CUDA device (" : "built without CUDA"),
              std::string::npos)
        << what;
  }
  // The compute backend itself: a DeviceError naming the reason.
  try {
    make_cuda_compute<float>(0);
    FAIL() << "a CUDA compute backend without a device";
  } catch (const DeviceError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(built_with_cuda() ? "no usable CUDA device" : "built without CUDA"),
              std::string::npos)
        << what;
  }
  o.device = parse_device("auto");
  const AnalyzeReport r = run_analyze_graph(o, g);
  EXPECT_EQ(r.backend, "cpu");
  if (built_with_cuda()) {
    EXPECT_EQ(r.device.rfind("cpu (CUDA unavailable: ", 0), 0u) << r.device;
  } else {
    EXPECT_EQ(r.device, "cpu");
  }
}

TEST(GraphAnalyze, GraphModelsAreRecognised) {
  const GraphFiles f;
  EXPECT_FALSE(is_graph_model(f.model));
  EXPECT_TRUE(is_graph_model("some/net.onnx"));
  const std::string magic = testutil::scratch("graph_", "model.bin");
  std::ofstream(magic, std::ios::binary) << '\x08' << '\x07';
  EXPECT_TRUE(is_graph_model(magic));
  // A safetensors file whose header length's low byte is 0x08 is still not ONNX.
  const std::string st = testutil::scratch("graph_", "len8.safetensors.bin");
  std::ofstream(st, std::ios::binary) << std::string("\x08\x01\0\0\0\0\0\0{", 9);
  EXPECT_FALSE(is_graph_model(st));
  // run_analyze sends .onnx files to the ONNX importer (absent from this build: it says so).
  AnalyzeOptions o = options(f);
  o.model_path = magic;
  try {
    run_analyze(o);
    FAIL() << "an ONNX-looking file ran the MLP path";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ONNX"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hspec
