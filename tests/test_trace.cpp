// Trace estimation (Krylov Hutch++, Hutch++, Hutchinson) against exact traces: closed-form diagonal
// and dense operators and a small MLP's dense Hessian, plus the honesty of the standard error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "hspec/backends/cpu/cpu_space.hpp"
#include "hspec/dense_operator.hpp"
#include "hspec/error.hpp"
#include "hspec/mlp/reference_operator.hpp"
#include "hspec/mlp/workloads.hpp"
#include "hspec/random.hpp"
#include "hspec/solvers/exact.hpp"
#include "hspec/solvers/trace.hpp"

namespace hspec {
namespace {

// A Hessian-like spectrum: a few large outliers, a bulk near zero, some negative values.
std::vector<double> hessian_like(int64_t n, uint64_t seed) {
  std::vector<double> d(n);
  for (int64_t i = 0; i < n; ++i) {
    const double u = rng::uniform(seed, 1, i);
    d[i] = i < 8 ? 20.0 / (i + 1) : 0.05 * (u - 0.3);
  }
  return d;
}

// Q diag(d) Q^T for a random orthogonal Q (Householder products of Gaussian vectors).
std::vector<double> dense_with_spectrum(const std::vector<double>& d, uint64_t seed) {
  const int64_t n = static_cast<int64_t>(d.size());
  std::vector<double> a(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i) a[i + i * n] = d[i];
  for (int r = 0; r < 3; ++r) {
    std::vector<double> v(n);
    double nn = 0;
    for (int64_t i = 0; i < n; ++i) nn += (v[i] = rng::gaussian(seed, 10 + r, i)) * v[i];
    // A <- H A H with H = I - 2 v v^T / (v^T v).
    std::vector<double> av(n, 0.0);
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < n; ++i) av[i] += a[i + j * n] * v[j];
    double vav = 0;
    for (int64_t i = 0; i < n; ++i) vav += v[i] * av[i];
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < n; ++i)
        a[i + j * n] += -2 * (v[i] * av[j] + av[i] * v[j]) / nn + 4 * vav * v[i] * v[j] / (nn * nn);
  }
  return a;
}

double sum(const std::vector<double>& d) {
  double s = 0;
  for (double x : d) s += x;
  return s;
}

template <class T>
TraceResult run(CurvatureOperator<T>& op, TraceMethod m, double tol, int64_t budget,
                uint64_t seed) {
  CpuSpace<T> space;
  TraceOptions o;
  o.method = m;
  o.rel_tol = tol;
  o.max_products = budget;
  o.seed = seed;
  return estimate_trace<T>(op, space, o);
}

TEST(TraceClosedForm, HutchinsonIsExactOnADiagonal) {
  // g^T D g = sum d_i g_i^2 = tr(D) for every Rademacher g: zero variance, zero error.
  const std::vector<double> d = hessian_like(400, 3);
  DiagonalOperator<double> op(d, 7);  // block 7: rounds of 10 go through in two products
  const TraceResult r = run<double>(op, TraceMethod::Hutchinson, 0.005, 200, 1);
  EXPECT_NEAR(r.estimate, sum(d), 1e-12 * std::fabs(sum(d)));
  EXPECT_LT(r.std_error, 1e-12 * std::fabs(sum(d)));
  EXPECT_TRUE(r.converged);
  EXPECT_EQ(r.products, 20);  // stops at the minimum number of probes
  EXPECT_EQ(r.products, op.products());
}

TEST(TraceClosedForm, DiagonalHutchPPWithinFourStandardErrors) {
  // The Hutch++ remainder of a diagonal is no longer diagonal; over seeds the estimate stays
  // within four of its standard errors (allowing one miss in 40 for a skewed remainder).
  const std::vector<double> d = hessian_like(400, 3);
  for (TraceMethod m : {TraceMethod::HutchPP, TraceMethod::KrylovHutchPP}) {
    int misses = 0;
    for (uint64_t seed = 0; seed < 40; ++seed) {
      DiagonalOperator<double> op(d, 7);
      const TraceResult r = run<double>(op, m, 0.005, 200, seed);
      EXPECT_LE(r.products, 200);
      EXPECT_GT(r.std_error, 0);
      misses += std::fabs(r.estimate - sum(d)) > 4 * r.std_error;
    }
    EXPECT_LE(misses, 1) << trace_method_name(m);
  }
}

TEST(TraceClosedForm, HutchPPBeatsHutchinsonOnADominantTop) {
  const std::vector<double> d = hessian_like(200, 4);
  const std::vector<double> a = dense_with_spectrum(d, 5);
  DenseOperator<double> x(a, 200), y(a, 200);
  const TraceResult pp = run<double>(x, TraceMethod::HutchPP, 0, 90, 2);
  const TraceResult h = run<double>(y, TraceMethod::Hutchinson, 0, 90, 2);
  EXPECT_EQ(pp.products, 90);
  EXPECT_EQ(h.products, 90);
  EXPECT_GT(pp.sketch, 0);
  EXPECT_EQ(h.sketch, 0);
  EXPECT_LE(std::fabs(pp.estimate - sum(d)), 4 * pp.std_error);
  EXPECT_LE(std::fabs(h.estimate - sum(d)), 4 * h.std_error);
  EXPECT_LT(pp.std_error, 0.2 * h.std_error);  // deflating 8 outliers removes most variance
}

TEST(TraceClosedForm, DenseOperatorFp32AndFp64) {
  const std::vector<double> d = hessian_like(150, 5);
  const std::vector<double> a = dense_with_spectrum(d, 6);
  for (TraceMethod m : {TraceMethod::HutchPP, TraceMethod::KrylovHutchPP}) {
    DenseOperator<double> op64(a, 150);
    DenseOperator<float> op32(a, 150, 16);
    const TraceResult r64 = run<double>(op64, m, 0.001, 120, 7);
    const TraceResult r32 = run<float>(op32, m, 0.001, 120, 7);
    EXPECT_LE(std::fabs(r64.estimate - sum(d)), 4 * r64.std_error + 1e-9);
    EXPECT_LE(std::fabs(r32.estimate - sum(d)), 4 * r32.std_error + 1e-4 * std::fabs(sum(d)));
  }
}

TEST(TraceClosedForm, LowRankIsExactWithHutchPP) {
  // Rank 6: the sketch (or the second Krylov block) captures the range, the remainder is
  // rounding only.
  std::vector<double> d(300, 0.0);
  for (int i = 0; i < 6; ++i) d[50 * i] = 3.0 - i;
  for (TraceMethod m : {TraceMethod::HutchPP, TraceMethod::KrylovHutchPP}) {
    DiagonalOperator<double> op(d);
    const TraceResult r = run<double>(op, m, 0.005, 200, 3);
    EXPECT_NEAR(r.estimate, sum(d), 1e-10) << trace_method_name(m);
    EXPECT_LT(r.std_error, 1e-10) << trace_method_name(m);
    EXPECT_TRUE(r.converged) << trace_method_name(m);
    EXPECT_LE(r.products, 50) << trace_method_name(m);  // a round more to see the range caught
  }
}

TEST(TraceClosedForm, WholeSpaceSketchIsExact) {
  // n below the sketch: Q spans everything, the estimate is exact and its error 0.
  for (TraceMethod m : {TraceMethod::HutchPP, TraceMethod::KrylovHutchPP}) {
    DiagonalOperator<double> op({1.0, -2.0, 3.5, 0.25, 7.0});
    const TraceResult r = run<double>(op, m, 1e-12, 200, 3);
    EXPECT_NEAR(r.estimate, 9.75, 1e-12) << trace_method_name(m);
    EXPECT_EQ(r.std_error, 0.0) << trace_method_name(m);
    EXPECT_TRUE(r.converged) << trace_method_name(m);
  }
}

TEST(TraceKrylov, ExhaustedKrylovSpaceRestartsWithFreshColumns) {
  // Three distinct eigenvalues: a block Krylov space of 10 columns is invariant after three
  // blocks (30 columns) and the next candidates all deflate. The basis must keep growing from
  // fresh Gaussian columns, and the estimate stay unbiased.
  std::vector<double> d(200);
  for (int i = 0; i < 200; ++i) d[i] = (i % 3 == 0) ? 1.0 : (i % 3 == 1) ? 2.0 : 5.0;
  DiagonalOperator<double> op(d);
  const TraceResult r = run<double>(op, TraceMethod::KrylovHutchPP, 0, 150, 4);
  EXPECT_EQ(r.products, 150);
  EXPECT_GT(r.sketch, 30);
  EXPECT_LE(std::fabs(r.estimate - sum(d)), 4 * r.std_error + 1e-9);
}

TEST(TraceKrylov, BeatsTheClassicSketchAtEqualBudget) {
  // A slowly decaying spectrum (power law plus a bulk): at 100 products the Krylov basis has
  // 50 columns and deflates the top better than a 33-column sketch, so the spread of the
  // estimates over seeds, measured against the exact trace, is clearly smaller.
  const int64_t n = 300;
  std::vector<double> d(n);
  for (int64_t i = 0; i < n; ++i)
    d[i] = 10.0 / std::pow(i + 1.0, 1.3) + 0.01 * (rng::uniform(11, 1, i) - 0.3);
  const std::vector<double> a = dense_with_spectrum(d, 12);
  double sq_krylov = 0, sq_classic = 0;
  const int seeds = 40;
  for (int s = 0; s < seeds; ++s) {
    DenseOperator<double> x(a, n, 64), y(a, n, 64);
    const TraceResult k = run<double>(x, TraceMethod::KrylovHutchPP, 0, 100, 500 + s);
    const TraceResult c = run<double>(y, TraceMethod::HutchPP, 0, 100, 500 + s);
    EXPECT_EQ(k.products, 100);
    EXPECT_EQ(c.products, 100);
    sq_krylov += std::pow(k.estimate - sum(d), 2) / seeds;
    sq_classic += std::pow(c.estimate - sum(d), 2) / seeds;
  }
  std::printf("rms error: krylov %.4g, classic %.4g\n", std::sqrt(sq_krylov),
              std::sqrt(sq_classic));
  EXPECT_LT(std::sqrt(sq_krylov), 0.7 * std::sqrt(sq_classic));
}

TEST(TraceStopping, ToleranceAndBudgetAndSeed) {
  const std::vector<double> d = hessian_like(400, 8);
  DiagonalOperator<double> a(d), b(d), c(d), e(d);
  const TraceResult loose = run<double>(a, TraceMethod::HutchPP, 0.05, 1000, 1);
  EXPECT_TRUE(loose.converged);
  EXPECT_LE(loose.std_error, 0.05 * std::fabs(loose.estimate));
  EXPECT_GE(loose.probes, 20);  // the stopping rule waits for enough probes
  const TraceResult tight = run<double>(b, TraceMethod::HutchPP, 1e-9, 55, 1);
  EXPECT_FALSE(tight.converged);
  EXPECT_EQ(tight.products, 55);
  const TraceResult again = run<double>(c, TraceMethod::HutchPP, 0.05, 1000, 1);
  EXPECT_EQ(again.estimate, loose.estimate);  // same seed, same numbers
  const TraceResult other = run<double>(e, TraceMethod::HutchPP, 0.05, 1000, 2);
  EXPECT_NE(other.estimate, loose.estimate);
  EXPECT_THROW(parse_trace_method("exact"), UsageError);
  EXPECT_EQ(parse_trace_method("krylov-hutchpp"), TraceMethod::KrylovHutchPP);
  EXPECT_EQ(TraceOptions{}.method, TraceMethod::KrylovHutchPP);  // the default
}

TEST(TraceHonesty, ErrorsBeyondThreeStandardErrorsAreRare) {
  // Over many seeds the standardised errors behave: few beyond 3, mean near 0, spread
  // near 1. A dense operator whose remainder has off-diagonal mass (Hutchinson's variance).
  const std::vector<double> d = hessian_like(120, 9);
  const std::vector<double> a = dense_with_spectrum(d, 10);
  const double exact = sum(d);
  for (TraceMethod m :
       {TraceMethod::KrylovHutchPP, TraceMethod::HutchPP, TraceMethod::Hutchinson}) {
    int beyond = 0;
    const int seeds = 300;
    double mean = 0, sq = 0;
    for (int s = 0; s < seeds; ++s) {
      DenseOperator<double> op(a, 120);
      const TraceResult r = run<double>(op, m, 0, 40, 1000 + s);
      const double z = (r.estimate - exact) / r.std_error;
      beyond += std::fabs(z) > 3;
      mean += z / seeds;
      sq += z * z / seeds;
    }
    EXPECT_LE(beyond, seeds * 0.03) << trace_method_name(m);
    EXPECT_LT(std::fabs(mean), 0.25) << trace_method_name(m);
    EXPECT_GT(std::sqrt(sq), 0.7) << trace_method_name(m);
    EXPECT_LT(std::sqrt(sq), 1.35) << trace_method_name(m);
  }
}

TEST(TraceMlp, MatchesTheDenseHessianTrace) {
  const Model teacher = random_mlp({6, 8, 3}, Activation::Tanh, 21);
  const Dataset ds = teacher_dataset(teacher, 64, 22);
  const Model m = random_mlp({6, 8, 3}, Activation::Tanh, 23);
  MlpReferenceOptions co;
  co.loss = Loss::CE;
  co.max_block = 16;
  MlpReferenceOperator<double> exact_op(m, ds, co);
  CpuSpace<double> space;
  const ExactResult ex = exact_spectrum<double>(exact_op, space, 1, 1, 1e-8, 1ull << 30);
  for (TraceMethod meth :
       {TraceMethod::KrylovHutchPP, TraceMethod::HutchPP, TraceMethod::Hutchinson}) {
    MlpReferenceOperator<double> op(m, ds, co);
    const TraceResult r = run<double>(op, meth, 0.005, 60, 4);
    EXPECT_LE(std::fabs(r.estimate - ex.trace), 4 * r.std_error) << trace_method_name(meth);
    EXPECT_LE(r.products, 60);
  }
}

}  // namespace
}  // namespace hspec
