// Graph engine, transformer operators against closed forms: the Hessian of an mse loss on
// softmax(x + b) (d softmax = diag(p) - p p^T and its second derivative written out), the
// Gauss-Newton matrix of LayerNorm (Jacobian (I - 1/n 11^T - y y^T / n) / sigma), and
// hostile nodes refused with an InputError naming the node and the op.
#include <gtest/gtest.h>

#include <cmath>

#include "graph_test_util.hpp"
#include "hspec/error.hpp"
#include "hspec/graph/plan.hpp"

namespace hspec {
namespace {

using namespace graphtest;

std::vector<double> dense(GraphCurvatureOperator<double>& op) {
  const int64_t P = op.dim();
  std::vector<double> eye(size_t(P * P), 0.0);
  for (int64_t i = 0; i < P; ++i) eye[size_t(i * P + i)] = 1;
  return apply_block(op, eye, P);
}

TEST(GraphAttentionClosedForm, SoftmaxMseHessian) {
  const int64_t C = 4, N = 3;
  Builder b({C}, 5);
  b.node("Add", {"x", b.param("b", {C}, 0.7)}, "z");
  b.node("Softmax", {"z"}, "y").attrs["axis"] = attr_i(-1);
  const Dataset ds = data(N, C, Loss::MSE, C, 6);
  GraphCurvatureOperator<double> op(b.g, ds, gopt(Loss::MSE, Curvature::Hessian, C));
  const auto H = dense(op);
  const std::vector<double>& bias = b.g.initializers.at("b").values;
  std::vector<double> ref(size_t(C * C), 0.0);
  for (int64_t s = 0; s < N; ++s) {
    std::vector<double> p(static_cast<size_t>(C));
    double m = -1e300, sum = 0;
    for (int64_t c = 0; c < C; ++c)
      m = std::max(m, double(ds.inputs[size_t(s * C + c)]) + bias[size_t(c)]);
    for (int64_t c = 0; c < C; ++c)
      sum += p[size_t(c)] = std::exp(double(ds.inputs[size_t(s * C + c)]) + bias[size_t(c)] - m);
    for (double& v : p) v /= sum;
    auto d = [&](int64_t i, int64_t j) { return double(i == j); };
    for (int64_t i = 0; i < C; ++i)
      for (int64_t j = 0; j < C; ++j) {
        double h = 0;
        for (int64_t c = 0; c < C; ++c) {
          const double Jci = p[size_t(c)] * (d(c, i) - p[size_t(i)]),
                       Jcj = p[size_t(c)] * (d(c, j) - p[size_t(j)]);
          const double second =
              p[size_t(c)] * ((d(c, i) - p[size_t(i)]) * (d(c, j) - p[size_t(j)]) -
                              p[size_t(i)] * (d(i, j) - p[size_t(j)]));
          const double r = p[size_t(c)] - double(ds.targets[size_t(s * C + c)]);
          h += Jci * Jcj + r * second;
        }
        ref[size_t(i * C + j)] += 2.0 / double(N * C) * h;
      }
  }
  EXPECT_LT(rel_err(H, ref), 1e-12);
}

TEST(GraphAttentionClosedForm, LayerNormGaussNewton) {
  const int64_t D = 5, N = 3;
  const double eps = 1e-3;
  Builder b({D}, 7);
  b.node("Add", {"x", b.param("b", {D}, 0.7)}, "z");
  GraphNode& n =
      b.node("LayerNormalization", {"z", b.constant("one", {D}, std::vector<double>(D, 1.0))}, "y");
  n.attrs["epsilon"] = attr_f(eps);
  const Dataset ds = data(N, D, Loss::MSE, D, 8);
  GraphCurvatureOperator<double> op(b.g, ds, gopt(Loss::MSE, Curvature::GGN, D));
  const auto G = dense(op);
  const std::vector<double>& bias = b.g.initializers.at("b").values;
  std::vector<double> ref(size_t(D * D), 0.0);
  for (int64_t s = 0; s < N; ++s) {
    std::vector<double> z(static_cast<size_t>(D)), y(static_cast<size_t>(D));
    double mu = 0, var = 0;
    for (int64_t i = 0; i < D; ++i)
      mu += z[size_t(i)] = ds.inputs[size_t(s * D + i)] + bias[size_t(i)];
    mu /= D;
    for (double v : z) var += (v - mu) * (v - mu) / D;
    const double sigma = std::sqrt(var + eps);
    for (int64_t i = 0; i < D; ++i) y[size_t(i)] = (z[size_t(i)] - mu) / sigma;
    std::vector<double> J(size_t(D * D));
    for (int64_t i = 0; i < D; ++i)
      for (int64_t j = 0; j < D; ++j)
        J[size_t(i * D + j)] = (double(i == j) - 1.0 / D - y[size_t(i)] * y[size_t(j)] / D) / sigma;
    for (int64_t a = 0; a < D; ++a)
      for (int64_t c = 0; c < D; ++c)
        for (int64_t o = 0; o < D; ++o)
          ref[size_t(a * D + c)] +=
              2.0 / double(N * D) * J[size_t(o * D + a)] * J[size_t(o * D + c)];
  }
  EXPECT_LT(rel_err(G, ref), 1e-12);
}

// A [3, 4] sequence model whose middle node is `op`, for the hostile cases.
void expect_refused(const std::function<void(Builder&)>& body, const std::string& node,
                    const std::string& op, const std::string& what) {
  Builder b({3, 4}, 9);
  b.node("MatMul", {"x", b.param("w", {4, 4}, 0.5)}, "h");
  body(b);
  expect_plan_refused(b.g, {"'" + node + "'", "(" + op + ")", what}, what);
}

TEST(GraphAttentionHostile, BadNodesNameTheNodeAndOp) {
  expect_refused(
      [](Builder& b) {
        b.node("Transpose", {"h"}, "t").attrs["perm"] = attr_is({0, 1, 1});
      },
      "t_node", "Transpose", "not a permutation");
  expect_refused(  // the Transpose moves the samples to axis 1, which Softmax would mix
      [](Builder& b) {
        b.node("Transpose", {"h"}, "t").attrs["perm"] = attr_is({1, 0, 2});
        b.node("Softmax", {"t"}, "p").attrs["axis"] = attr_i(1);
      },
      "p_node", "Softmax", "would mix the samples");
  expect_refused(
      [](Builder& b) {
        GraphNode& n = b.node("Split", {"h", b.ints("s", {1, 2})}, "a");
        n.outputs = {"a", "c"};
        n.attrs["axis"] = attr_i(2);
      },
      "a_node", "Split", "sum to 3");
  expect_refused(
      [](Builder& b) {
        b.node("Slice",
               {"h", b.ints("st", {0}), b.ints("en", {2}), b.ints("ax", {1}), b.ints("sp", {0})},
               "s");
      },
      "s_node", "Slice", "step 0");
  expect_refused([](Builder& b) { b.node("Softmax", {"h"}, "p").attrs["axis"] = attr_i(3); },
                 "p_node", "Softmax", "out of range");
  expect_refused([](Builder& b) { b.node("Softmax", {"h"}, "p").attrs["axis"] = attr_i(0); },
                 "p_node", "Softmax", "mix the samples");
  expect_refused(
      [](Builder& b) {
        GraphNode& n = b.node("LayerNormalization", {"h", b.param("s", {4}, 1.0)}, "ln");
        n.outputs = {"ln", "mean"};
        b.node("Add", {"ln", "mean"}, "bad");
      },
      "bad_node", "Add", "Mean output of LayerNormalization");
  expect_refused(
      [](Builder& b) {
        b.node("Pow", {"h", b.constant("e", {}, {1.7})}, "pw");
      },
      "pw_node", "Pow", "exponent");
  expect_refused(
      [](Builder& b) {
        b.node("MatMul", {"h", "h"}, "mm");  // [3, 4] @ [3, 4]
      },
      "mm_node", "MatMul", "inner dimensions");
}

}  // namespace
}  // namespace hspec
