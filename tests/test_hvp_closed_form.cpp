// Curvature-operator tests against closed-form Hessians of models linear in their
// parameters: logistic, least-squares and softmax regression, and their Gauss-Newton forms,
// on both implementations of an MLP's products (the graph operator and the MLP reference).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "hvp_test_util.hpp"

namespace hspec {
namespace {

using namespace hvptest;

// [x; 1] for sample s: the bias acts as a weight on a constant feature.
std::vector<double> augmented(const Dataset& ds, int64_t s) {
  std::vector<double> x(ds.inputs.begin() + s * ds.d, ds.inputs.begin() + (s + 1) * ds.d);
  x.push_back(1.0);
  return x;
}

// Flat index of weight (o, i) of a single Linear d -> out layer, i == d meaning the bias:
// weight [out, d] row-major first, then bias [out].
int64_t flat_index(int64_t o, int64_t i, int64_t d, int64_t out) {
  return i < d ? o * d + i : out * d + o;
}

// Entrywise agreement relative to the largest entry of the reference.
void expect_dense_near(const Dense& got, const Dense& ref, double rel) {
  ASSERT_EQ(got.size(), ref.size());
  const double scale = max_abs(ref);
  ASSERT_GT(scale, 0.0);
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(got[i] - ref[i]));
  EXPECT_LE(worst, rel * scale) << "max entry error " << worst << " vs scale " << scale;
}

TEST(HvpClosedForm, LogisticRegressionBce) {
  const int64_t d = 5, n = 40;
  const Model m = make_mlp({d, 1}, Activation::Identity, 11);
  const Dataset ds = make_data(n, d, Loss::BCE, 1, 12);
  const int64_t p = d + 1;
  // H = (1/N) sum p(1-p) [x;1][x;1]^T, p = sigmoid(w.x + b) evaluated here.
  Dense ref(static_cast<size_t>(p * p), 0.0);
  for (int64_t s = 0; s < n; ++s) {
    const double z = ref_forward(m, ds.inputs.data() + s * d, nullptr)[0];
    const double pr = 1.0 / (1.0 + std::exp(-z));
    const auto x = augmented(ds, s);
    for (int64_t j = 0; j < p; ++j)
      for (int64_t i = 0; i < p; ++i) ref[i + j * p] += pr * (1 - pr) * x[i] * x[j] / double(n);
  }
  for (Engine e : kEngines) {
    for (int64_t block : {1, 4, 8}) {
      SCOPED_TRACE(engine_name(e) + " block " + std::to_string(block));
      auto op = make_operator(e, m, ds, options(Loss::BCE, Curvature::Hessian, block));
      ASSERT_EQ(op->dim(), p);
      expect_dense_near(dense_from_operator(*op), ref, 1e-12);
    }
  }
}

TEST(HvpClosedForm, LeastSquaresMseDecouplesOutputs) {
  const int64_t d = 4, out = 3, n = 30;
  const Model m = make_mlp({d, out}, Activation::Identity, 21);
  const Dataset ds = make_data(n, d, Loss::MSE, out, 22);
  const int64_t p = out * (d + 1);
  // Block (W_o, b_o) = 2/(N out) sum [x;1][x;1]^T; different outputs do not couple.
  Dense ref(static_cast<size_t>(p * p), 0.0);
  for (int64_t s = 0; s < n; ++s) {
    const auto x = augmented(ds, s);
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i <= d; ++i)
        for (int64_t j = 0; j <= d; ++j)
          ref[flat_index(o, i, d, out) + flat_index(o, j, d, out) * p] +=
              2.0 * x[i] * x[j] / double(n * out);
  }
  for (Engine e : kEngines) {
    SCOPED_TRACE(engine_name(e));
    auto op = make_operator(e, m, ds, options(Loss::MSE, Curvature::Hessian, 5));
    ASSERT_EQ(op->dim(), p);
    const Dense h = dense_from_operator(*op);
    expect_dense_near(h, ref, 1e-12);
    // The decoupling is structural: cross-output entries are exactly zero.
    for (int64_t o = 0; o < out; ++o)
      for (int64_t o2 = 0; o2 < out; ++o2)
        if (o != o2)
          for (int64_t i = 0; i <= d; ++i)
            for (int64_t j = 0; j <= d; ++j)
              EXPECT_EQ(h[flat_index(o, i, d, out) + flat_index(o2, j, d, out) * p], 0.0);
  }
}

// Adding the same vector to every class's logit leaves the loss unchanged, so shifting all
// weight rows by one u and all biases by one beta is a null direction: d + 1 of them.
void expect_softmax_null_space(CurvatureOperator<double>& op, const Dense& h, int64_t d,
                               int64_t C) {
  const int64_t p = C * (d + 1);
  const auto w = eigenvalues(symmetrised(h, p), p);
  const double top = w.back();
  int64_t zeros = 0;
  for (double v : w) zeros += std::abs(v) <= 1e-12 * top;
  EXPECT_EQ(zeros, d + 1);
  EXPECT_GT(w[d + 1], 1e-6 * top) << "the rest of the spectrum is positive";
  std::vector<double> shift(static_cast<size_t>(p));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i <= d; ++i) shift[flat_index(c, i, d, C)] = rng::gaussian(33, 0, i);
  EXPECT_LE(norm(apply_one(op, shift)), 1e-13 * top * norm(shift));
}

TEST(HvpClosedForm, SoftmaxRegressionCeAndItsNullSpace) {
  const int64_t d = 4, C = 3, n = 30;
  const Model m = make_mlp({d, C}, Activation::Identity, 31);
  const Dataset ds = make_data(n, d, Loss::CE, C, 32);
  const int64_t p = C * (d + 1);
  // H = (1/N) sum (diag(p) - p p^T) (x) [x;1][x;1]^T in the flat order.
  Dense ref(static_cast<size_t>(p * p), 0.0);
  for (int64_t s = 0; s < n; ++s) {
    auto z = ref_forward(m, ds.inputs.data() + s * d, nullptr);
    double sum = 0;
    for (double& v : z) sum += (v = std::exp(v));
    for (double& v : z) v /= sum;
    const auto x = augmented(ds, s);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t c2 = 0; c2 < C; ++c2) {
        const double sc = (c == c2 ? z[c] : 0.0) - z[c] * z[c2];
        for (int64_t i = 0; i <= d; ++i)
          for (int64_t j = 0; j <= d; ++j)
            ref[flat_index(c, i, d, C) + flat_index(c2, j, d, C) * p] +=
                sc * x[i] * x[j] / double(n);
      }
  }
  for (Engine e : kEngines) {
    SCOPED_TRACE(engine_name(e));
    auto op = make_operator(e, m, ds, options(Loss::CE, Curvature::Hessian, 4));
    const Dense h = dense_from_operator(*op);
    expect_dense_near(h, ref, 1e-12);
    expect_softmax_null_space(*op, h, d, C);
  }
}

// For a model linear in its parameters the second-order term vanishes: GGN == Hessian.
TEST(HvpClosedForm, GgnEqualsHessianForSingleLinearLayer) {
  struct Case {
    Loss loss;
    int64_t out;
    bool bias;
  };
  for (const Case& c : {Case{Loss::MSE, 3, true}, Case{Loss::CE, 4, true}, Case{Loss::BCE, 1, true},
                        Case{Loss::CE, 3, false}}) {
    SCOPED_TRACE(loss_name(c.loss));
    const int64_t d = 5;
    const Model m = make_mlp({d, c.out}, Activation::Tanh, 41, c.bias);
    const Dataset ds = make_data(25, d, c.loss, c.out, 42);
    for (Engine e : kEngines) {
      SCOPED_TRACE(engine_name(e));
      auto hess = make_operator(e, m, ds, options(c.loss, Curvature::Hessian, 6));
      auto ggn = make_operator(e, m, ds, options(c.loss, Curvature::GGN, 6));
      expect_dense_near(dense_from_operator(*ggn), dense_from_operator(*hess), 1e-14);
    }
  }
}

}  // namespace
}  // namespace hspec
