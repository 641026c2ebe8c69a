// Curvature spectra of small MLPs: the Gauss-Newton matrix against J^T H_z J from
// finite-difference Jacobians, its definiteness, and BlockLanczos (fp64 and fp32) against
// LAPACK on the dense Hessian built from products with e_i.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "hvp_test_util.hpp"

namespace hspec {
namespace {

using namespace hvptest;

struct Net {
  std::vector<int64_t> widths;
  Activation act;
  Loss loss;
  uint64_t seed;
  int64_t samples;
};

std::string describe(const Net& c) {
  std::string s;
  for (int64_t w : c.widths) s += std::to_string(w) + "-";
  return s + activation_name(c.act) + "/" + loss_name(c.loss);
}

Model model_of(const Net& c) {
  return make_mlp(c.widths, c.act, c.seed, true, 1.5);
}
Dataset data_of(const Net& c) {
  return make_data(c.samples, c.widths.front(), c.loss, c.widths.back(), c.seed + 1);
}

// The nets of the spectrum tests (40-60 parameters each).
const std::vector<Net>& nets() {
  static const std::vector<Net> all = {
      {{5, 6, 3}, Activation::Tanh, Loss::CE, 1000, 40},
      {{4, 6, 1}, Activation::Gelu, Loss::BCE, 1100, 30},
      {{3, 5, 2}, Activation::Sigmoid, Loss::MSE, 1200, 25},
      {{3, 4, 3, 2}, Activation::Tanh, Loss::MSE, 1300, 20},
  };
  return all;
}

// GGN = sum_s J_s^T H_s J_s with J_s the central-difference Jacobian of the outputs of the
// reference forward pass and H_s the loss's curvature in the outputs, per sample.
Dense ggn_from_jacobians(const Model& m, const Dataset& ds, Loss loss) {
  const auto theta = m.flatten();
  const int64_t p = int64_t(theta.size()), out = m.output_dim();
  const double h = 1e-6, inv_n = 1.0 / double(ds.n);
  Dense g(static_cast<size_t>(p * p), 0.0);
  for (int64_t s = 0; s < ds.n; ++s) {
    const float* x = ds.inputs.data() + s * ds.d;
    std::vector<double> jac(static_cast<size_t>(out * p));  // out x p, column-major
    for (int64_t q = 0; q < p; ++q) {
      std::vector<double> tp = theta, tm = theta;
      tp[q] += h;
      tm[q] -= h;
      const auto zp = ref_forward(with_params(m, tp), x, nullptr);
      const auto zm = ref_forward(with_params(m, tm), x, nullptr);
      for (int64_t o = 0; o < out; ++o) jac[o + q * out] = (zp[o] - zm[o]) / (2 * h);
    }
    auto z = ref_forward(m, x, nullptr);
    std::vector<double> hz(static_cast<size_t>(out * out), 0.0);
    if (loss == Loss::MSE) {
      for (int64_t o = 0; o < out; ++o) hz[o + o * out] = 2.0 * inv_n / double(out);
    } else if (loss == Loss::BCE) {
      const double pr = 1.0 / (1.0 + std::exp(-z[0]));
      hz[0] = pr * (1 - pr) * inv_n;
    } else {
      double sum = 0;
      for (double& v : z) sum += (v = std::exp(v));
      for (double& v : z) v /= sum;
      for (int64_t a = 0; a < out; ++a)
        for (int64_t b = 0; b < out; ++b)
          hz[a + b * out] = ((a == b ? z[a] : 0.0) - z[a] * z[b]) * inv_n;
    }
    for (int64_t j = 0; j < p; ++j)
      for (int64_t i = 0; i < p; ++i) {
        double acc = 0;
        for (int64_t a = 0; a < out; ++a)
          for (int64_t b = 0; b < out; ++b)
            acc += jac[a + i * out] * hz[a + b * out] * jac[b + j * out];
        g[i + j * p] += acc;
      }
  }
  return g;
}

TEST(HvpGgn, MatchesJacobianSandwich) {
  for (const Net& c : nets()) {
    SCOPED_TRACE(describe(c));
    const Model m = model_of(c);
    const Dataset ds = data_of(c);
    MlpReferenceOperator<double> op(m, ds, options(c.loss, Curvature::GGN, 8));
    const Dense got = dense_from_operator(op), ref = ggn_from_jacobians(m, ds, c.loss);
    const double scale = max_abs(ref);
    double worst = 0;
    for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(got[i] - ref[i]));
    EXPECT_LE(worst, 1e-7 * scale);
  }
}

// The GGN is PSD by construction; the Hessian of the same net at a random point is not.
TEST(HvpGgn, PsdWhileHessianIsIndefinite) {
  for (const Net& c : nets()) {
    SCOPED_TRACE(describe(c));
    const Model m = model_of(c);
    const Dataset ds = data_of(c);
    const int64_t p = m.num_params();
    MlpReferenceOperator<double> ggn(m, ds, options(c.loss, Curvature::GGN, 8));
    MlpReferenceOperator<double> hess(m, ds, options(c.loss, Curvature::Hessian, 8));
    const auto wg = eigenvalues(symmetrised(dense_from_operator(ggn), p), p);
    const auto wh = eigenvalues(symmetrised(dense_from_operator(hess), p), p);
    EXPECT_GE(wg.front(), -1e-12 * wg.back());
    EXPECT_LT(wh.front(), -1e-4 * wh.back());
  }
}

// Extreme eigenvalues of the dense symmetrised Hessian; asserts they are simple, since a
// block-1 Krylov space resolves one copy of a repeated value only.
std::vector<double> reference_spectrum(const Dense& h, int64_t p) {
  const auto w = eigenvalues(symmetrised(h, p), p);
  const double scale = std::max(std::abs(w.front()), std::abs(w.back()));
  for (int i = 0; i < 5; ++i) {
    EXPECT_GT(w[i + 1] - w[i], 1e-6 * scale) << "bottom " << i << " not simple";
    EXPECT_GT(w[p - 1 - i] - w[p - 2 - i], 1e-6 * scale) << "top " << i << " not simple";
  }
  return w;
}

template <class T>
void expect_lanczos_matches(CurvatureOperator<T>& op, const std::vector<double>& w, int block,
                            double tol, double match) {
  SCOPED_TRACE("block " + std::to_string(block));
  const int64_t p = int64_t(w.size());
  const double scale = std::max(std::abs(w.front()), std::abs(w.back()));
  LanczosOptions opt;
  opt.top = 5;
  opt.bottom = 5;
  opt.block = block;
  opt.tol = tol;
  const auto r = lanczos(op, opt);
  EXPECT_TRUE(r.converged);
  ASSERT_EQ(r.top.size(), 5u);
  ASSERT_EQ(r.bottom.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_NEAR(r.top[i].value, w[p - 1 - i], match * scale) << "top " << i;
    EXPECT_NEAR(r.bottom[i].value, w[i], match * scale) << "bottom " << i;
  }
}

TEST(HvpSpectrum, LanczosMatchesDenseEigenvaluesFp64) {
  for (const Net& c : nets()) {
    SCOPED_TRACE(describe(c));
    const Model m = model_of(c);
    const Dataset ds = data_of(c);
    MlpReferenceOperator<double> op(m, ds, options(c.loss, Curvature::Hessian, 4));
    const auto w = reference_spectrum(dense_from_operator(op), op.dim());
    for (int block : {1, 4}) expect_lanczos_matches<double>(op, w, block, 1e-10, 1e-8);
  }
}

TEST(HvpSpectrum, LanczosMatchesDenseEigenvaluesFp32) {
  for (const Net& c : nets()) {
    SCOPED_TRACE(describe(c));
    const Model m = model_of(c);
    const Dataset ds = data_of(c);
    // The reference stays the fp64 operator's spectrum: fp32 must land within 1e-4.
    MlpReferenceOperator<double> ref(m, ds, options(c.loss, Curvature::Hessian, 4));
    const auto w = reference_spectrum(dense_from_operator(ref), ref.dim());
    MlpReferenceOperator<float> op(m, ds, options(c.loss, Curvature::Hessian, 4));
    EXPECT_NEAR(op.loss_value(), ref.loss_value(), 1e-5 * ref.loss_value());
    for (int block : {1, 4}) expect_lanczos_matches<float>(op, w, block, 1e-4, 1e-4);
  }
}

// The GGN spectrum through Lanczos too: it is what the tool reports with --curvature ggn.
TEST(HvpSpectrum, LanczosOnGgnMatchesDense) {
  const Net& c = nets()[0];
  const Model m = model_of(c);
  const Dataset ds = data_of(c);
  MlpReferenceOperator<double> op(m, ds, options(c.loss, Curvature::GGN, 4));
  const int64_t p = op.dim();
  const auto w = eigenvalues(symmetrised(dense_from_operator(op), p), p);
  LanczosOptions opt;
  opt.top = 5;
  opt.bottom = 0;
  opt.block = 4;
  opt.tol = 1e-10;
  const auto r = lanczos(op, opt);
  EXPECT_TRUE(r.converged);
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(r.top[i].value, w[p - 1 - i], 1e-8 * w.back());
}

}  // namespace
}  // namespace hspec
