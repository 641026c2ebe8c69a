// Graph engine, transformer operators: LayerNormalization (fused and as exporters decompose
// it), Softmax, MatMul of two activations with broadcast batch axes, Transpose, Split,
// Slice, Concat, Where, Expand, Neg, Cast, Pow, Sqrt and Div by a value. Each runs through
// check_graph (gradient and Hessian products against central differences, symmetry, chunks,
// fp32); a one-head causal attention block against a dense finite-difference Hessian; the
// Gauss-Newton matrix against J^T J from finite differences of the forward outputs (the
// R-forward's reference); softmax and LayerNorm against their closed forms; hostile nodes.
#include <gtest/gtest.h>

#include <cmath>

#include "graph_test_util.hpp"
#include "hspec/error.hpp"
#include "hspec/graph/plan.hpp"

namespace hspec {
namespace {

using namespace graphtest;

TEST(GraphAttentionOps, LayerNormalizationFused) {
  // Over the last axis with scale and bias parameters, and over the last two axes with a
  // constant scale and no bias.
  check_graph(sequence_model(3, 4, 1,
                             [](Builder& b, const std::string& h) {
                               b.node("LayerNormalization",
                                      {h, b.param("ln_s", {4}, 1.0), b.param("ln_b", {4}, 0.3)},
                                      "ln");
                               return std::string("ln");
                             }),
              data(5, 12, Loss::CE, 3, 2), Loss::CE);
  check_graph(sequence_model(3, 4, 3,
                             [](Builder& b, const std::string& h) {
                               GraphNode& n = b.node(
                                   "LayerNormalization",
                                   {h, b.constant("ln_s", {3, 4}, std::vector<double>(12, 1.5))},
                                   "ln");
                               n.attrs["axis"] = attr_i(-2);
                               n.attrs["epsilon"] = attr_f(1e-3);
                               return std::string("ln");
                             }),
              data(5, 12, Loss::MSE, 3, 4), Loss::MSE);
}

// The decomposition PyTorch's exporters emit for LayerNorm (and RMS-style variants).
std::string decomposed_layernorm(Builder& b, const std::string& h) {
  b.node("ReduceMean", {h, b.ints("ax", {-1})}, "mu");
  b.node("Sub", {h, "mu"}, "d");
  b.node("Pow", {"d", b.constant("two", {}, {2.0})}, "d2");
  b.node("ReduceMean", {"d2", "ax"}, "var");
  b.node("Add", {"var", b.constant("eps", {}, {1e-5})}, "ve");
  b.node("Sqrt", {"ve"}, "sd");
  b.node("Div", {"d", "sd"}, "xh");
  b.node("Mul", {"xh", b.param("ln_s", {4}, 1.0)}, "xs");
  b.node("Add", {"xs", b.param("ln_b", {4}, 0.3)}, "ln");
  return "ln";
}

TEST(GraphAttentionOps, DecomposedLayerNormMatchesFused) {
  const Graph dec = sequence_model(3, 4, 5, decomposed_layernorm);
  const Dataset ds = data(5, 12, Loss::CE, 3, 6);
  check_graph(dec, ds, Loss::CE);
  const Graph fused = sequence_model(3, 4, 5, [](Builder& b, const std::string& h) {
    b.node("LayerNormalization", {h, b.param("ln_s", {4}, 1.0), b.param("ln_b", {4}, 0.3)}, "ln");
    return std::string("ln");
  });
  GraphCurvatureOperator<double> a(dec, ds, gopt(Loss::CE)), c(fused, ds, gopt(Loss::CE));
  EXPECT_NEAR(a.loss_value(), c.loss_value(), 1e-12);
  EXPECT_LT(rel_err(a.gradient(), c.gradient()), 1e-10);
  const auto v = gauss(a.dim(), 9, 0);
  EXPECT_LT(rel_err(apply_block(a, v, 1), apply_block(c, v, 1)), 1e-10);
}

TEST(GraphAttentionOps, ElementwiseRestPowDivNegCastWhereExpand) {
  check_graph(
      sequence_model(2, 4, 7,
                     [](Builder& b, const std::string& h) {
                       b.node("Tanh", {h}, "t");
                       b.node("Sigmoid", {h}, "s");
                       b.node("Add", {"s", b.constant("one", {}, {1.0})}, "s1");
                       b.node("Div", {"t", "s1"}, "q");  // quotient of two values
                       b.node("Pow", {"s1", b.constant("m05", {}, {-0.5})}, "r");
                       b.node("Pow", {"q", b.ints("three", {3})}, "q3");
                       b.node("Neg", {"q3"}, "nq");
                       b.node("Cast", {"nq"}, "cq").attrs["to"] = attr_i(1);
                       b.node("Mul", {"cq", "r"}, "m");
                       GraphTensor cond;
                       cond.kind = GraphTensor::Kind::Int;
                       cond.shape = {2, 4};
                       cond.ints = {1, 0, 1, 1, 0, 0, 1, 0};
                       b.g.initializers["cond"] = cond;
                       b.node("Where", {"cond", "m", "t"}, "w");
                       b.node("Where", {"cond", "w", b.constant("k", {}, {0.25})}, "w2");
                       b.node("Expand", {b.param("e", {1, 4}, 0.5), b.ints("sh", {2, 4})}, "ex");
                       b.node("Add", {"w2", "ex"}, "out");
                       return std::string("out");
                     }),
      data(5, 8, Loss::CE, 3, 8), Loss::CE);
}

TEST(GraphAttentionOps, SoftmaxOnAnyAxis) {
  for (int64_t axis : {-1, 1, 2}) {
    SCOPED_TRACE(axis);
    check_graph(sequence_model(3, 4, 11,
                               [axis](Builder& b, const std::string& h) {
                                 b.node("Softmax", {h}, "p").attrs["axis"] = attr_i(axis);
                                 return std::string("p");
                               }),
                data(5, 12, Loss::CE, 3, 12), Loss::CE);
  }
}

TEST(GraphAttentionOps, LayoutOpsSplitSliceConcatTranspose) {
  check_graph(sequence_model(
                  3, 4, 13,
                  [](Builder& b, const std::string& h) {
                    // Split [3, 4] into [3, 1] + [3, 3] on the last axis; reverse the
                    // second by a Slice with step -1 (clamped ends); concatenate a
                    // parameter row (a class token) in front; transpose twice.
                    GraphNode& sp = b.node("Split", {h, b.ints("sizes", {1, 3})}, "p1");
                    sp.outputs = {"p1", "p2"};
                    sp.attrs["axis"] = attr_i(-1);
                    b.node("Slice",
                           {"p2", b.ints("st", {-1}), b.ints("en", {-100}), b.ints("axs", {2}),
                            b.ints("stp", {-1})},
                           "rev");
                    b.node("Concat", {"rev", "p1"}, "cat").attrs["axis"] = attr_i(2);
                    b.node("Concat", {b.param("cls", {1, 1, 4}, 0.5), "cat"}, "tok").attrs["axis"] =
                        attr_i(1);
                    b.node("Transpose", {"tok"}, "tt").attrs["perm"] = attr_is({0, 2, 1});
                    b.node("Tanh", {"tt"}, "a");
                    b.node("Slice",
                           {"a", b.ints("st2", {0}), b.ints("en2", {99}), b.ints("axs2", {-1}),
                            b.ints("stp2", {2})},
                           "even");  // tokens 0 and 2 of 4
                    b.node("Transpose", {"even"}, "back").attrs["perm"] = attr_is({0, 2, 1});
                    return std::string("back");
                  }),
              data(5, 12, Loss::CE, 3, 14), Loss::CE);
}

// One causal self-attention head with a residual, over x [T, D].
Graph attention_head(int64_t T, int64_t D, bool use_where, uint64_t seed) {
  return sequence_model(T, D, seed, [&](Builder& b, const std::string& h) {
    b.node("MatMul", {h, b.param("wqkv", {D, 3 * D}, 0.5)}, "qkv");
    GraphNode& sp = b.node("Split", {"qkv"}, "q");
    sp.outputs = {"q", "k", "v"};
    sp.attrs["axis"] = attr_i(2);
    b.node("Transpose", {"k"}, "kt").attrs["perm"] = attr_is({0, 2, 1});
    b.node("MatMul", {"q", "kt"}, "s0");
    b.node("Div", {"s0", b.constant("sqrt_d", {}, {std::sqrt(double(D))})}, "s");
    std::vector<int64_t> causal;
    std::vector<double> additive;
    for (int64_t i = 0; i < T; ++i)
      for (int64_t j = 0; j < T; ++j) {
        causal.push_back(j > i);
        additive.push_back(j > i ? -1e9 : 0.0);
      }
    if (use_where) {
      GraphTensor m;
      m.kind = GraphTensor::Kind::Int;
      m.shape = {T, T};
      m.ints = causal;
      b.g.initializers["mask"] = m;
      b.node("Where", {"mask", b.constant("ninf", {}, {-INFINITY}), "s"}, "sm");
    } else {
      b.node("Add", {"s", b.constant("mask", {T, T}, additive)}, "sm");
    }
    b.node("Softmax", {"sm"}, "p").attrs["axis"] = attr_i(-1);
    b.node("MatMul", {"p", "v"}, "att");
    b.node("Add", {h, "att"}, "res");
    return std::string("res");
  });
}

std::vector<double> dense_product(GraphCurvatureOperator<double>& op) {
  const int64_t P = op.dim();
  std::vector<double> eye(size_t(P * P), 0.0), out;
  for (int64_t i = 0; i < P; ++i) eye[size_t(i * P + i)] = 1;
  for (int64_t c = 0; c < P; c += op.max_block()) {
    const int64_t k = std::min(op.max_block(), P - c);
    const std::vector<double> block(eye.begin() + c * P, eye.begin() + (c + k) * P);
    const auto y = apply_block(op, block, k);
    out.insert(out.end(), y.begin(), y.end());
  }
  return out;  // column-major: column j = C e_j
}

TEST(GraphAttentionOps, CausalAttentionHeadDenseHessian) {
  for (bool where : {true, false}) {
    SCOPED_TRACE(where ? "Where(mask, -inf, s)" : "Add(s, -1e9 mask)");
    const Graph g = attention_head(3, 3, where, 21);
    const Dataset ds = data(4, 9, Loss::CE, 3, 22);
    check_graph(g, ds, Loss::CE);
    GraphCurvatureOperator<double> op(g, ds, gopt(Loss::CE, Curvature::Hessian, 8));
    const int64_t P = op.dim();
    const auto H = dense_product(op);
    std::vector<double> fd;
    for (int64_t j = 0; j < P; ++j) {
      std::vector<double> e(size_t(P), 0.0);
      e[size_t(j)] = 1;
      const auto col = fd_hvp(g, ds, Loss::CE, e, 1e-4);
      fd.insert(fd.end(), col.begin(), col.end());
    }
    EXPECT_LT(rel_err(H, fd), 1e-7) << "dense Hessian vs finite differences, P = " << P;
  }
}

TEST(GraphAttentionOps, MultiHeadBroadcastBatchedMatMul) {
  // [T, D] -> [T, 2, 2] -> [2, T, 2] (heads); scores against one shared key matrix
  // [2, T] per sample (the batch axis broadcast), then per-head values.
  check_graph(
      sequence_model(3, 4, 31,
                     [](Builder& b, const std::string& h) {
                       b.node("Reshape", {h, b.ints("hs", {0, 3, 2, 2})}, "h4");
                       b.node("Transpose", {"h4"}, "q").attrs["perm"] = attr_is({0, 2, 1, 3});
                       b.node("MatMul", {h, b.param("wk", {4, 2}, 0.5)}, "k");
                       b.node("Transpose", {"k"}, "kt").attrs["perm"] = attr_is({0, 2, 1});
                       b.node("MatMul", {"q", "kt"}, "s");  // [2,T,2] @ [2,T] -> [2,T,T]
                       b.node("Softmax", {"s"}, "p");
                       b.node("MatMul", {"p", "q"}, "a");  // [2, T, 2]
                       b.node("Transpose", {"a"}, "at").attrs["perm"] = attr_is({0, 2, 1, 3});
                       b.node("Reshape", {"at", b.ints("back", {0, 3, 4})}, "out");
                       return std::string("out");
                     }),
      data(5, 12, Loss::CE, 3, 32), Loss::CE);
}

// Forward outputs of one sample, read off the gradient of an appended zero bias under mse
// with zero targets (dL/dc = 2 f / out for one sample).
std::vector<double> outputs_of(const Graph& g, const Dataset& one, int64_t out) {
  Graph h = g;
  GraphTensor c;
  c.shape = {out};
  c.values.assign(size_t(out), 0.0);
  h.initializers["probe_bias"] = c;
  h.parameters.push_back("probe_bias");
  GraphNode n;
  n.op = "Add";
  n.name = "probe";
  n.inputs = {g.output, "probe_bias"};
  n.outputs = {"probe_out"};
  h.nodes.push_back(n);
  h.output = "probe_out";
  Dataset d = one;
  d.targets.assign(size_t(out), 0.0f);
  d.target_dim = out;
  const auto grad = grad_at(h, d, Loss::MSE);
  std::vector<double> f(grad.end() - out, grad.end());
  for (double& v : f) v *= double(out) / 2;
  return f;
}

TEST(GraphAttentionOps, GaussNewtonMatchesFiniteDifferenceJacobians) {
  // GGN for mse = 2/(N out) sum_i J_i^T J_i, J_i from central differences of the outputs:
  // an independent reference for the R-forward (J v) and its adjoint.
  const Graph g = attention_head(3, 2, true, 41);
  const int64_t N = 3, out = 3;
  const Dataset ds = data(N, 6, Loss::MSE, out, 42);
  GraphCurvatureOperator<double> op(g, ds, gopt(Loss::MSE, Curvature::GGN, 8));
  const int64_t P = op.dim();
  const auto G = dense_product(op);
  std::vector<double> ref(size_t(P * P), 0.0);
  const std::vector<double> theta = flat_params(g);
  for (int64_t i = 0; i < N; ++i) {
    Dataset one = ds;
    one.n = 1;
    one.inputs.assign(ds.inputs.begin() + i * 6, ds.inputs.begin() + (i + 1) * 6);
    one.targets.clear();
    std::vector<double> J(size_t(out * P));  // [out, P]
    for (int64_t j = 0; j < P; ++j) {
      std::vector<double> tp = theta, tm = theta;
      tp[size_t(j)] += 1e-5;
      tm[size_t(j)] -= 1e-5;
      const auto fp = outputs_of(with_params(g, tp), one, out),
                 fm = outputs_of(with_params(g, tm), one, out);
      for (int64_t o = 0; o < out; ++o)
        J[size_t(o * P + j)] = (fp[size_t(o)] - fm[size_t(o)]) / 2e-5;
    }
    for (int64_t a = 0; a < P; ++a)
      for (int64_t c = 0; c < P; ++c)
        for (int64_t o = 0; o < out; ++o)
          ref[size_t(a * P + c)] +=
              2.0 / double(N * out) * J[size_t(o * P + a)] * J[size_t(o * P + c)];
  }
  EXPECT_LT(rel_err(G, ref), 1e-7);
}

// Heads as exporters write scaled_dot_product_attention: [N, H, T, d] reshaped to [N H, T, d]
// (samples merged with the heads), a positive Softmax axis and a Transpose on the merged
// value, reshaped back. Checked by finite differences and against the same attention
// written on [N, H, T, d] (no merge), which must give the same loss, gradient and products.
Graph heads_graph(bool merge) {
  return sequence_model(3, 4, 51, [merge](Builder& b, const std::string& h) {
    b.node("Reshape", {h, b.ints("hs", {0, 3, 2, 2})}, "h4");
    b.node("Transpose", {"h4"}, "q4").attrs["perm"] = attr_is({0, 2, 1, 3});  // [N, 2, 3, 2]
    std::string q = "q4";
    if (merge) {
      b.node("Reshape", {"q4", b.ints("merge", {-1, 3, 2})}, "q3");  // [N 2, 3, 2]
      q = "q3";
    }
    b.node("Transpose", {q}, "kt").attrs["perm"] =
        merge ? attr_is({0, 2, 1}) : attr_is({0, 1, 3, 2});
    b.node("MatMul", {q, "kt"}, "s0");
    b.node("Mul", {"s0", b.constant("scale", {}, {0.7})}, "s");
    b.node("Softmax", {"s"}, "p").attrs["axis"] = attr_i(merge ? 2 : 3);
    b.node("MatMul", {"p", q}, "a");
    std::string a4 = "a";
    if (merge) {
      b.node("Reshape", {"a", b.ints("unmerge", {7, 2, 3, 2})}, "a4");
      a4 = "a4";
    }
    b.node("Transpose", {a4}, "at").attrs["perm"] = attr_is({0, 2, 1, 3});
    b.node("Reshape", {"at", b.ints("back", {0, 3, 4})}, "out");
    return std::string("out");
  });
}

TEST(GraphAttentionOps, SamplesMergedWithHeads) {
  const Dataset ds = data(5, 12, Loss::CE, 3, 52);
  const Graph merged = heads_graph(true), plain = heads_graph(false);
  check_graph(merged, ds, Loss::CE);
  GraphCurvatureOperator<double> a(merged, ds, gopt(Loss::CE)), c(plain, ds, gopt(Loss::CE));
  EXPECT_NEAR(a.loss_value(), c.loss_value(), 1e-13);
  EXPECT_LT(rel_err(a.gradient(), c.gradient()), 1e-12);
  const auto v = gauss(a.dim(), 53, 0);
  EXPECT_LT(rel_err(apply_block(a, v, 1), apply_block(c, v, 1)), 1e-12);
  // An op that would need the merged axis split is refused by name.
  Graph bad = merged;
  GraphNode n;
  n.op = "ReduceMean";
  n.name = "mean_over_merged";
  n.inputs = {"s"};
  n.outputs = {"m"};
  bad.nodes.insert(bad.nodes.begin() + 7, n);
  EXPECT_THROW(make_plan(bad), InputError);
}

}  // namespace
}  // namespace hspec
