// Graph engine: a parameter or constant expanded over the samples (a ViT's class token,
// cls.expand(N, -1, -1), which the importer writes as Expand with -1 for the sample count)
// and then joined to data by Concat or an elementwise op. Checked by check_graph (gradient
// and Hessian products against central differences, chunks, fp32), against the same model
// written without the Expand (Concat broadcasts the token itself), and the uses hspec cannot
// broadcast like the expanded tensor refused by node and op.
#include <gtest/gtest.h>

#include <string>

#include "graph_test_util.hpp"
#include "hspec/error.hpp"
#include "hspec/graph/plan.hpp"

namespace hspec {
namespace {

using namespace graphtest;

// x [3, 4] -> x W -> [class token; tokens] [4, 4] -> times a gain expanded over the samples
// (and halved first: a result that still stands for all samples) -> tanh -> mean over the
// tokens -> Gemm -> [3]. Without `expand`, the token and the gain enter unexpanded.
Graph class_token_model(bool expand, uint64_t seed) {
  Builder b({3, 4}, seed);
  b.node("MatMul", {"x", b.param("w_in", {4, 4}, 0.6)}, "h");
  std::string cls = b.param("cls", {1, 1, 4}, 0.8), gain = b.param("gain", {4}, 0.7);
  if (expand) {
    b.node("Expand", {cls, b.ints("cls_target", {-1, 1, 4})}, "cls_n");
    b.node("Expand", {gain, b.ints("gain_target", {-1, 4, 4})}, "gain_n");
    cls = "cls_n";
    gain = "gain_n";
  }
  b.node("Concat", {cls, "h"}, "tok").attrs["axis"] = attr_i(1);
  b.node("Mul", {gain, b.constant("half", {}, {0.5})}, "half_gain");
  b.node("Mul", {"tok", "half_gain"}, "scaled");
  b.node("Tanh", {"scaled"}, "a");
  b.node("ReduceMean", {"a"}, "pooled").attrs["axes"] = attr_is({1});
  b.g.nodes.back().attrs["keepdims"] = attr_i(0);
  b.node("Gemm", {"pooled", b.param("w_out", {4, 3}, 0.6), b.param("b_out", {3}, 0.2)}, "y");
  return b.g;
}

TEST(GraphExpandOverSamples, ClassTokenMatchesFiniteDifferences) {
  const Dataset ds = data(5, 12, Loss::CE, 3, 61);
  const Graph g = class_token_model(true, 60);
  check_graph(g, ds, Loss::CE);
  // The expanded values stay one per model (extent 1 on axis 0), not one per sample.
  const Plan plan = make_plan(g);
  for (const PlanValue& v : plan.values)
    if (v.name == "cls_n" || v.name == "half_gain") {
      EXPECT_EQ(v.cls, ValueClass::Param) << v.name;
      EXPECT_EQ(v.shape.at(0), 1) << v.name;
    }
}

TEST(GraphExpandOverSamples, SameAsTheUnexpandedModel) {
  const Dataset ds = data(5, 12, Loss::CE, 3, 63);
  const Graph a = class_token_model(true, 62), b = class_token_model(false, 62);
  GraphCurvatureOperator<double> oa(a, ds, gopt(Loss::CE)), ob(b, ds, gopt(Loss::CE));
  EXPECT_NEAR(oa.loss_value(), ob.loss_value(), 1e-14);
  EXPECT_LT(rel_err(oa.gradient(), ob.gradient()), 1e-14);
  const auto v = gauss(oa.dim(), 64, 0);
  EXPECT_LT(rel_err(apply_block(oa, v, 1), apply_block(ob, v, 1)), 1e-14);
}

void expect_plan_refused(const Graph& g, const std::string& needle) {
  try {
    make_plan(g);
    ADD_FAILURE() << "planned; expected " << needle;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(GraphExpandOverSamples, UsesThatDoNotBroadcastAreRefused) {
  {  // An op on the expanded token alone would need one value per sample.
    Builder b({3, 4}, 65);
    b.node("Expand", {b.param("cls", {1, 1, 4}, 0.8), b.ints("t", {-1, 1, 4})}, "cls_n");
    b.node("Tanh", {"cls_n"}, "c");
    b.node("MatMul", {"x", b.param("w", {4, 4}, 0.6)}, "h");
    b.node("Concat", {"c", "h"}, "y").attrs["axis"] = attr_i(1);
    expect_plan_refused(b.g,
                        "node 'c_node' (Tanh): input 'cls_n' is expanded over the samples "
                        "(by node 'cls_n_node')");
  }
  {  // A Concat of the token with parameters only.
    Builder b({3, 4}, 66);
    b.node("Expand", {b.param("cls", {1, 1, 4}, 0.8), b.ints("t", {-1, 1, 4})}, "cls_n");
    b.node("Concat", {"cls_n", b.param("more", {1, 2, 4}, 0.5)}, "both").attrs["axis"] = attr_i(1);
    b.node("Add", {"x", "both"}, "y");
    expect_plan_refused(b.g, "(Concat): input 'cls_n' is expanded over the samples");
  }
  {  // A tensor of extent 2 on axis 0 cannot be broadcast to any number of samples.
    Builder b({3, 4}, 67);
    b.node("Expand", {b.param("two", {2, 1, 4}, 0.8), b.ints("t", {-1, 1, 4})}, "two_n");
    b.node("Add", {"x", "two_n"}, "y");
    expect_plan_refused(b.g, "node 'two_n_node' (Expand)");
  }
  {  // The sample count on a data value's axis other than 0.
    Builder b({3, 4}, 68);
    b.node("Expand", {"x", b.ints("t", {-1, 7, 3, 4})}, "y");
    expect_plan_refused(b.g, "node 'y_node' (Expand)");
  }
}

}  // namespace
}  // namespace hspec
