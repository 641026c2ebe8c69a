// Graph engine, whole operator: graph_from_mlp against the MLP operator and closed forms,
// the Gauss-Newton matrix positive semidefinite, a Conv against the Linear layer of its
// unrolled matrix, chunking, fp32 against fp64.
#include <gtest/gtest.h>

#include "graph_test_util.hpp"
#include "hspec/graph/graph_operator.hpp"
#include "hvp_test_util.hpp"

namespace hspec {
namespace {

using graphtest::attr_i;
using graphtest::attr_is;
using graphtest::Builder;
using graphtest::gopt;
using hvptest::Dense;

void expect_close(const Dense& got, const Dense& ref, double rel) {
  ASSERT_EQ(got.size(), ref.size());
  const double scale = hvptest::max_abs(ref);
  ASSERT_GT(scale, 0.0);
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(got[i] - ref[i]));
  EXPECT_LE(worst, rel * scale) << "max entry error " << worst << " vs scale " << scale;
}

TEST(GraphOperator, MlpGraphMatchesMlpOperator) {
  struct Case {
    Activation act;
    Loss loss;
    int64_t out;
  };
  for (const Case& c :
       {Case{Activation::Tanh, Loss::CE, 3}, Case{Activation::Relu, Loss::MSE, 2},
        Case{Activation::Sigmoid, Loss::BCE, 1}, Case{Activation::Gelu, Loss::CE, 4},
        Case{Activation::Identity, Loss::MSE, 2}}) {
    SCOPED_TRACE(activation_name(c.act));
    const Model m = hvptest::make_mlp({5, 6, 4, c.out}, c.act, 7);
    const Dataset ds = hvptest::make_data(23, 5, c.loss, c.out, 8);
    const Graph g = graph_from_mlp(m);
    EXPECT_EQ(graphtest::flat_params(g), m.flatten());
    for (Curvature cv : {Curvature::Hessian, Curvature::GGN}) {
      GraphCurvatureOperator<double> gop(g, ds, gopt(c.loss, cv, 5));
      MlpReferenceOperator<double> mop(m, ds, hvptest::options(c.loss, cv, 5));
      EXPECT_NEAR(gop.loss_value(), mop.loss_value(), 1e-13 * std::max(1.0, mop.loss_value()));
      EXPECT_LT(graphtest::rel_err(gop.gradient(), mop.gradient()), 1e-12);
      expect_close(hvptest::dense_from_operator(gop), hvptest::dense_from_operator(mop), 1e-12);
    }
  }
}

TEST(GraphOperator, LogisticRegressionClosedForm) {
  const int64_t d = 5, n = 40;
  const Model m = hvptest::make_mlp({d, 1}, Activation::Identity, 11);
  const Dataset ds = hvptest::make_data(n, d, Loss::BCE, 1, 12);
  const int64_t p = d + 1;
  // H = (1/N) sum p(1-p) [x;1][x;1]^T.
  Dense ref(size_t(p * p), 0.0);
  for (int64_t s = 0; s < n; ++s) {
    const double z = hvptest::ref_forward(m, ds.inputs.data() + s * d, nullptr)[0];
    const double pr = 1.0 / (1.0 + std::exp(-z));
    std::vector<double> x(ds.inputs.begin() + s * d, ds.inputs.begin() + (s + 1) * d);
    x.push_back(1.0);
    for (int64_t j = 0; j < p; ++j)
      for (int64_t i = 0; i < p; ++i)
        ref[size_t(i + j * p)] += pr * (1 - pr) * x[i] * x[j] / double(n);
  }
  GraphCurvatureOperator<double> op(graph_from_mlp(m), ds, gopt(Loss::BCE, Curvature::Hessian, 4));
  expect_close(hvptest::dense_from_operator(op), ref, 1e-12);
}

TEST(GraphOperator, LeastSquaresClosedForm) {
  const int64_t d = 4, out = 3, n = 30;
  const Model m = hvptest::make_mlp({d, out}, Activation::Identity, 21);
  const Dataset ds = hvptest::make_data(n, d, Loss::MSE, out, 22);
  const int64_t p = out * (d + 1);
  auto flat = [&](int64_t o, int64_t i) { return i < d ? o * d + i : out * d + o; };
  Dense ref(size_t(p * p), 0.0);
  for (int64_t s = 0; s < n; ++s)
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i <= d; ++i)
        for (int64_t j = 0; j <= d; ++j) {
          const double xi = i < d ? ds.inputs[size_t(s * d + i)] : 1.0;
          const double xj = j < d ? ds.inputs[size_t(s * d + j)] : 1.0;
          ref[size_t(flat(o, i) + flat(o, j) * p)] += 2.0 * xi * xj / double(n * out);
        }
  GraphCurvatureOperator<double> op(graph_from_mlp(m), ds, gopt(Loss::MSE, Curvature::Hessian, 7));
  expect_close(hvptest::dense_from_operator(op), ref, 1e-12);
}

TEST(GraphOperator, SoftmaxRegressionClosedForm) {
  const int64_t d = 3, C = 4, n = 25;
  const Model m = hvptest::make_mlp({d, C}, Activation::Identity, 15);
  const Dataset ds = hvptest::make_data(n, d, Loss::CE, C, 16);
  const int64_t p = C * (d + 1);
  auto flat = [&](int64_t o, int64_t i) { return i < d ? o * d + i : C * d + o; };
  // H = (1/N) sum (diag(q) - q q^T) (x) [x;1][x;1]^T, q = softmax(W x + b).
  Dense ref(size_t(p * p), 0.0);
  for (int64_t s = 0; s < n; ++s) {
    const auto z = hvptest::ref_forward(m, ds.inputs.data() + s * d, nullptr);
    double zmax = z[0], sum = 0;
    for (double v : z) zmax = std::max(zmax, v);
    for (double v : z) sum += std::exp(v - zmax);
    std::vector<double> q(static_cast<size_t>(C));
    std::vector<double> x(ds.inputs.begin() + s * d, ds.inputs.begin() + (s + 1) * d);
    for (int64_t o = 0; o < C; ++o) q[size_t(o)] = std::exp(z[size_t(o)] - zmax) / sum;
    x.push_back(1.0);
    for (int64_t o = 0; o < C; ++o)
      for (int64_t o2 = 0; o2 < C; ++o2)
        for (int64_t i = 0; i <= d; ++i)
          for (int64_t j = 0; j <= d; ++j)
            ref[size_t(flat(o, i) + flat(o2, j) * p)] +=
                ((o == o2 ? q[size_t(o)] : 0.0) - q[size_t(o)] * q[size_t(o2)]) * x[size_t(i)] *
                x[size_t(j)] / double(n);
  }
  GraphCurvatureOperator<double> op(graph_from_mlp(m), ds, gopt(Loss::CE, Curvature::Hessian, 5));
  expect_close(hvptest::dense_from_operator(op), ref, 1e-12);
}

TEST(GraphOperator, AliasedOutputInEveryMode) {
  // The loss applied to an alias (Reshape of the last Gemm), cached and recomputed.
  Builder b({4}, 61);
  b.node("Gemm", {"x", b.param("w", {6, 4}, 0.5)}, "z").attrs["transB"] = attr_i(1);
  b.node("Tanh", {"z"}, "t");
  b.node("Gemm", {"t", b.param("w2", {3, 6}, 0.5)}, "u").attrs["transB"] = attr_i(1);
  b.node("Reshape", {"u", b.ints("shape", {-1, 3})}, "y");
  const Dataset ds = graphtest::data(9, 4, Loss::CE, 3, 62);
  const auto x = graphtest::gauss(6 * 4 + 3 * 6, 63, 0);
  for (Curvature c : {Curvature::Hessian, Curvature::GGN}) {
    GraphCurvatureOperator<double> whole(b.g, ds, gopt(Loss::CE, c, 1));
    GraphOperatorOptions o = gopt(Loss::CE, c, 1);
    o.chunk = 2;
    o.memory_budget = 256;
    GraphCurvatureOperator<double> recomputed(b.g, ds, o);
    EXPECT_FALSE(recomputed.primal_cached());
    EXPECT_LT(graphtest::rel_err(graphtest::apply_block(recomputed, x, 1),
                                 graphtest::apply_block(whole, x, 1)),
              1e-13);
  }
}

// x [2, 5, 5] -> Conv(3 out, 3x3, pad 1) -> Relu -> MaxPool 2x2 -> Flatten -> Gemm -> [out]
Graph small_cnn(int64_t out, uint64_t seed) {
  Builder b({2, 5, 5}, seed);
  GraphNode& c =
      b.node("Conv", {"x", b.param("cw", {3, 2, 3, 3}, 0.4), b.param("cb", {3}, 0.2)}, "c");
  c.attrs["pads"] = attr_is({1, 1, 1, 1});
  b.node("Relu", {"c"}, "r");
  GraphNode& mp = b.node("MaxPool", {"r"}, "mp");
  mp.attrs["kernel_shape"] = attr_is({2, 2});
  mp.attrs["strides"] = attr_is({2, 2});
  b.node("Flatten", {"mp"}, "f");
  b.node("Gemm", {"f", b.param("w", {out, 12}, 0.5), b.param("b", {out}, 0.2)}, "y")
      .attrs["transB"] = attr_i(1);
  return b.g;
}

TEST(GraphOperator, GaussNewtonIsPositiveSemidefinite) {
  for (Loss loss : {Loss::CE, Loss::MSE}) {
    const Graph g = small_cnn(3, 31);
    const Dataset ds = graphtest::data(9, 50, loss, 3, 32);
    GraphCurvatureOperator<double> op(g, ds, gopt(loss, Curvature::GGN, 8));
    const int64_t P = op.dim();
    const Dense a = hvptest::dense_from_operator(op);
    const auto w = hvptest::eigenvalues(hvptest::symmetrised(a, P), P);
    EXPECT_GE(w.front(), -1e-12 * w.back()) << loss_name(loss);
    EXPECT_GT(w.back(), 0.0);
    // The Hessian of the same net is indefinite here, so the test can tell them apart.
    GraphCurvatureOperator<double> hop(g, ds, gopt(loss, Curvature::Hessian, 8));
    const auto wh =
        hvptest::eigenvalues(hvptest::symmetrised(hvptest::dense_from_operator(hop), P), P);
    EXPECT_LT(wh.front(), -1e-8 * wh.back()) << loss_name(loss);
  }
}

TEST(GraphOperator, ConvEqualsLinearOfUnrolledMatrix) {
  // Conv weight w [O, C, kh, kw] acts as the matrix M(w) [O P, C H W]; M is linear in w,
  // M = A w, so H_conv = J^T H_linear J with J = diag(A, I) over (w, head).
  const int64_t C = 2, H = 5, W = 4, O = 3, kh = 2, kw = 3, sh = 2, sw = 1, pt = 1, pl = 1;
  const int64_t OH = (H + pt + 0 - kh) / sh + 1, OW = (W + pl + 1 - kw) / sw + 1, P = OH * OW;
  Builder bc({C, H, W}, 41);
  GraphNode& c = bc.node("Conv", {"x", bc.param("cw", {O, C, kh, kw}, 0.5)}, "c");
  c.attrs["pads"] = attr_is({pt, pl, 0, 1});
  c.attrs["strides"] = attr_is({sh, sw});
  bc.node("Tanh", {"c"}, "t");
  bc.node("Flatten", {"t"}, "f");
  bc.node("Gemm", {"f", bc.param("w2", {3, O * P}, 0.4)}, "y").attrs["transB"] = attr_i(1);
  const int64_t nw = O * C * kh * kw, nm = O * P * C * H * W;
  // A: d M[o p, c h w] / d w[o c i j], from the definition of a padded strided convolution.
  std::vector<double> A(size_t(nm * nw), 0.0);
  for (int64_t o = 0; o < O; ++o)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t ch = 0; ch < C; ++ch)
          for (int64_t i = 0; i < kh; ++i)
            for (int64_t j = 0; j < kw; ++j) {
              const int64_t ih = oh * sh - pt + i, iw = ow * sw - pl + j;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              const int64_t row = (o * P + oh * OW + ow) * (C * H * W) + (ch * H + ih) * W + iw;
              A[size_t(row * nw + ((o * C + ch) * kh + i) * kw + j)] = 1.0;
            }
  const std::vector<double> wv = bc.g.initializers["cw"].values;
  Builder bl({C, H, W}, 42);
  bl.node("Flatten", {"x"}, "xf");
  std::vector<double> mv(size_t(nm), 0.0);
  for (int64_t r = 0; r < nm; ++r)
    for (int64_t q = 0; q < nw; ++q) mv[size_t(r)] += A[size_t(r * nw + q)] * wv[size_t(q)];
  bl.g.initializers["M"] = GraphTensor{GraphTensor::Kind::Float, {O * P, C * H * W}, mv, {}};
  bl.g.parameters.push_back("M");
  bl.node("Gemm", {"xf", "M"}, "c").attrs["transB"] = attr_i(1);
  bl.node("Tanh", {"c"}, "t");
  bl.g.initializers["w2"] = bc.g.initializers["w2"];
  bl.g.parameters.push_back("w2");
  bl.node("Gemm", {"t", "w2"}, "y").attrs["transB"] = attr_i(1);

  const Dataset ds = graphtest::data(7, C * H * W, Loss::CE, 3, 43);
  GraphCurvatureOperator<double> conv(bc.g, ds, gopt(Loss::CE, Curvature::Hessian, 2));
  GraphCurvatureOperator<double> lin(bl.g, ds, gopt(Loss::CE, Curvature::Hessian, 2));
  EXPECT_NEAR(conv.loss_value(), lin.loss_value(), 1e-13);
  const int64_t head = 3 * O * P;
  for (uint64_t s = 0; s < 3; ++s) {
    const auto v = graphtest::gauss(nw + head, 44, s);
    // J v = (A v_w, v_head); expected H_conv v = J^T H_lin J v.
    std::vector<double> jv(size_t(nm + head), 0.0);
    for (int64_t r = 0; r < nm; ++r)
      for (int64_t q = 0; q < nw; ++q) jv[size_t(r)] += A[size_t(r * nw + q)] * v[size_t(q)];
    for (int64_t i = 0; i < head; ++i) jv[size_t(nm + i)] = v[size_t(nw + i)];
    const auto hjv = graphtest::apply_block(lin, jv, 1);
    std::vector<double> ref(size_t(nw + head), 0.0);
    for (int64_t r = 0; r < nm; ++r)
      for (int64_t q = 0; q < nw; ++q) ref[size_t(q)] += A[size_t(r * nw + q)] * hjv[size_t(r)];
    for (int64_t i = 0; i < head; ++i) ref[size_t(nw + i)] = hjv[size_t(nm + i)];
    EXPECT_LT(graphtest::rel_err(graphtest::apply_block(conv, v, 1), ref), 1e-12);
  }
}

TEST(GraphOperator, ChunkedEqualsUnchunkedAndFp32CloseToFp64) {
  const Graph g = small_cnn(3, 51);
  const Dataset ds = graphtest::data(13, 50, Loss::CE, 3, 52);
  GraphCurvatureOperator<double> whole(g, ds, gopt(Loss::CE, Curvature::Hessian, 4));
  ASSERT_TRUE(whole.primal_cached());
  GraphOperatorOptions o = gopt(Loss::CE, Curvature::Hessian, 4);
  o.chunk = 4;
  GraphCurvatureOperator<double> cached(g, ds, o);
  o.memory_budget = 4096;  // too small to cache: the primal pass is recomputed per chunk
  GraphCurvatureOperator<double> recomputed(g, ds, o);
  EXPECT_FALSE(recomputed.primal_cached());
  EXPECT_EQ(recomputed.chunk_size(), 4);
  GraphCurvatureOperator<float> single(g, ds, gopt(Loss::CE, Curvature::Hessian, 4));
  std::vector<double> x;
  for (uint64_t s = 0; s < 4; ++s) {
    const auto v = graphtest::gauss(whole.dim(), 53, s);
    x.insert(x.end(), v.begin(), v.end());
  }
  const auto ref = graphtest::apply_block(whole, x, 4);
  EXPECT_LT(graphtest::rel_err(graphtest::apply_block(cached, x, 4), ref), 1e-13);
  EXPECT_LT(graphtest::rel_err(graphtest::apply_block(recomputed, x, 4), ref), 1e-13);
  EXPECT_LT(graphtest::rel_err(recomputed.gradient(), whole.gradient()), 1e-13);
  EXPECT_LT(graphtest::rel_err(graphtest::apply_block(single, x, 4), ref), 1e-5);
  EXPECT_NEAR(single.loss_value(), whole.loss_value(), 1e-6);
  // Gauss-Newton keeps no primal adjoints and skips the backward pass when recomputing.
  GraphCurvatureOperator<double> ggn(g, ds, gopt(Loss::CE, Curvature::GGN, 4));
  GraphOperatorOptions og = o;
  og.curvature = Curvature::GGN;
  GraphCurvatureOperator<double> ggn_recomputed(g, ds, og);
  EXPECT_FALSE(ggn_recomputed.primal_cached());
  EXPECT_LT(graphtest::rel_err(graphtest::apply_block(ggn_recomputed, x, 4),
                               graphtest::apply_block(ggn, x, 4)),
            1e-13);
  EXPECT_LT(graphtest::rel_err(ggn_recomputed.gradient(), whole.gradient()), 1e-13);
}

// Training writes each step's parameters into one plan: the operator on it must be the one at
// those parameters (the MLP reference operator's loss and gradient there, and the product
// of a plan lowered from the new weights), and a vector of the wrong length is refused.
TEST(GraphOperator, SetParametersMovesThePlanToNewWeights) {
  const Model m = hvptest::make_mlp({5, 4, 3}, Activation::Tanh, 7);
  const Dataset ds = hvptest::make_data(20, 5, Loss::CE, 3, 8);
  std::vector<double> theta = m.flatten();
  const std::vector<double> step = hvptest::gaussian_vector(m.num_params(), 9, 0);
  for (size_t i = 0; i < theta.size(); ++i) theta[i] += 0.1 * step[i];
  const Model moved = hvptest::with_params(m, theta);

  Plan plan = make_plan(graph_from_mlp(m));
  set_parameters(plan, theta);
  GraphOperatorOptions o;
  o.loss = Loss::CE;
  GraphCurvatureOperator<double> op(plan, ds, o);
  MlpReferenceOperator<double> ref(moved, ds, hvptest::options(Loss::CE));
  EXPECT_NEAR(op.loss_value(), ref.loss_value(), 1e-13);
  EXPECT_LE(hvptest::rel_diff(op.gradient(), ref.gradient()), 1e-12);
  GraphCurvatureOperator<double> fresh(graph_from_mlp(moved), ds, o);
  const std::vector<double> v = hvptest::gaussian_vector(m.num_params(), 10, 0);
  EXPECT_EQ(hvptest::apply_one(op, v), hvptest::apply_one(fresh, v));

  theta.pop_back();
  EXPECT_THROW(set_parameters(plan, theta), InputError);
}

}  // namespace
}  // namespace hspec
