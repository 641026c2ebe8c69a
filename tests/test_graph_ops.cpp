// Graph engine, per operator: each op between a parameterised layer and a loss, its gradient
// against central differences of the loss, its Hessian products against central differences
// of the gradient (R-forward + R-backward), symmetry, and batched against single products.
#include <gtest/gtest.h>

#include "graph_test_util.hpp"
#include "hspec/error.hpp"

namespace hspec {
namespace {

using namespace graphtest;

// x [d] -> Gemm(W1, b1) -> `act` -> Gemm(W2, b2) -> [out]
Graph mlp_with(const std::string& act, int64_t d, int64_t h, int64_t out, uint64_t seed,
               const std::string& approx = "") {
  Builder b({d}, seed);
  b.node("Gemm", {"x", b.param("w1", {h, d}, 0.6), b.param("b1", {h}, 0.3)}, "z1").attrs["transB"] =
      attr_i(1);
  GraphNode& a = b.node(act, {"z1"}, "a1");
  if (!approx.empty()) a.attrs["approximate"] = attr_s(approx);
  b.node("Gemm", {"a1", b.param("w2", {h, out}, 0.6), b.param("b2", {out}, 0.3)}, "y");
  return b.g;
}

TEST(GraphOps, GemmBothLayoutsAlphaBeta) {
  Builder b({5}, 3);
  GraphNode& n = b.node("Gemm", {"x", b.param("w1", {4, 5}, 0.5), b.param("b1", {4}, 0.3)}, "z1");
  n.attrs["transB"] = attr_i(1);
  n.attrs["alpha"] = attr_f(0.7);
  n.attrs["beta"] = attr_f(1.3);
  b.node("Tanh", {"z1"}, "a1");
  b.node("Gemm", {"a1", b.param("w2", {4, 3}, 0.5)}, "y");  // no C, no transpose
  for (Loss loss : {Loss::CE, Loss::MSE}) check_graph(b.g, data(7, 5, loss, 3, 4), loss);
}

TEST(GraphOps, ElementwiseActivations) {
  for (const char* act : {"Relu", "Tanh", "Sigmoid", "Erf"}) {
    SCOPED_TRACE(act);
    check_graph(mlp_with(act, 4, 5, 3, 11), data(6, 4, Loss::CE, 3, 12), Loss::CE);
  }
  for (const char* approx : {"none", "tanh"}) {
    SCOPED_TRACE(approx);
    check_graph(mlp_with("Gelu", 4, 5, 3, 13, approx), data(6, 4, Loss::MSE, 3, 14), Loss::MSE);
  }
  check_graph(mlp_with("Sigmoid", 4, 5, 1, 15), data(8, 4, Loss::BCE, 1, 16), Loss::BCE);
}

TEST(GraphOps, LegacyGeluFromErf) {
  // PyTorch's legacy export: x * 0.5 * (1 + Erf(x / sqrt 2)).
  Builder b({4}, 21);
  b.node("Gemm", {"x", b.param("w1", {5, 4}, 0.6), b.param("b1", {5}, 0.3)}, "z").attrs["transB"] =
      attr_i(1);
  b.node("Div", {"z", b.constant("sqrt2", {}, {1.4142135623730951})}, "zs");
  b.node("Erf", {"zs"}, "e");
  b.node("Add", {"e", b.constant("one", {}, {1.0})}, "e1");
  b.node("Mul", {"z", "e1"}, "ze");
  b.node("Mul", {"ze", b.constant("half", {}, {0.5})}, "gelu");
  b.node("Gemm", {"gelu", b.param("w2", {5, 3}, 0.6)}, "y");
  check_graph(b.g, data(6, 4, Loss::CE, 3, 22), Loss::CE);
}

TEST(GraphOps, BroadcastBinaryOps) {
  // Residual, parameter scale and shift broadcast over samples, Sub from a constant,
  // Div by a constant vector, and the product of two parameter-dependent activations.
  Builder b({4}, 31);
  b.node("Gemm", {"x", b.param("w1", {5, 4}, 0.6), b.param("b1", {5}, 0.3)}, "h").attrs["transB"] =
      attr_i(1);
  b.node("Gemm", {"h", b.param("w2", {5, 5}, 0.5)}, "r0").attrs["transB"] = attr_i(1);
  b.node("Tanh", {"r0"}, "r");
  b.node("Add", {"h", "r"}, "res");
  b.node("Mul", {"res", b.param("s", {5}, 1.0)}, "sc");
  b.node("Sub", {b.constant("c", {1, 5}, {0.1, -0.2, 0.3, 0.0, 0.5}), "sc"}, "sub");
  b.node("Div", {"sub", b.constant("d", {5}, {1.5, 2.0, -0.5, 1.0, 3.0})}, "dv");
  b.node("Sigmoid", {"dv"}, "sg");
  b.node("Mul", {"sg", "r"}, "prod");
  b.node("Add", {"prod", b.param("shift", {1}, 0.5)}, "y0");
  b.node("Gemm", {"y0", b.param("w3", {5, 3}, 0.6)}, "y");
  check_graph(b.g, data(6, 4, Loss::CE, 3, 32), Loss::CE);
}

TEST(GraphOps, ParameterOnlyProducts) {
  // A parameter-only subgraph (scale * scale2 and Tanh of a parameter) feeding the data path.
  Builder b({4}, 35);
  b.node("Mul", {b.param("s1", {4}, 1.0), b.param("s2", {4}, 1.0)}, "s12");
  b.node("Tanh", {"s12"}, "ts");
  b.node("Mul", {"x", "ts"}, "xs");
  b.node("Gemm", {"xs", b.param("w", {3, 4}, 0.6)}, "y").attrs["transB"] = attr_i(1);
  check_graph(b.g, data(6, 4, Loss::MSE, 3, 36), Loss::MSE);
}

TEST(GraphOps, MatMulOverExtraAxis) {
  Builder b({2, 5}, 41);
  b.node("MatMul", {"x", b.param("w1", {5, 3}, 0.6)}, "m");
  b.node("Add", {"m", b.param("b1", {3}, 0.3)}, "mb");
  b.node("Tanh", {"mb"}, "t");
  b.node("Flatten", {"t"}, "f").attrs["axis"] = attr_i(1);
  b.node("MatMul", {"f", b.param("w2", {6, 3}, 0.6)}, "y");
  check_graph(b.g, data(5, 10, Loss::CE, 3, 42), Loss::CE);
}

TEST(GraphOps, MatMulOfTwoActivations) {
  // Per sample: t [2, 3, 5] times u [2, 5, 3] (both depend on parameters), then a head.
  Builder b({2, 3, 4}, 45);
  b.node("MatMul", {"x", b.param("w1", {4, 5}, 0.6)}, "m1");
  b.node("Tanh", {"m1"}, "t");
  b.node("MatMul", {"x", b.param("w2", {4, 5}, 0.6)}, "m2");
  b.node("Sigmoid", {"m2"}, "s2");
  b.node("Reshape", {"s2", b.ints("shape", {0, 2, 5, 3})}, "u");
  b.node("MatMul", {"t", "u"}, "p");
  b.node("Flatten", {"p"}, "f");
  b.node("Gemm", {"f", b.param("w3", {18, 3}, 0.4)}, "y");
  check_graph(b.g, data(5, 24, Loss::CE, 3, 46), Loss::CE);
  // One operand without parameters upstream (the input itself).
  Builder c({3, 3}, 47);
  c.node("MatMul", {"x", c.param("w1", {3, 3}, 0.6)}, "m");
  c.node("Tanh", {"m"}, "t");
  c.node("MatMul", {"t", "x"}, "p");
  c.node("Flatten", {"p"}, "f");
  c.node("Gemm", {"f", c.param("w2", {9, 2}, 0.4)}, "y");
  check_graph(c.g, data(5, 9, Loss::MSE, 2, 48), Loss::MSE);
}

Graph conv_net(const std::vector<int64_t>& pads, const std::vector<int64_t>& strides,
               const std::vector<int64_t>& dil, bool bias, uint64_t seed) {
  Builder b({2, 6, 5}, seed);
  std::vector<std::string> in = {"x", b.param("cw", {3, 2, 3, 2}, 0.4)};
  if (bias) in.push_back(b.param("cb", {3}, 0.3));
  GraphNode& c = b.node("Conv", in, "c");
  c.attrs["pads"] = attr_is(pads);
  c.attrs["strides"] = attr_is(strides);
  c.attrs["dilations"] = attr_is(dil);
  b.node("Tanh", {"c"}, "t");
  b.node("Flatten", {"t"}, "f");
  return b.g;
}

TEST(GraphOps, ConvPadsStridesDilations) {
  struct Case {
    std::vector<int64_t> pads, strides, dil;
    bool bias;
  };
  for (const Case& cs :
       {Case{{0, 0, 0, 0}, {1, 1}, {1, 1}, true}, Case{{1, 0, 1, 2}, {2, 1}, {1, 1}, false},
        Case{{1, 1, 1, 1}, {1, 2}, {2, 1}, true}}) {
    Graph g = conv_net(cs.pads, cs.strides, cs.dil, cs.bias, 51);
    // The flattened size depends on the geometry; size the head from the plan.
    const int64_t flat = make_plan(g).values.back().numel();
    Builder b({1}, 52);
    b.g = g;
    b.stream = 10;
    b.node("Gemm", {"f", b.param("w2", {flat, 3}, 0.3)}, "y");
    check_graph(b.g, data(4, 60, Loss::CE, 3, 53), Loss::CE);
  }
}

TEST(GraphOps, GroupedAndDepthwiseConv) {
  for (int64_t groups : {2, 4}) {
    SCOPED_TRACE(groups);
    // Grouped: C = 4 -> O = 4 in `groups` groups, then a dense head.
    Builder b({4, 5, 4}, 55);
    GraphNode& c = b.node(
        "Conv", {"x", b.param("cw", {4, 4 / groups, 3, 2}, 0.5), b.param("cb", {4}, 0.2)}, "c");
    c.attrs["group"] = attr_i(groups);
    c.attrs["pads"] = attr_is({1, 0, 1, 1});
    b.node("Tanh", {"c"}, "t");
    b.node("Flatten", {"t"}, "f");
    b.node("Gemm", {"f", b.param("w2", {4 * 5 * 4, 3}, 0.2)}, "y");
    const Dataset ds = data(4, 80, Loss::CE, 3, 56);
    check_graph(b.g, ds, Loss::CE);
    // The same as a dense convolution whose cross-group weights are zero: equal loss, and
    // equal gradients on the weights the grouped one has.
    Graph dense = b.g;
    GraphTensor& w = dense.initializers["cw"];
    const int64_t cg = 4 / groups, og = 4 / groups, kk = 3 * 2;
    std::vector<double> full(size_t(4 * 4 * kk), 0.0);
    for (int64_t o = 0; o < 4; ++o)
      for (int64_t ci = 0; ci < cg; ++ci)
        for (int64_t q = 0; q < kk; ++q)
          full[size_t((o * 4 + (o / og) * cg + ci) * kk + q)] =
              w.values[size_t((o * cg + ci) * kk + q)];
    w.shape = {4, 4, 3, 2};
    w.values = full;
    dense.nodes[0].attrs.erase("group");
    GraphCurvatureOperator<double> gop(b.g, ds, gopt(Loss::CE));
    GraphCurvatureOperator<double> dop(dense, ds, gopt(Loss::CE));
    EXPECT_NEAR(gop.loss_value(), dop.loss_value(), 1e-14);
    for (int64_t o = 0; o < 4; ++o)
      for (int64_t ci = 0; ci < cg; ++ci)
        for (int64_t q = 0; q < kk; ++q)
          EXPECT_NEAR(gop.gradient()[size_t((o * cg + ci) * kk + q)],
                      dop.gradient()[size_t((o * 4 + (o / og) * cg + ci) * kk + q)], 1e-14);
  }
}

TEST(GraphOps, BatchNormInferenceAndPools) {
  Builder b({2, 6, 6}, 61);
  GraphNode& c = b.node("Conv", {"x", b.param("cw", {3, 2, 3, 3}, 0.4)}, "c");
  c.attrs["pads"] = attr_is({1, 1, 1, 1});
  b.node(
       "BatchNormalization",
       {"c", b.param("bn.weight", {3}, 1.0), b.param("bn.bias", {3}, 0.3),
        b.constant("bn.mean", {3}, {0.1, -0.2, 0.05}), b.constant("bn.var", {3}, {1.5, 0.7, 2.0})},
       "bn")
      .attrs["epsilon"] = attr_f(1e-3);
  b.node("Tanh", {"bn"}, "t");
  GraphNode& mp = b.node("MaxPool", {"t"}, "mp");
  mp.attrs["kernel_shape"] = attr_is({2, 2});
  mp.attrs["strides"] = attr_is({2, 2});
  mp.attrs["pads"] = attr_is({0, 0, 1, 1});
  GraphNode& ap = b.node("AveragePool", {"mp"}, "ap");  // 3x3 -> 3x3 with padding
  ap.attrs["kernel_shape"] = attr_is({2, 2});
  ap.attrs["pads"] = attr_is({1, 1, 0, 0});
  GraphNode& ap2 = b.node("AveragePool", {"ap"}, "ap2");
  ap2.attrs["kernel_shape"] = attr_is({2, 2});
  ap2.attrs["pads"] = attr_is({1, 1, 1, 1});
  ap2.attrs["count_include_pad"] = attr_i(1);
  b.node("Sigmoid", {"ap2"}, "s");
  b.node("GlobalAveragePool", {"s"}, "gap");
  b.node("Flatten", {"gap"}, "f");
  b.node("Gemm", {"f", b.param("w2", {3, 3}, 0.8), b.param("b2", {3}, 0.2)}, "y");
  check_graph(b.g, data(4, 72, Loss::CE, 3, 62), Loss::CE);
}

TEST(GraphOps, ReduceMeanAndShapeOps) {
  Builder b({6}, 71);
  b.node("Gemm", {"x", b.param("w1", {12, 6}, 0.5)}, "z").attrs["transB"] = attr_i(1);
  b.node("Reshape", {"z", b.ints("shape", {0, 3, -1})}, "r");  // [N, 3, 4]
  b.node("Tanh", {"r"}, "t");
  b.node("Unsqueeze", {"t", b.ints("ax", {1})}, "u");  // [N, 1, 3, 4]
  GraphNode& rm = b.node("ReduceMean", {"u"}, "m");    // over the last axis, keepdims
  rm.attrs["axes"] = attr_is({-1});
  b.node("Squeeze", {"m", b.ints("sq", {1, 3})}, "s");  // [N, 3]
  b.node("Identity", {"s"}, "id");
  b.node("Mul", {"id", "id"}, "sq2");
  GraphNode& rm2 = b.node("ReduceMean", {"t", b.ints("ax2", {1})}, "m2");  // [N, 4]
  rm2.attrs["keepdims"] = attr_i(0);
  b.node("Gemm", {"m2", b.param("w3", {4, 3}, 0.7)}, "p");
  b.node("Add", {"p", "sq2"}, "y");
  for (Loss loss : {Loss::CE, Loss::MSE}) check_graph(b.g, data(5, 6, loss, 3, 72), loss);
}

TEST(GraphOps, UnsupportedInputsAreInputErrors) {
  Graph g = conv_net({0, 0, 0, 0}, {1, 1}, {1, 1}, false, 81);
  g.nodes[0].attrs["group"] = attr_i(2);
  try {
    make_plan(g);
    FAIL() << "group=2 accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("test.onnx: node 'c_node' (Conv): group=2"),
              std::string::npos)
        << e.what();
  }
  Graph h = mlp_with("Softsign", 3, 4, 2, 82);
  EXPECT_THROW(make_plan(h), InputError);
  Graph w = conv_net({0, 0, 0, 0}, {1, 1}, {1, 1}, false, 83);
  w.initializers["cw"].shape = {3, 2, 6};
  try {
    make_plan(w);
    FAIL() << "3-D conv weight accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("weight has 3 dims, expected 4"), std::string::npos)
        << e.what();
  }
  Graph nan = mlp_with("Tanh", 3, 4, 2, 85);
  nan.initializers["w1"].values[2] = std::nan("");
  EXPECT_THROW(make_plan(nan), InputError);
  Builder d({3}, 84);
  d.node("Gemm", {"x", d.param("w", {2, 3}, 1.0)}, "z").attrs["transB"] = attr_i(1);
  d.node("Pow", {"z", d.constant("e", {}, {1.7})}, "y");  // division by a value is supported now
  EXPECT_THROW(make_plan(d.g), InputError);
}

TEST(GraphOps, ConstantNodes) {
  // Constant nodes (float for a Mul, integer for a Reshape's shape) as initializers.
  Builder b({4}, 91);
  b.node("Gemm", {"x", b.param("w1", {6, 4}, 0.6)}, "z").attrs["transB"] = attr_i(1);
  GraphAttribute scale;
  scale.kind = GraphAttribute::Kind::Tensor;
  scale.t.values = {0.7};
  b.node("Constant", {}, "k").attrs["value"] = scale;
  GraphAttribute shape;
  shape.kind = GraphAttribute::Kind::Tensor;
  shape.t.kind = GraphTensor::Kind::Int;
  shape.t.shape = {3};
  shape.t.ints = {-1, 2, 3};
  b.node("Constant", {}, "shape").attrs["value"] = shape;
  b.node("Mul", {"z", "k"}, "zk");
  b.node("Reshape", {"zk", "shape"}, "r");
  b.node("Tanh", {"r"}, "t");
  b.node("Flatten", {"t"}, "f");
  b.node("Gemm", {"f", b.param("w2", {6, 3}, 0.6)}, "y");
  check_graph(b.g, data(5, 4, Loss::CE, 3, 92), Loss::CE);
}

}  // namespace
}  // namespace hspec
