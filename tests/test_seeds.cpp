// The worked numbers of the project's seed notes (logistic and squared losses, small
// quadratics, the optimal step of a quadratic), each checked again through our operators.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "hspec/dense_operator.hpp"
#include "hvp_test_util.hpp"

namespace hspec {
namespace {

using namespace hvptest;

// A bias-free Linear in -> out layer with the given weights ([out, in] row-major).
Model linear(int64_t in, int64_t out, std::vector<double> weight) {
  Model m;
  m.activation = Activation::Identity;
  Layer ly;
  ly.name = "0";
  ly.in = in;
  ly.out = out;
  ly.has_bias = false;
  ly.weight = std::move(weight);
  m.layers.push_back(ly);
  return m;
}

// The notes round to 3 decimals: a value matches when it rounds to the quoted one.
void expect_rounds_to(double value, double quoted) {
  EXPECT_NEAR(value, quoted, 5e-4 + 1e-12);
}

// One sample x = 1 with label 1 and weight w = yhat: the logit is yhat, so the derivatives
// in w are those in yhat: dL/dw = p - 1, d2L/dw2 = p(1 - p).
TEST(SeedLogistic, ProbabilityGradientCurvatureAtThreeLogits) {
  struct Row {
    double yhat, p, grad, curv;
  };
  for (const Row& r : {Row{0.1, 0.525, -0.475, 0.249}, Row{2.0, 0.881, -0.119, 0.105},
                       Row{5.0, 0.993, -0.007, 0.007}}) {
    SCOPED_TRACE(r.yhat);
    const double p = 1.0 / (1.0 + std::exp(-r.yhat));
    expect_rounds_to(p, r.p);
    expect_rounds_to(p - 1, r.grad);
    expect_rounds_to(p * (1 - p), r.curv);

    Dataset ds;
    ds.n = 1;
    ds.d = 1;
    ds.inputs = {1.0f};
    ds.labels = {1};
    ds.source = "seed";
    MlpReferenceOperator<double> op(linear(1, 1, {r.yhat}), ds, options(Loss::BCE));
    EXPECT_NEAR(op.loss_value(), std::log1p(std::exp(-r.yhat)), 1e-15);
    ASSERT_EQ(op.gradient().size(), 1u);
    EXPECT_NEAR(op.gradient()[0], p - 1, 1e-15);
    expect_rounds_to(op.gradient()[0], r.grad);
    const auto h = apply_one(op, {1.0});
    EXPECT_NEAR(h[0], p * (1 - p), 1e-15);
    expect_rounds_to(h[0], r.curv);
  }
}

// (y - yhat)^2 at y = 5, yhat = 2: loss 9, gradient -6, Hessian 2.
TEST(SeedSquaredLoss, GradientAndCurvature) {
  Dataset ds;
  ds.n = 1;
  ds.d = 1;
  ds.inputs = {1.0f};
  ds.targets = {5.0f};
  ds.target_dim = 1;
  ds.source = "seed";
  MlpReferenceOperator<double> op(linear(1, 1, {2.0}), ds, options(Loss::MSE));
  EXPECT_DOUBLE_EQ(op.loss_value(), 9.0);
  EXPECT_DOUBLE_EQ(op.gradient()[0], -6.0);
  EXPECT_DOUBLE_EQ(apply_one(op, {1.0})[0], 2.0);
  // The GGN of a model linear in its weight is the same number.
  MlpReferenceOperator<double> ggn(linear(1, 1, {2.0}), ds, options(Loss::MSE, Curvature::GGN));
  EXPECT_DOUBLE_EQ(apply_one(ggn, {1.0})[0], 2.0);
}

// A quadratic f(w) = (1/N) sum_s (x_s . w)^2 is the mse loss of a bias-free Linear 2 -> 1
// with zero targets; its Hessian is (2/N) sum_s x_s x_s^T whatever w is.
Dataset quadratic_data(const std::vector<std::vector<float>>& xs) {
  Dataset ds;
  ds.n = int64_t(xs.size());
  ds.d = 2;
  for (const auto& x : xs) ds.inputs.insert(ds.inputs.end(), x.begin(), x.end());
  ds.targets.assign(xs.size(), 0.0f);
  ds.target_dim = 1;
  ds.source = "seed";
  return ds;
}

// The dense Hessian through the operator, and its extreme eigenvalues through Lanczos.
void expect_quadratic(const Dataset& ds, const Dense& h, double lo, double hi) {
  MlpReferenceOperator<double> op(linear(2, 1, {0.3, -0.7}), ds, options(Loss::MSE));
  const Dense got = dense_from_operator(op);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(got[i], h[i], 1e-14) << "entry " << i;
  const auto w = eigenvalues(got, 2);
  EXPECT_NEAR(w[0], lo, 1e-13);
  EXPECT_NEAR(w[1], hi, 1e-13);
  LanczosOptions opt;
  opt.top = 1;
  opt.bottom = 1;
  opt.tol = 1e-12;
  const auto r = lanczos(op, opt);
  EXPECT_TRUE(r.converged);
  EXPECT_NEAR(r.top[0].value, hi, 1e-12);
  EXPECT_NEAR(r.bottom[0].value, lo, 1e-12);
}

TEST(SeedQuadratic, SumOfSquaresIsTwiceIdentity) {
  // x^2 + y^2 = ((x + y)^2 + (x - y)^2) / 2.
  expect_quadratic(quadratic_data({{1, 1}, {1, -1}}), {2, 0, 0, 2}, 2.0, 2.0);
}

TEST(SeedQuadratic, CoupledQuadraticHasEigenvaluesFourPlusMinusTwoRootTwo) {
  // 3x^2 + 2xy + y^2 = (x + y)^2 + 2x^2 = ((2x + 2y)^2 + (2x)^2 + (2x)^2 + 0) / 4.
  expect_quadratic(quadratic_data({{2, 2}, {2, 0}, {2, 0}, {0, 0}}), {6, 2, 2, 2},
                   4 - 2 * std::sqrt(2.0), 4 + 2 * std::sqrt(2.0));
}

TEST(SeedQuadratic, AnisotropicBowl) {
  // w1^2 + 4 w2^2 = ((w1 + 2 w2)^2 + (w1 - 2 w2)^2) / 2: curvatures 2 and 8.
  expect_quadratic(quadratic_data({{1, 2}, {1, -2}}), {2, 0, 0, 8}, 2.0, 8.0);
}

// x^2 - y^2 is a saddle (no mse model gives one: their GGN is PSD), so it goes in as a dense
// matrix; Lanczos must report both signs.
TEST(SeedQuadratic, SaddleHasEigenvaluesPlusMinusTwo) {
  for (int block : {1, 2}) {
    SCOPED_TRACE(block);
    DenseOperator<double> op({2, 0, 0, -2}, 2);
    LanczosOptions opt;
    opt.top = 1;
    opt.bottom = 1;
    opt.block = block;
    opt.tol = 1e-12;
    const auto r = lanczos(op, opt);
    EXPECT_TRUE(r.converged);
    EXPECT_NEAR(r.top[0].value, 2.0, 1e-12);
    EXPECT_NEAR(r.bottom[0].value, -2.0, 1e-12);
  }
  // The same saddle rotated by 45 degrees, 2xy, has the same eigenvalues +-2.
  DenseOperator<double> rot({0, 2, 2, 0}, 2);
  LanczosOptions opt;
  opt.top = 1;
  opt.bottom = 1;
  opt.tol = 1e-12;
  const auto r = lanczos(rot, opt);
  EXPECT_NEAR(r.top[0].value, 2.0, 1e-12);
  EXPECT_NEAR(r.bottom[0].value, -2.0, 1e-12);
}

// For a quadratic loss the step alpha = g^T g / g^T H g along -g lands on the line minimum:
// checked by evaluating the loss along the line with fresh operators.
TEST(SeedOptimalStep, ExactLineMinimumOfLeastSquares) {
  const int64_t d = 4, out = 2;
  const Model m = make_mlp({d, out}, Activation::Identity, 1500);
  const Dataset ds = make_data(30, d, Loss::MSE, out, 1501);
  MlpReferenceOperator<double> op(m, ds, options(Loss::MSE));
  const auto theta = m.flatten();
  const std::vector<double> g = op.gradient();
  const double gg = dot(g, g), ghg = dot(g, apply_one(op, g));
  ASSERT_GT(ghg, 0.0);
  const double alpha = gg / ghg;

  auto loss_at = [&](double a) {
    std::vector<double> t = theta;
    for (size_t i = 0; i < t.size(); ++i) t[i] -= a * g[i];
    MlpReferenceOperator<double> fresh(with_params(m, t), ds, options(Loss::MSE));
    return fresh.loss_value();
  };
  const double l0 = op.loss_value(), lstar = loss_at(alpha);
  // Exact decrease of a quadratic: (g^T g)^2 / (2 g^T H g).
  EXPECT_NEAR(l0 - lstar, gg * gg / (2 * ghg), 1e-12 * l0);
  // The line is a parabola with curvature g^T H g centred on alpha.
  for (double delta : {0.05 * alpha, 0.3 * alpha}) {
    const double up = loss_at(alpha + delta), down = loss_at(alpha - delta);
    EXPECT_GT(up, lstar);
    EXPECT_GT(down, lstar);
    EXPECT_NEAR(up, down, 1e-12 * l0);
    EXPECT_NEAR(up - lstar, 0.5 * delta * delta * ghg, 1e-10 * l0);
  }
  // At the minimum the new gradient is orthogonal to the search direction.
  std::vector<double> t = theta;
  for (size_t i = 0; i < t.size(); ++i) t[i] -= alpha * g[i];
  EXPECT_NEAR(dot(gradient_at(m, t, ds, Loss::MSE), g), 0.0, 1e-12 * gg);
}

}  // namespace
}  // namespace hspec
