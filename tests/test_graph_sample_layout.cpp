// Graph engine, samples off axis 0 (SampleLayout): a Transpose that moves the samples and
// back is the identity (Alias steps, same function); nn.MultiheadAttention's sequence-first
// path ([T, N, E], Unsqueeze/Transpose/Squeeze/Gather of q, k, v, heads merged as [T, N H, d]
// and [N H, T, d], the output as [T N, E] through a Gemm) against the same attention written
// batch-first, and by finite differences; ops that would mix the samples refused by name.
#include <gtest/gtest.h>

#include <functional>

#include "graph_test_util.hpp"
#include "hspec/error.hpp"
#include "hspec/graph/plan.hpp"

namespace hspec {
namespace {

using namespace graphtest;

constexpr int64_t T = 3, D = 4;

TEST(GraphSampleLayout, TransposeOfTheSamplesAndBackIsTheIdentity) {
  const Graph moved = sequence_model(T, D, 11, [](Builder& b, const std::string& h) {
    b.node("Transpose", {h}, "tnd").attrs["perm"] = attr_is({1, 0, 2});  // [T, N, D]
    b.node("Tanh", {"tnd"}, "act");
    b.node("Transpose", {"act"}, "back").attrs["perm"] = attr_is({1, 0, 2});
    return std::string("back");
  });
  const Graph plain = sequence_model(T, D, 11, [](Builder& b, const std::string& h) {
    b.node("Tanh", {h}, "act");
    return std::string("act");
  });
  const Plan p = make_plan(moved);
  for (const PlanStep& s : p.steps)
    if (s.op == "Transpose") EXPECT_EQ(s.kind, StepKind::Alias) << s.node;
  const Dataset ds = data(5, T * D, Loss::CE, 3, 12);
  GraphCurvatureOperator<double> a(moved, ds, gopt(Loss::CE)), c(plain, ds, gopt(Loss::CE));
  EXPECT_EQ(a.loss_value(), c.loss_value());
  EXPECT_EQ(a.gradient(), c.gradient());
  const auto v = gauss(a.dim(), 13, 0);
  EXPECT_EQ(apply_block(a, v, 1), apply_block(c, v, 1));
}

// Two heads of width 2 on D = 4: q, k, v from one [D, 3D] projection, softmax(q k^T) v, the
// heads merged, an output projection, a residual.
Graph attention(bool sequence_first) {
  return sequence_model(T, D, 21, [sequence_first](Builder& b, const std::string& h) {
    const std::string w = b.param("w_qkv", {D, 3 * D}, 0.5), bias = b.param("b_qkv", {3 * D}, 0.2);
    const std::string wo = b.param("w_o", {D, D}, 0.5), bo = b.param("b_o", {D}, 0.2);
    std::string q = "q", k = "k", v = "v";
    if (sequence_first) {  // as torch's exports write nn.MultiheadAttention (the -1 is N)
      b.node("Transpose", {h}, "tnd").attrs["perm"] = attr_is({1, 0, 2});  // [T, N, D]
      b.node("MatMul", {"tnd", w}, "proj0");
      b.node("Add", {"proj0", bias}, "proj");                          // [T, N, 3D]
      b.node("Reshape", {"proj", b.ints("s3", {T, -1, 3, D})}, "p4");  // [T, N, 3, D]
      b.node("Unsqueeze", {"p4", b.ints("u0", {0})}, "p5");            // [1, T, N, 3, D]
      b.node("Transpose", {"p5"}, "p5t").attrs["perm"] = attr_is({3, 1, 2, 0, 4});
      b.node("Squeeze", {"p5t", b.ints("s3ax", {3})}, "qkv");  // [3, T, N, D]
      for (int64_t i = 0; i < 3; ++i) {
        const std::string z = i == 0 ? "q" : i == 1 ? "k" : "v", idx = "i" + z;
        GraphTensor t{GraphTensor::Kind::Int, {}, {}, {i}};
        b.g.initializers[idx] = t;
        b.node("Gather", {"qkv", idx}, z + "0");                             // [T, N, D]
        b.node("Reshape", {z + "0", b.ints(z + "h", {T, -1, 2})}, z + "1");  // [T, N 2, 2]
        b.node("Transpose", {z + "1"}, z + "2").attrs["perm"] = attr_is({1, 0, 2});
      }
      q = "q2", k = "k2", v = "v2";  // [N 2, T, 2]
      b.node("Transpose", {k}, "kt").attrs["perm"] = attr_is({0, 2, 1});
      b.node("MatMul", {q, "kt"}, "s");
      b.node("Softmax", {"s"}, "pr").attrs["axis"] = attr_i(-1);
      b.node("MatMul", {"pr", v}, "a");                                     // [N 2, T, 2]
      b.node("Transpose", {"a"}, "at").attrs["perm"] = attr_is({1, 0, 2});  // [T, N 2, 2]
      b.node("Reshape", {"at", b.ints("tn", {-1, D})}, "rows");             // [T N, D]
      b.node("Gemm", {"rows", wo, bo}, "o");
      b.node("Reshape", {"o", b.ints("tnd3", {T, -1, D})}, "o3");  // [T, N, D]
      b.node("Transpose", {"o3"}, "ob").attrs["perm"] = attr_is({1, 0, 2});
    } else {  // batch-first: [N, T, 3, D], heads as [N, 2, T, 2]
      b.node("MatMul", {h, w}, "proj0");
      b.node("Add", {"proj0", bias}, "proj");
      b.node("Reshape", {"proj", b.ints("s3", {0, T, 3, D})}, "p4");
      for (int64_t i = 0; i < 3; ++i) {
        const std::string z = i == 0 ? "q" : i == 1 ? "k" : "v", idx = "i" + z;
        b.g.initializers[idx] = GraphTensor{GraphTensor::Kind::Int, {}, {}, {i}};
        b.node("Gather", {"p4", idx}, z + "0").attrs["axis"] = attr_i(2);  // [N, T, D]
        b.node("Reshape", {z + "0", b.ints(z + "h", {0, T, 2, 2})}, z + "1");
        b.node("Transpose", {z + "1"}, z + "2").attrs["perm"] = attr_is({0, 2, 1, 3});
      }
      b.node("Transpose", {"k2"}, "kt").attrs["perm"] = attr_is({0, 1, 3, 2});
      b.node("MatMul", {"q2", "kt"}, "s");
      b.node("Softmax", {"s"}, "pr").attrs["axis"] = attr_i(-1);
      b.node("MatMul", {"pr", "v2"}, "a");
      b.node("Transpose", {"a"}, "at").attrs["perm"] = attr_is({0, 2, 1, 3});
      b.node("Reshape", {"at", b.ints("nt", {0, T, D})}, "rows");
      b.node("MatMul", {"rows", wo}, "o0");
      b.node("Add", {"o0", bo}, "ob");
    }
    b.node("Add", {h, "ob"}, "res");
    return std::string("res");
  });
}

TEST(GraphSampleLayout, SequenceFirstAttentionMatchesBatchFirst) {
  const Graph seq = attention(true), batch = attention(false);
  const Dataset ds = data(5, T * D, Loss::CE, 3, 22);
  check_graph(seq, ds, Loss::CE);
  GraphCurvatureOperator<double> a(seq, ds, gopt(Loss::CE)), c(batch, ds, gopt(Loss::CE));
  EXPECT_NEAR(a.loss_value(), c.loss_value(), 1e-13);
  EXPECT_LT(rel_err(a.gradient(), c.gradient()), 1e-12);
  const auto v = gauss(a.dim(), 23, 0);
  EXPECT_LT(rel_err(apply_block(a, v, 1), apply_block(c, v, 1)), 1e-12);
  GraphCurvatureOperator<double> ga(seq, ds, gopt(Loss::CE, Curvature::GGN)),
      gc(batch, ds, gopt(Loss::CE, Curvature::GGN));
  EXPECT_LT(rel_err(apply_block(ga, v, 1), apply_block(gc, v, 1)), 1e-12);
}

void expect_refused(const std::function<void(Builder&)>& body, const std::string& node,
                    const std::string& what) {
  Builder b({T, D}, 9);
  b.node("MatMul", {"x", b.param("w", {D, D}, 0.5)}, "h");
  b.node("Transpose", {"h"}, "tnd").attrs["perm"] = attr_is({1, 0, 2});  // [T, N, D]
  body(b);
  expect_plan_refused(b.g, {"'" + node + "'", what}, what);
}

TEST(GraphSampleLayout, OpsThatWouldMixTheSamplesAreRefusedByName) {
  expect_refused([](Builder& b) { b.node("Softmax", {"tnd"}, "p").attrs["axis"] = attr_i(1); },
                 "p_node", "would mix the samples");
  // [T, N, D] -> [T, -1, 3]: D = 4 does not split into 3s after the samples.
  expect_refused(
      [](Builder& b) {
        b.node("Reshape", {"tnd", b.ints("r", {T, -1, 3})}, "r");
      },
      "r_node", "would split the samples");
  // [T, N, D] -> [2, -1, D]: T = 3 rows before the samples do not make 2.
  expect_refused(
      [](Builder& b) {
        b.node("Reshape", {"tnd", b.ints("r", {2, -1, D})}, "r");
      },
      "r_node", "would split the samples");
  // A constant [T, 2, D] spans axis 1, which holds the samples.
  expect_refused(
      [](Builder& b) {
        b.node("Add", {"tnd", b.constant("c", {T, 2, D}, std::vector<double>(T * 2 * D, 1.0))},
               "s");
      },
      "s_node", "spans axis 1, which holds the samples");
  expect_refused(
      [](Builder& b) {
        b.node("ReduceMean", {"tnd", b.ints("ax", {2})}, "m");
      },
      "m_node", "which ReduceMean does not support");
  expect_refused(
      [](Builder& b) {
        b.node("Gather", {"tnd", b.ints("i", {0})}, "g").attrs["axis"] = attr_i(1);
      },
      "g_node", "which holds the samples");
  expect_refused([](Builder& b) { b.node("Tanh", {"tnd"}, "y"); }, "y",
                 "holds its samples on axis 1");  // the graph output itself
}

}  // namespace
}  // namespace hspec
