// Hostile ONNX files: a valid fixture mutated through the protobuf API (unknown ops, cycles,
// duplicate outputs, bad initializers, external data escaping its folder or running past its
// file, overflowing shapes, NaN parameters, subgraphs) and raw byte truncations. Each must
// end in one InputError naming the file and the problem.
#include <gtest/gtest.h>

#if HSPEC_WITH_ONNX
#include <onnx/onnx-ml.pb.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>

#include "cli_test_util.hpp"
#include "hspec/error.hpp"
#include "hspec/formats/onnx.hpp"

namespace hspec {
namespace {

std::string fixture(const std::string& name) {
  return std::string(HSPEC_FIXTURES) + "/onnx/" + name;
}

onnx::ModelProto read_model(const std::string& name) {
  onnx::ModelProto m;
  std::ifstream in(fixture(name), std::ios::binary);
  EXPECT_TRUE(m.ParseFromIstream(&in));
  return m;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// Loads `bytes` from a scratch .onnx file; expects an InputError that starts with the path
// and contains `needle`.
void expect_refused(const std::string& bytes, const std::string& needle,
                    const std::string& name = "hostile.onnx") {
  const std::string path = testutil::scratch("onnx_", name);
  write_file(path, bytes);
  try {
    load_onnx(path);
    ADD_FAILURE() << "loaded; expected: " << needle;
  } catch (const InputError& err) {
    const std::string msg = err.what();
    EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  std::remove(path.c_str());
}

void expect_mutation_refused(const std::string& base,
                             const std::function<void(onnx::ModelProto&)>& mutate,
                             const std::string& needle) {
  SCOPED_TRACE(needle);
  onnx::ModelProto m = read_model(base);
  mutate(m);
  expect_refused(m.SerializeAsString(), needle);
}

onnx::TensorProto* initializer(onnx::ModelProto& m, const std::string& name) {
  for (auto& t : *m.mutable_graph()->mutable_initializer())
    if (t.name() == name) return &t;
  ADD_FAILURE() << "no initializer " << name;
  return nullptr;
}

TEST(OnnxHostile, TruncationsAndGarbage) {
  std::ifstream in(fixture("cnn_legacy.onnx"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 1000u);
  for (size_t cut = 0; cut < bytes.size(); cut += 37) {
    SCOPED_TRACE(cut);
    expect_refused(bytes.substr(0, cut), "");
  }
  std::mt19937 rng(5);
  for (int trial = 0; trial < 20; ++trial) {
    std::string garbage(64 + trial * 50, '\0');
    for (char& c : garbage) c = char(rng());
    expect_refused(garbage, "");
  }
  expect_refused("", "");
}

TEST(OnnxHostile, GraphStructure) {
  const std::string base = "cnn_legacy.onnx";
  expect_mutation_refused(
      base, [](auto& m) { m.mutable_graph()->mutable_node(2)->set_op_type("FancyOp"); },
      "node '/stem/stem.2/Relu' (FancyOp): operator 'FancyOp' is not supported");
  expect_mutation_refused(
      base, [](auto& m) { m.mutable_graph()->mutable_node(2)->set_domain("com.example"); },
      "operator domain 'com.example'");
  expect_mutation_refused(
      base,
      [](auto& m) {  // the first Conv reads the last Relu's output: a cycle
        auto* g = m.mutable_graph();
        g->mutable_node(0)->set_input(0, g->node(9).output(0));
      },
      "cycle");
  expect_mutation_refused(
      base, [](auto& m) { m.mutable_graph()->mutable_node(3)->set_input(0, "nowhere"); },
      "reads 'nowhere', which nothing defines");
  expect_mutation_refused(
      base,
      [](auto& m) {
        auto* g = m.mutable_graph();
        g->mutable_node(2)->set_output(0, g->node(1).output(0));
      },
      "which is already defined");
  expect_mutation_refused(
      base,
      [](auto& m) {
        auto* inits = m.mutable_graph()->mutable_initializer();
        for (int i = 0; i < inits->size(); ++i)
          if (inits->Get(i).name() == "fc.weight") inits->DeleteSubrange(i, 1);
      },
      "reads 'fc.weight', which nothing defines");
  expect_mutation_refused(
      base, [](auto& m) { *m.mutable_graph()->add_output() = m.graph().output(0); }, "2 outputs");
  expect_mutation_refused(
      base, [](auto& m) { *m.mutable_graph()->add_input() = m.graph().output(0); },
      "2 inputs that are not initializers");
  expect_mutation_refused(
      base,
      [](auto& m) {
        auto* a = m.mutable_graph()->mutable_node(2)->add_attribute();
        a->set_name("then_branch");
        a->set_type(onnx::AttributeProto::GRAPH);
        *a->mutable_g() = m.graph();
      },
      "subgraph");
  expect_mutation_refused(
      base, [](auto& m) { m.mutable_opset_import()->Clear(); }, "opset 0");
  expect_mutation_refused(
      base,
      [](auto& m) {
        auto* d = m.mutable_graph()
                      ->mutable_input(0)
                      ->mutable_type()
                      ->mutable_tensor_type()
                      ->mutable_shape()
                      ->mutable_dim(2);
        d->set_dim_param("height");
      },
      "dimension 2 is not a fixed positive size");
  expect_mutation_refused(
      base,
      [](auto& m) {  // Flatten at axis 0 mixes samples with features
        for (auto& a : *m.mutable_graph()->mutable_node(11)->mutable_attribute())
          if (a.name() == "axis") a.set_i(0);
      },
      "does not keep the samples on dimension 0");
  expect_mutation_refused(
      base,
      [](auto& m) {  // the BatchNorm scale also read as the Add's second input
        auto* g = m.mutable_graph();
        g->mutable_node(8)->set_input(1, "fc.bias");
        g->mutable_node(12)->set_input(2, "fc.bias");
      },
      "'fc.bias' is used twice");
}

TEST(OnnxHostile, Initializers) {
  const std::string base = "cnn_legacy.onnx";
  expect_mutation_refused(
      base, [](auto& m) { initializer(m, "fc.weight")->set_data_type(onnx::TensorProto::INT64); },
      "initializer 'fc.weight': raw_data holds 48 bytes, its shape needs 96");
  expect_mutation_refused(
      base, [](auto& m) { initializer(m, "fc.weight")->set_data_type(onnx::TensorProto::INT32); },
      "'fc.weight' (Gemm input 1 of node '/fc/Gemm' (Gemm)) is not floating point");
  expect_mutation_refused(
      base, [](auto& m) { initializer(m, "fc.weight")->set_data_type(onnx::TensorProto::STRING); },
      "unsupported tensor data type 8");
  expect_mutation_refused(
      base, [](auto& m) { initializer(m, "fc.weight")->set_dims(0, -3); }, "negative dimension -3");
  expect_mutation_refused(
      base,
      [](auto& m) {
        auto* t = initializer(m, "fc.weight");
        t->set_dims(0, int64_t(1) << 40);
        t->set_dims(1, int64_t(1) << 40);
      },
      "overflows");
  expect_mutation_refused(
      base, [](auto& m) { initializer(m, "fc.weight")->set_dims(0, int64_t(1) << 30); },
      "more than hspec accepts");
  expect_mutation_refused(
      base,
      [](auto& m) {
        auto* t = initializer(m, "fc.weight");
        std::string raw = t->raw_data();
        const float nan = NAN;
        std::memcpy(&raw[8], &nan, 4);
        t->set_raw_data(raw);
      },
      "parameter 'fc.weight' holds a non-finite value at 2");
  expect_mutation_refused(
      base,
      [](auto& m) {  // typed field with the wrong count
        auto* t = initializer(m, "fc.bias");
        t->clear_raw_data();
        t->add_float_data(1.0f);
      },
      "holds 1 values, its shape needs 3");
}

// External data: cnn_dynamo.onnx keeps conv1.weight and conv2.weight in cnn_dynamo.onnx.data.
class OnnxExternal : public ::testing::Test {
 protected:
  void SetUp() override {
    data_name = "onnx_" + std::to_string(getpid()) + "_weights.data";
    std::ifstream in(fixture("cnn_dynamo.onnx.data"), std::ios::binary);
    data = std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    write_file(std::string(HSPEC_TEST_TMP) + "/" + data_name, data);
  }
  void TearDown() override { std::remove((std::string(HSPEC_TEST_TMP) + "/" + data_name).c_str()); }

  // The model with every external tensor pointing at `location`, then `edit` applied.
  std::string model(const std::string& location,
                    const std::function<void(onnx::TensorProto&)>& edit = nullptr) {
    onnx::ModelProto m = read_model("cnn_dynamo.onnx");
    for (auto& t : *m.mutable_graph()->mutable_initializer()) {
      if (t.data_location() != onnx::TensorProto::EXTERNAL) continue;
      for (auto& kv : *t.mutable_external_data())
        if (kv.key() == "location") kv.set_value(location);
      if (edit && t.name() == "conv2.weight") edit(t);
    }
    return m.SerializeAsString();
  }
  static void set(onnx::TensorProto& t, const std::string& key, const std::string& value) {
    for (auto& kv : *t.mutable_external_data())
      if (kv.key() == key) return kv.set_value(value);
    auto* kv = t.add_external_data();
    kv->set_key(key);
    kv->set_value(value);
  }
  std::string data_name, data;
};

TEST_F(OnnxExternal, LoadsFromARenamedDataFile) {
  const std::string path = testutil::scratch("onnx_", "ext.onnx");
  write_file(path, model(data_name));
  const Graph g = load_onnx(path);
  const Graph ref = load_onnx(fixture("cnn_dynamo.onnx"));
  EXPECT_EQ(g.initializers.at("conv2.weight").values, ref.initializers.at("conv2.weight").values);
  std::remove(path.c_str());
}

TEST_F(OnnxExternal, PathsThatLeaveTheFolder) {
  expect_refused(model("/etc/hostname"), "leaves the model's folder");
  expect_refused(model("../" + data_name), "leaves the model's folder");
  expect_refused(model("missing.data"), "cannot open external data file 'missing.data'");
  // A symlink inside the folder that points outside it.
  const std::string outside = std::string(HSPEC_TEST_TMP) + "/../" + data_name;
  write_file(outside, data);
  const std::string link = std::string(HSPEC_TEST_TMP) + "/link_" + data_name;
  ASSERT_EQ(symlink(outside.c_str(), link.c_str()), 0);
  expect_refused(model("link_" + data_name), "leaves the model's folder");
  std::remove(link.c_str());
  std::remove(outside.c_str());
}

TEST_F(OnnxExternal, OffsetsAndLengths) {
  expect_refused(model(data_name, [](auto& t) { set(t, "offset", "1000000"); }),
                 "runs past the end");
  expect_refused(model(data_name, [](auto& t) { set(t, "offset", "1000"); }), "runs past the end");
  expect_refused(model(data_name, [](auto& t) { set(t, "length", "8"); }),
                 "external data length 8 is not the 576 bytes");
  expect_refused(model(data_name, [](auto& t) { set(t, "offset", "-4"); }),
                 "external data offset '-4' is not a count");
  expect_refused(model(data_name, [](auto& t) { set(t, "offset", "99999999999999999999"); }),
                 "is not a count");
}

}  // namespace
}  // namespace hspec
#endif
