// The ONNX importer on PyTorch-exported fixtures (tests/fixtures/make_onnx_fixtures.py):
// parameters and their order against the state_dict, constants, folded shape subgraphs,
// initializer values read independently through the safetensors reader, and apply_params.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "cli_test_util.hpp"
#include "hspec/error.hpp"
#include "hspec/formats/onnx.hpp"
#include "hspec/formats/safetensors.hpp"
#include "hspec/graph/graph_ops.hpp"

namespace hspec {
namespace {

// --params replaces an ONNX graph's initializers; with a safetensors checkpoint it is a
// usage error (exit 2), whether or not this build reads ONNX.
TEST(OnnxCli, ParamsNeedsAnOnnxModel) {
  const std::string err = testutil::scratch("onnx_", "cli.err");
  const auto r = testutil::run_cli(
      "analyze --model m.safetensors --data d.safetensors --params p.safetensors", err);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--params"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--model M.onnx"), std::string::npos) << r.err;
  std::remove(err.c_str());
}

#if HSPEC_WITH_ONNX

std::string fixture(const std::string& name) {
  return std::string(HSPEC_FIXTURES) + "/onnx/" + name;
}

struct Exported {
  const char* onnx;
  const char* model;  // the state_dict and reference prefix
  std::vector<int64_t> sample_shape;
};

const std::vector<Exported>& exported() {
  static const std::vector<Exported> all = {
      {"cnn_dynamo.onnx", "cnn", {1, 8, 8}},         {"cnn_legacy.onnx", "cnn", {1, 8, 8}},
      {"resnet_dynamo.onnx", "resnet", {1, 12, 12}}, {"resnet_legacy.onnx", "resnet", {1, 12, 12}},
      {"gelu_dynamo.onnx", "gelu", {1, 8, 8}},       {"gelu_legacy.onnx", "gelu", {1, 8, 8}}};
  return all;
}

// The parameters as PyTorch's named_parameters() lists them, from the reference file.
std::vector<std::pair<std::string, std::vector<int64_t>>> reference_parameters(
    const std::string& model) {
  const SafeTensorsFile ref(fixture(model + "_ref.safetensors"));
  const auto list = nlohmann::json::parse(ref.metadata().at("parameters"));
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (const auto& p : list) out.emplace_back(p["name"], p["shape"].get<std::vector<int64_t>>());
  return out;
}

TEST(OnnxImport, BuiltWithOnnx) {
  EXPECT_TRUE(built_with_onnx());
}

TEST(OnnxImport, ParametersAreTheStateDictsInPyTorchOrder) {
  for (const auto& e : exported()) {
    SCOPED_TRACE(e.onnx);
    const Graph g = load_onnx(fixture(e.onnx));
    const auto ref = reference_parameters(e.model);
    ASSERT_EQ(g.parameters.size(), ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      EXPECT_EQ(g.parameters[i], ref[i].first);
      EXPECT_EQ(g.initializers.at(g.parameters[i]).shape, ref[i].second) << ref[i].first;
      EXPECT_TRUE(g.initializers.at(g.parameters[i]).is_float());
    }
    EXPECT_EQ(g.input, "x");
    EXPECT_EQ(g.input_shape, e.sample_shape);
    EXPECT_FALSE(g.input_is_int);
    EXPECT_EQ(g.output, "logits");
  }
}

TEST(OnnxImport, BatchNormRunningStatsAreConstants) {
  for (const auto& e : exported()) {
    SCOPED_TRACE(e.onnx);
    const Graph g = load_onnx(fixture(e.onnx));
    const std::set<std::string> params(g.parameters.begin(), g.parameters.end());
    int stats = 0;
    for (const auto& n : g.nodes) {
      if (n.op != "BatchNormalization") continue;
      ASSERT_EQ(n.inputs.size(), 5u);
      EXPECT_TRUE(params.count(n.inputs[1]) && params.count(n.inputs[2]));
      for (int k : {3, 4}) {
        EXPECT_FALSE(params.count(n.inputs[k])) << n.inputs[k];
        EXPECT_TRUE(g.initializers.count(n.inputs[k])) << n.inputs[k];
        ++stats;
      }
    }
    EXPECT_GE(stats, 6);
  }
}

TEST(OnnxImport, ShapeSubgraphsAreFolded) {
  for (const auto& e : exported()) {
    SCOPED_TRACE(e.onnx);
    const Graph g = load_onnx(fixture(e.onnx));
    std::set<std::string> produced = {g.input};
    for (const auto& n : g.nodes) {
      EXPECT_TRUE(is_graph_engine_op(n.op)) << n.op;
      for (const char* op : {"Shape", "Gather", "Concat", "Constant", "Expand", "CastLike"})
        EXPECT_NE(n.op, op);
      // The Graph contract: topological order, every input defined before use.
      bool any_data = false;
      for (const auto& in : n.inputs) {
        if (in.empty()) continue;
        EXPECT_TRUE(produced.count(in) || g.initializers.count(in)) << in;
        any_data = any_data || produced.count(in);
      }
      EXPECT_TRUE(any_data) << n.op << " computes on constants only";
      for (const auto& out : n.outputs) EXPECT_TRUE(produced.insert(out).second) << out;
      if (n.op == "Reshape") {
        // The sample axis stays symbolic (-1); the rest is the per-sample shape.
        const GraphTensor& target = g.initializers.at(n.inputs[1]);
        EXPECT_EQ(target.ints,
                  (std::vector<int64_t>{-1, e.model == std::string("resnet") ? 8 : 4}));
      }
    }
    EXPECT_TRUE(produced.count(g.output));
  }
}

// The dynamo exporter gives bias-free convolutions a zero bias built by a shape subgraph
// (Shape of the weight, Expand); it must fold into a constant, not become a parameter.
TEST(OnnxImport, DynamoZeroConvBiasIsAConstant) {
  const Graph g = load_onnx(fixture("resnet_dynamo.onnx"));
  const std::set<std::string> params(g.parameters.begin(), g.parameters.end());
  int biases = 0;
  for (const auto& n : g.nodes) {
    if (n.op != "Conv" || n.inputs.size() < 3 || n.inputs[2].empty()) continue;
    EXPECT_FALSE(params.count(n.inputs[2]));
    for (double v : g.initializers.at(n.inputs[2]).values) EXPECT_EQ(v, 0.0);
    ++biases;
  }
  EXPECT_EQ(biases, 4);
}

// Every state_dict tensor the graph holds has exactly its values (float32 widened exactly).
void expect_initializers_equal(const Graph& g, const std::string& state_dict) {
  const SafeTensorsFile sd(state_dict);
  int compared = 0;
  for (const auto& [name, info] : sd.tensors()) {
    if (name.find("num_batches_tracked") != std::string::npos) continue;
    ASSERT_TRUE(g.initializers.count(name)) << name;
    EXPECT_EQ(g.initializers.at(name).values, sd.read_double(name)) << name;
    ++compared;
  }
  EXPECT_GT(compared, 10);
}

TEST(OnnxImport, InitializerValuesEqualTheStateDict) {
  for (const auto& e : exported()) {
    SCOPED_TRACE(e.onnx);
    expect_initializers_equal(load_onnx(fixture(e.onnx)),
                              fixture(std::string(e.model) + ".safetensors"));
  }
}

TEST(OnnxImport, ApplyParamsReplacesExactlyTheStateDictsTensors) {
  for (const auto& e : exported()) {
    SCOPED_TRACE(e.onnx);
    const Graph before = load_onnx(fixture(e.onnx));
    Graph g = before;
    const std::string pert = fixture(std::string(e.model) + "_perturbed.safetensors");
    apply_params(g, pert);
    expect_initializers_equal(g, pert);
    const SafeTensorsFile sd(pert);
    for (const auto& [name, t] : g.initializers) {
      if (sd.has(name))
        EXPECT_NE(t.values, before.initializers.at(name).values) << name;
      else
        EXPECT_EQ(t.values, before.initializers.at(name).values) << name;
    }
    EXPECT_EQ(g.parameters, before.parameters);
    // Back to the true state_dict: the original values again.
    apply_params(g, fixture(std::string(e.model) + ".safetensors"));
    for (const auto& [name, t] : g.initializers)
      EXPECT_EQ(t.values, before.initializers.at(name).values) << name;
  }
}

TEST(OnnxImport, FoldedDefaultExportRefusesTheTrueStateDict) {
  // The default export folds BatchNorm into the Conv: the graph's stem.0.weight is the fused
  // weight and the BatchNorm parameters are gone.
  Graph g = load_onnx(fixture("cnn_folded.onnx"));
  EXPECT_TRUE(g.initializers.count("conv1.weight_bias"));
  EXPECT_FALSE(g.initializers.count("stem.1.weight"));
  try {
    apply_params(g, fixture("cnn.safetensors"));
    FAIL() << "no error";
  } catch (const InputError& err) {
    const std::string msg = err.what();
    EXPECT_NE(msg.find("cnn.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("is not in the graph"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'bn1.bias'"), std::string::npos) << msg;  // first missing by name
    EXPECT_NE(msg.find("dynamo=True, optimize=False"), std::string::npos) << msg;
  }
}

TEST(OnnxImport, LegacyDefaultExportTiesMergedInitializers) {
  // Fresh BatchNorm layers fold into equal biases, which the legacy exporter merges.
  try {
    load_onnx(fixture("cnn_legacy_default.onnx"));
    FAIL() << "no error";
  } catch (const InputError& err) {
    const std::string msg = err.what();
    EXPECT_NE(msg.find("'onnx::Conv_40' is used twice"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'/conv1/Conv'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'/conv2/Conv'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("dynamo=True, optimize=False"), std::string::npos) << msg;
  }
}

TEST(OnnxImport, LegacyExportMergesFreshBatchNormWeightAndRunningVar) {
  // Even with do_constant_folding=False: a fresh BatchNorm's weight and running_var are
  // both ones, and the legacy exporter keeps one initializer for the two.
  try {
    load_onnx(fixture("cnn_legacy_fresh.onnx"));
    FAIL() << "no error";
  } catch (const InputError& err) {
    const std::string msg = err.what();
    EXPECT_NE(msg.find("'stem.1.weight' is used twice, as BatchNormalization input 1"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("and as BatchNormalization input 4"), std::string::npos) << msg;
  }
}

void expect_apply_fails(const std::vector<TensorData>& tensors, const std::string& needle) {
  const std::string path = testutil::scratch("onnx_", "params.safetensors");
  write_safetensors(path, tensors);
  Graph g = load_onnx(fixture("cnn_legacy.onnx"));
  const Graph before = g;
  try {
    apply_params(g, path);
    ADD_FAILURE() << "no error for " << needle;
  } catch (const InputError& err) {
    EXPECT_NE(std::string(err.what()).find(needle), std::string::npos) << err.what();
  }
  for (const auto& [name, t] : g.initializers)  // nothing changed
    EXPECT_EQ(t.values, before.initializers.at(name).values) << name;
  std::remove(path.c_str());
}

TEST(OnnxImport, ApplyParamsRefusesMismatches) {
  const std::vector<double> bias3 = {0.5, 0.25, 0.125};
  expect_apply_fails({make_tensor("fc.bias", {3}, bias3),
                      make_tensor("fc.weight", {4, 3}, std::vector<double>(12))},
                     "'fc.weight' has shape [4, 3], the graph's has [3, 4]");
  expect_apply_fails({make_tensor("fc.bias", {3}, std::vector<int64_t>{1, 2, 3})},
                     "'fc.bias' is I64");
  expect_apply_fails({make_tensor("fc.bias", {3}, bias3), make_tensor("head.bias", {3}, bias3)},
                     "'head.bias' is not in the graph");
  expect_apply_fails({make_tensor("fc.bias", {3}, std::vector<double>{1, NAN, 0})}, "fc.bias");
}

#endif  // HSPEC_WITH_ONNX

}  // namespace
}  // namespace hspec
