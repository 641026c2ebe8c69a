// Constant folding of shape subgraphs on hand-built ONNX graphs (protobuf API), against
// hand-computed results: Shape/Gather/Range/Slice/Equal/Where/Concat/ConstantOfShape feeding
// a Reshape whose sample axis must stay symbolic, an Expand over the samples, and values that
// depend on the sample count where hspec cannot keep them symbolic.
#include <gtest/gtest.h>

#if HSPEC_WITH_ONNX
#include <onnx/onnx-ml.pb.h>

#include <fstream>

#include "cli_test_util.hpp"
#include "hspec/error.hpp"
#include "hspec/formats/onnx.hpp"

namespace hspec {
namespace {

struct Builder {
  onnx::ModelProto m;
  onnx::GraphProto* g;

  // A model with input x: [batch (named or fixed), dims...] float.
  Builder(const std::vector<int64_t>& sample, int64_t fixed_batch = 0) {
    m.set_ir_version(10);
    m.add_opset_import()->set_version(20);
    g = m.mutable_graph();
    auto* in = g->add_input();
    in->set_name("x");
    auto* tt = in->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    auto* d0 = tt->mutable_shape()->add_dim();
    if (fixed_batch)
      d0->set_dim_value(fixed_batch);
    else
      d0->set_dim_param("N");
    for (int64_t d : sample) tt->mutable_shape()->add_dim()->set_dim_value(d);
  }
  onnx::NodeProto* node(const std::string& op, std::vector<std::string> in,
                        const std::string& out) {
    auto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(out + "_node");
    for (auto& s : in) n->add_input(s);
    n->add_output(out);
    return n;
  }
  static void attr_int(onnx::NodeProto* n, const std::string& k, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(k);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  void ints(const std::string& name, const std::vector<int64_t>& v, bool scalar = false) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    if (!scalar) t->add_dims(int64_t(v.size()));
    for (int64_t x : v) t->add_int64_data(x);
  }
  void floats(const std::string& name, const std::vector<int64_t>& dims,
              const std::vector<float>& v) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    for (float x : v) t->add_float_data(x);
  }
  void output(const std::string& name) { g->add_output()->set_name(name); }
  std::string save(const std::string& tag) {
    const std::string path = testutil::scratch("onnx_fold_", tag + ".onnx");
    std::ofstream(path, std::ios::binary) << m.SerializeAsString();
    return path;
  }
};

// x [N, 6] -> Reshape to [N, 2, 3] through a folded target -> ReduceMean over axis 2 ->
// Gemm with W [2, 3] and a bias built by ConstantOfShape.
Builder shape_subgraph_model(int64_t fixed_batch) {
  Builder b({6}, fixed_batch);
  b.node("Shape", {"x"}, "s");
  b.ints("zero", {0}, true);
  b.node("Gather", {"s", "zero"}, "n");       // scalar N
  b.node("Unsqueeze", {"n", "axes0"}, "n1");  // [N]
  b.ints("axes0", {0});
  b.ints("start", {0}, true);
  b.ints("limit", {4}, true);
  b.ints("delta", {1}, true);
  b.node("Range", {"start", "limit", "delta"}, "r");  // [0, 1, 2, 3]
  b.ints("s_lo", {1});
  b.ints("s_hi", {3});
  b.node("Slice", {"r", "s_lo", "s_hi"}, "sl");  // [1, 2]
  b.ints("probe", {1, 5});
  b.node("Equal", {"sl", "probe"}, "eq");  // [true, false]
  b.ints("twos", {2, 2});
  b.ints("threes", {3, 3});
  b.node("Where", {"eq", "twos", "threes"}, "dims");                         // [2, 3]
  Builder::attr_int(b.node("Concat", {"n1", "dims"}, "target"), "axis", 0);  // [N, 2, 3]
  b.node("Reshape", {"x", "target"}, "y");
  b.ints("axes2", {2});
  Builder::attr_int(b.node("ReduceMean", {"y", "axes2"}, "z"), "keepdims", 0);  // [N, 2]
  b.floats("W", {2, 3}, {1, 2, 3, 4, 5, 6});
  b.ints("bias_shape", {3});
  auto* cos = b.node("ConstantOfShape", {"bias_shape"}, "c");
  auto* a = cos->add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  a->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
  a->mutable_t()->add_dims(1);
  a->mutable_t()->add_float_data(0.5f);
  b.node("Gemm", {"z", "W", "c"}, "out");
  b.output("out");
  return b;
}

TEST(OnnxFold, ShapeSubgraphFoldsAndKeepsTheSampleAxis) {
  for (int64_t fixed : {0, 1}) {
    SCOPED_TRACE(fixed);
    const Graph g = load_onnx(shape_subgraph_model(fixed).save("shape"));
    EXPECT_EQ(g.input_shape, (std::vector<int64_t>{6}));
    ASSERT_EQ(g.nodes.size(), 3u);
    EXPECT_EQ(g.nodes[0].op, "Reshape");
    EXPECT_EQ(g.nodes[1].op, "ReduceMean");
    EXPECT_EQ(g.nodes[2].op, "Gemm");
    EXPECT_EQ(g.initializers.at(g.nodes[0].inputs[1]).ints, (std::vector<int64_t>{-1, 2, 3}));
    EXPECT_EQ(g.initializers.at(g.nodes[1].inputs[1]).ints, (std::vector<int64_t>{2}));
    const GraphTensor& bias = g.initializers.at(g.nodes[2].inputs[2]);
    EXPECT_EQ(bias.shape, (std::vector<int64_t>{3}));
    EXPECT_EQ(bias.values, (std::vector<double>{0.5, 0.5, 0.5}));
    // W feeds Gemm's weight slot; the folded bias is a constant, not a parameter.
    EXPECT_EQ(g.parameters, (std::vector<std::string>{"W"}));
    EXPECT_EQ(g.num_params(), 6);
  }
}

void expect_refused(Builder& b, const std::string& needle) {
  const std::string path = b.save("bad");
  try {
    load_onnx(path);
    ADD_FAILURE() << "loaded; expected " << needle;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(OnnxFold, SampleDependentValuesOutsideReshapeAndExpandAreRefused) {
  // The sample count itself, as a float, scales x.
  Builder b({6});
  b.node("Shape", {"x"}, "s");
  b.ints("zero", {0}, true);
  b.node("Gather", {"s", "zero"}, "n");
  Builder::attr_int(b.node("Cast", {"n"}, "nf"), "to", 1);
  b.node("Mul", {"x", "nf"}, "out");
  b.output("out");
  expect_refused(b, "input 'nf' depends on the number of samples");
}

TEST(OnnxFold, ExpandOverTheSamplesKeepsTheSampleAxisSymbolic) {
  // A constant expanded to [N, 6] (the target is Shape(x)) and added to x: the target's
  // dimension 0 becomes -1, the samples.
  Builder b({6});
  b.node("Shape", {"x"}, "s");
  b.floats("one", {}, {1.0f});
  b.node("Expand", {"one", "s"}, "ones");
  b.node("Add", {"x", "ones"}, "out");
  b.output("out");
  const Graph g = load_onnx(b.save("expand"));
  ASSERT_EQ(g.nodes.size(), 2u);
  EXPECT_EQ(g.nodes[0].op, "Expand");
  EXPECT_EQ(g.initializers.at(g.nodes[0].inputs[1]).ints, (std::vector<int64_t>{-1, 6}));
  EXPECT_TRUE(g.parameters.empty());
}

TEST(OnnxFold, ReshapeThatMovesTheSampleAxisIsRefused) {
  Builder b({6});
  b.ints("target", {2, -1});
  b.node("Reshape", {"x", "target"}, "out");
  b.output("out");
  expect_refused(b, "its target's first dimension (2) is not the samples' dimension");
}

// x [N, 2, 6] -> Transpose [2, N, 6] -> Reshape to [2, N, 3, 2] (the target holds N from
// Shape(x)) -> Transpose [N, 2, 3, 2] -> Reshape [N, 12] -> Gemm: the moved samples' axis
// of each Reshape target becomes -1, wherever it is.
TEST(OnnxFold, ReshapeTargetsFollowMovedSamples) {
  Builder b({2, 6});
  b.node("Shape", {"x"}, "s");
  b.ints("zero", {0});
  b.node("Gather", {"s", "zero"}, "n1");  // [N]
  b.ints("two", {2});
  b.ints("three_two", {3, 2});
  Builder::attr_int(b.node("Concat", {"two", "n1", "three_two"}, "target"), "axis", 0);
  auto* t0 = b.node("Transpose", {"x"}, "t");
  auto* perm = t0->add_attribute();
  perm->set_name("perm");
  perm->set_type(onnx::AttributeProto::INTS);
  for (int64_t a : {1, 0, 2}) perm->add_ints(a);
  b.node("Reshape", {"t", "target"}, "r");  // [2, N, 3, 2]
  auto* t1 = b.node("Transpose", {"r"}, "rt");
  auto* perm1 = t1->add_attribute();
  perm1->set_name("perm");
  perm1->set_type(onnx::AttributeProto::INTS);
  for (int64_t a : {1, 0, 2, 3}) perm1->add_ints(a);
  b.ints("twelve", {12});
  Builder::attr_int(b.node("Concat", {"n1", "twelve"}, "flat"), "axis", 0);
  b.node("Reshape", {"rt", "flat"}, "f");  // [N, 12]
  b.floats("W", {12, 3}, std::vector<float>(36, 0.25f));
  b.node("Gemm", {"f", "W"}, "out");
  b.output("out");
  const Graph g = load_onnx(b.save("moved"));
  ASSERT_EQ(g.nodes.size(), 5u);
  EXPECT_EQ(g.nodes[1].op, "Reshape");
  EXPECT_EQ(g.initializers.at(g.nodes[1].inputs[1]).ints, (std::vector<int64_t>{2, -1, 3, 2}));
  EXPECT_EQ(g.initializers.at(g.nodes[3].inputs[1]).ints, (std::vector<int64_t>{-1, 12}));
  // The same target with the batch fixed at 1 (a trace on one sample) names no samples.
  Builder c({2, 6});
  c.ints("fixed", {2, 1, 3, 2});
  auto* t2 = c.node("Transpose", {"x"}, "t");
  auto* perm2 = t2->add_attribute();
  perm2->set_name("perm");
  perm2->set_type(onnx::AttributeProto::INTS);
  for (int64_t a : {1, 0, 2}) perm2->add_ints(a);
  c.node("Reshape", {"t", "fixed"}, "out");
  c.output("out");
  expect_refused(c, "example batch of 2 or more");
}

TEST(OnnxFold, HugeFoldedTensorsAreRefused) {
  Builder b({6});
  b.ints("big", {1 << 20, 1 << 20});
  b.node("ConstantOfShape", {"big"}, "c");
  b.node("Add", {"x", "c"}, "out");
  b.output("out");
  expect_refused(b, "folding would create");
}

TEST(OnnxFold, IntegerOverflowAndDivisionByZeroAreRefused) {
  Builder b({6});
  b.ints("a", {int64_t(1) << 62});
  b.ints("k", {4});
  b.node("Mul", {"a", "k"}, "prod");
  b.node("Reshape", {"x", "prod"}, "out");
  b.output("out");
  expect_refused(b, "integer result is out of range");
  Builder d({6});
  d.ints("a", {6});
  d.ints("zero", {0});
  d.node("Div", {"a", "zero"}, "q");
  d.node("Reshape", {"x", "q"}, "out");
  d.output("out");
  expect_refused(d, "integer division by zero");
}

}  // namespace
}  // namespace hspec
#endif
