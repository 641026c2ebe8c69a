// Tests of BlockLanczos against independent references: closed-form spectra and LAPACK on
// the dense matrix, with residuals of the returned vectors recomputed here in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "hspec/backends/cpu/blas.hpp"
#include "hspec/backends/cpu/cpu_space.hpp"
#include "hspec/dense_operator.hpp"
#include "hspec/error.hpp"
#include "hspec/random.hpp"
#include "hspec/solvers/lanczos.hpp"

namespace hspec {
namespace {

using Dense = std::vector<double>;  // column-major n x n

const double kPi = 3.14159265358979323846;

Dense tridiagonal(const std::vector<double>& diag, const std::vector<double>& off) {
  const int64_t n = static_cast<int64_t>(diag.size());
  Dense a(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) a[i + i * n] = diag[i];
  for (int64_t i = 0; i + 1 < n; ++i) a[i + 1 + i * n] = a[i + (i + 1) * n] = off[i];
  return a;
}

Dense laplacian(int64_t n) {
  return tridiagonal(std::vector<double>(n, 2.0), std::vector<double>(n - 1, -1.0));
}

// Clement (Kac) matrix: zero diagonal, off-diagonals sqrt(i (n - i)); eigenvalues
// -(n-1), -(n-3), ..., n-3, n-1.
Dense clement(int64_t n) {
  std::vector<double> off;
  for (int64_t i = 1; i < n; ++i) off.push_back(std::sqrt(double(i) * double(n - i)));
  return tridiagonal(std::vector<double>(n, 0.0), off);
}

Dense diagonal(const std::vector<double>& d) {
  return tridiagonal(d, std::vector<double>(d.size(), 0.0));
}

Dense random_symmetric(int64_t n, uint64_t seed) {
  Dense a(static_cast<size_t>(n * n));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i <= j; ++i)
      a[i + j * n] = a[j + i * n] = rng::gaussian(seed, j, i) / std::sqrt(double(n));
  return a;
}

// Ascending eigenvalues by LAPACK: the reference.
std::vector<double> eigenvalues(Dense a, int64_t n) {
  std::vector<double> w(static_cast<size_t>(n));
  blas::syev(n, a.data(), n, w.data());
  return w;
}

template <class T>
LanczosResult<T> solve(CurvatureOperator<T>& op, const LanczosOptions& opt) {
  CpuSpace<T> space;
  return BlockLanczos<T>(op, space).compute(opt);
}

// ||A u_i - value_i u_i||_2 for every returned vector, in double, plus the departure of the
// vectors from orthonormality.
template <class T>
std::vector<double> true_residuals(const Dense& a, int64_t n, const Matrix<T>& u,
                                   const std::vector<RitzValue>& vals, double* orth = nullptr) {
  const int64_t k = u.cols();
  EXPECT_EQ(u.rows(), n);
  EXPECT_EQ(k, static_cast<int64_t>(vals.size()));
  std::vector<double> ud(static_cast<size_t>(n * k)), au(static_cast<size_t>(n * k));
  for (int64_t i = 0; i < n * k; ++i) ud[i] = static_cast<double>(u.data()[i]);
  blas::gemm('N', 'N', n, k, n, 1.0, a.data(), n, ud.data(), n, 0.0, au.data(), n);
  std::vector<double> res;
  for (int64_t c = 0; c < k; ++c) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double r = au[i + c * n] - vals[c].value * ud[i + c * n];
      ss += r * r;
    }
    res.push_back(std::sqrt(ss));
  }
  if (orth) {
    *orth = 0;
    for (int64_t p = 0; p < k; ++p)
      for (int64_t q = 0; q < k; ++q) {
        double d = 0;
        for (int64_t i = 0; i < n; ++i) d += ud[i + p * n] * ud[i + q * n];
        *orth = std::max(*orth, std::abs(d - (p == q ? 1.0 : 0.0)));
      }
  }
  return res;
}

// Checks values against the ascending reference `ref` to `abs_tol`, and (when vectors were
// kept) their residuals and orthonormality independently of the solver.
template <class T>
void expect_matches(const LanczosResult<T>& r, const Dense& a, int64_t n,
                    const std::vector<double>& ref, double abs_tol, double res_tol) {
  for (size_t i = 0; i < r.top.size(); ++i)
    EXPECT_NEAR(r.top[i].value, ref[ref.size() - 1 - i], abs_tol) << "top " << i;
  for (size_t i = 0; i < r.bottom.size(); ++i)
    EXPECT_NEAR(r.bottom[i].value, ref[i], abs_tol) << "bottom " << i;
  if (!r.top_vectors && !r.bottom_vectors) return;
  double orth = 0;
  const auto rt = true_residuals(a, n, r.top_vectors, r.top, &orth);
  EXPECT_LT(orth, 1e3 * std::numeric_limits<T>::epsilon());
  for (size_t i = 0; i < rt.size(); ++i) EXPECT_LE(rt[i], res_tol) << "top " << i;
  const auto rb = true_residuals(a, n, r.bottom_vectors, r.bottom, &orth);
  EXPECT_LT(orth, 1e3 * std::numeric_limits<T>::epsilon());
  for (size_t i = 0; i < rb.size(); ++i) EXPECT_LE(rb[i], res_tol) << "bottom " << i;
}

TEST(LanczosDense, Laplacian200BothEndsClosedForm) {
  const int64_t n = 200;
  const Dense a = laplacian(n);
  std::vector<double> ref;
  for (int64_t p = 1; p <= n; ++p)
    ref.push_back(4 * std::pow(std::sin(p * kPi / (2.0 * (n + 1))), 2));
  for (int block : {1, 4}) {
    SCOPED_TRACE(block);
    DenseOperator<double> op(a, n);
    LanczosOptions opt;
    opt.top = 5;
    opt.bottom = 5;
    opt.block = block;
    opt.tol = 1e-10;
    opt.max_products = 20000;
    opt.want_vectors = true;
    const auto r = solve(op, opt);
    ASSERT_EQ(r.top.size(), 5u);
    ASSERT_EQ(r.bottom.size(), 5u);
    EXPECT_TRUE(r.converged);
    EXPECT_GT(r.restarts, 0);
    for (int i = 0; i < 5; ++i) {
      EXPECT_NEAR(r.top[i].value, ref[n - 1 - i], 1e-8 * ref[n - 1 - i]);
      EXPECT_NEAR(r.bottom[i].value, ref[i], 1e-8 * ref[i]);
      EXPECT_TRUE(r.top[i].converged && r.bottom[i].converged);
    }
    expect_matches(r, a, n, ref, 1e-12, 1e-9);
    // The bottom residuals meet the documented rule, tol relative to ||A|| = lambda_max, while
    // the values themselves (checked above) are far more accurate than that.
    const auto rb = true_residuals(a, n, r.bottom_vectors, r.bottom);
    for (int i = 0; i < 5; ++i) EXPECT_LE(rb[i], 1e-10 * ref[n - 1]);
  }
}

TEST(LanczosDense, Clement50SymmetricIntegerSpectrum) {
  const int64_t n = 50;
  const Dense a = clement(n);
  std::vector<double> ref;
  for (int64_t k = 0; k < n; ++k) ref.push_back(-(n - 1) + 2.0 * k);
  DenseOperator<double> op(a, n);
  LanczosOptions opt;
  opt.top = 5;
  opt.bottom = 5;
  opt.block = 2;
  opt.tol = 1e-10;
  opt.want_vectors = true;
  const auto r = solve(op, opt);
  EXPECT_TRUE(r.converged);
  expect_matches(r, a, n, ref, 1e-9, 1e-7);
}

// W21+: the top pair differs only in the 14th digit; a block of 2 holds both.
TEST(LanczosDense, WilkinsonNearDegenerateTopPair) {
  const int64_t n = 21;
  std::vector<double> d;
  for (int64_t i = 0; i < n; ++i) d.push_back(std::abs(10.0 - double(i)));
  const Dense a = tridiagonal(d, std::vector<double>(n - 1, 1.0));
  const auto ref = eigenvalues(a, n);
  ASSERT_NEAR(ref[n - 1], 10.746194182903393, 1e-12);
  ASSERT_NEAR(ref[n - 2], 10.746194182903322, 1e-12);
  for (int block : {1, 2}) {
    SCOPED_TRACE(block);
    DenseOperator<double> op(a, n);
    LanczosOptions opt;
    opt.top = 4;
    opt.bottom = 2;
    opt.block = block;
    opt.max_basis = 12;  // below n, so the basis really restarts
    opt.tol = 1e-12;
    opt.max_products = 5000;
    opt.want_vectors = true;
    const auto r = solve(op, opt);
    EXPECT_TRUE(r.converged);
    EXPECT_GT(r.restarts, 0);
    expect_matches(r, a, n, ref, 1e-11, 1e-10);
  }
}

TEST(LanczosDiagonal, ClustersAndGaps) {
  std::vector<double> d;
  for (int i = 0; i < 150; ++i) d.push_back(-1.0 + 2.0 * i / 149.0);      // bulk in [-1, 1]
  for (double v : {10.0, 10.0 - 1e-3, 10.0 - 2e-3, 6.0}) d.push_back(v);  // tight top cluster
  for (double v : {-3.0, -3.0 + 1e-4, -2.5}) d.push_back(v);              // bottom pair
  const int64_t n = static_cast<int64_t>(d.size());
  std::vector<double> ref = d;
  std::sort(ref.begin(), ref.end());
  for (int block : {1, 2, 4}) {
    SCOPED_TRACE(block);
    DiagonalOperator<double> op(d);
    LanczosOptions opt;
    opt.top = 5;
    opt.bottom = 3;
    opt.block = block;
    opt.tol = 1e-10;
    opt.max_products = 20000;
    opt.want_vectors = true;
    const auto r = solve(op, opt);
    EXPECT_TRUE(r.converged);
    expect_matches(r, diagonal(d), n, ref, 1e-9, 1e-8);
  }
}

TEST(LanczosDiagonal, RepeatedEigenvalueNeedsBlock) {
  std::vector<double> d(4, 5.0);
  // The bulk stays away from 0: the convergence rule's floor tol * eps^(2/3) is absolute.
  for (int i = 0; i < 96; ++i) d.push_back(1.0 + 3.0 * i / 95.0);
  const int64_t n = static_cast<int64_t>(d.size());
  DiagonalOperator<double> op(d);
  LanczosOptions opt;
  opt.top = 4;
  opt.bottom = 1;
  opt.block = 4;
  opt.tol = 1e-10;
  opt.want_vectors = true;
  const auto r = solve(op, opt);
  EXPECT_TRUE(r.converged);
  std::vector<double> ref = d;
  std::sort(ref.begin(), ref.end());
  expect_matches(r, diagonal(d), n, ref, 1e-10, 1e-8);
  for (const auto& v : r.top) EXPECT_NEAR(v.value, 5.0, 1e-10);
}

// Only three distinct eigenvalues: a single-vector Krylov space is invariant after three
// steps, so the solver must replace the deflated direction with a fresh random one; that
// is also what finds the second copy of the top eigenvalue.
// Solves a diagonal problem in precision T and checks it against the sorted diagonal, with
// tolerances scaled to T's epsilon.
template <class T>
void expect_diagonal_solved(const std::vector<double>& d, LanczosOptions opt) {
  const double eps = std::numeric_limits<T>::epsilon();
  const int64_t n = static_cast<int64_t>(d.size());
  DiagonalOperator<T> op(d);
  opt.tol = std::is_same_v<T, float> ? 1e-5 : 1e-10;
  opt.want_vectors = true;
  const auto r = solve(op, opt);
  EXPECT_TRUE(r.converged);
  std::vector<double> ref = d;
  std::sort(ref.begin(), ref.end());
  expect_matches(r, diagonal(d), n, ref, 1e4 * eps, 1e6 * eps);
}

TEST(LanczosDiagonal, ExhaustedKrylovSpaceIsRestartedRandomly) {
  std::vector<double> d;
  for (int i = 0; i < 30; ++i) d.push_back(i % 3 == 0 ? 2.0 : i % 3 == 1 ? -1.0 : 0.5);
  LanczosOptions opt;
  opt.top = 2;
  opt.bottom = 2;
  opt.block = 1;
  expect_diagonal_solved<double>(d, opt);
  expect_diagonal_solved<float>(d, opt);
}

// Multiplicities 12, 2, 12 and a block of 4: the third block has rank 2, so part of a
// block deflates and is replaced while the rest is kept.
TEST(LanczosDiagonal, RankDeficientBlock) {
  std::vector<double> d;
  for (int i = 0; i < 26; ++i) d.push_back(i < 12 ? 3.0 : i < 14 ? 1.0 : -2.0);
  LanczosOptions opt;
  opt.top = 6;
  opt.bottom = 2;
  opt.block = 4;
  expect_diagonal_solved<double>(d, opt);
  expect_diagonal_solved<float>(d, opt);
}

class LanczosBlockSize : public ::testing::TestWithParam<int> {};

TEST_P(LanczosBlockSize, RandomDenseMatchesLapack) {
  const int64_t n = 150;
  const Dense a = random_symmetric(n, 11);
  const auto ref = eigenvalues(a, n);
  const double scale = std::max(std::abs(ref.front()), std::abs(ref.back()));
  DenseOperator<double> op(a, n);
  LanczosOptions opt;
  opt.top = 4;
  opt.bottom = 4;
  opt.block = GetParam();
  opt.tol = 1e-10;
  opt.max_products = 20000;
  opt.seed = 3;
  opt.want_vectors = true;
  const auto r = solve(op, opt);
  EXPECT_TRUE(r.converged);
  expect_matches(r, a, n, ref, 1e-9 * scale, 1e-8 * scale);
  for (const auto& v : r.top) EXPECT_LE(v.residual, opt.tol * std::abs(v.value));
}

INSTANTIATE_TEST_SUITE_P(Lanczos, LanczosBlockSize, ::testing::Values(1, 2, 4, 8));

TEST(LanczosRestart, SmallBasisRestartsManyTimes) {
  const int64_t n = 120;
  const Dense a = random_symmetric(n, 5);
  const auto ref = eigenvalues(a, n);
  DenseOperator<double> op(a, n);
  LanczosOptions opt;
  opt.top = 3;
  opt.bottom = 2;
  opt.block = 2;
  opt.max_basis = 10;
  opt.tol = 1e-10;
  opt.max_products = 20000;
  opt.want_vectors = true;
  const auto r = solve(op, opt);
  EXPECT_TRUE(r.converged);
  EXPECT_GT(r.restarts, 5);
  EXPECT_GT(r.reorth_repeats, 0);
  expect_matches(r, a, n, ref, 1e-9, 1e-8);
}

// A budget far too small: the answer is still finite, bounded by the true spectrum (Ritz
// values are interior), and no value claims convergence its residual does not support.
TEST(LanczosBudget, ExhaustedBudgetDoesNotClaimConvergence) {
  const int64_t n = 200;
  const Dense a = laplacian(n);
  const auto ref = eigenvalues(a, n);
  for (int block : {1, 3}) {
    SCOPED_TRACE(block);
    DenseOperator<double> op(a, n);
    LanczosOptions opt;
    opt.top = 5;
    opt.bottom = 5;
    opt.block = block;
    opt.tol = 1e-10;
    opt.max_products = 30;
    opt.want_vectors = true;
    const auto r = solve(op, opt);
    EXPECT_FALSE(r.converged);
    EXPECT_LE(r.products, opt.max_products);
    EXPECT_EQ(op.products(), r.products);
    const auto rt = true_residuals(a, n, r.top_vectors, r.top);
    const auto rb = true_residuals(a, n, r.bottom_vectors, r.bottom);
    for (size_t i = 0; i < r.top.size(); ++i) {
      EXPECT_TRUE(std::isfinite(r.top[i].value));
      EXPECT_LE(r.top[i].value, ref[n - 1 - i] + 1e-12);
      EXPECT_NEAR(r.top[i].residual, rt[i], 1e-10);  // the estimate is the true residual
      if (r.top[i].converged) EXPECT_LE(rt[i], 1e-10 * r.top[i].value + 1e-12);
    }
    for (size_t i = 0; i < r.bottom.size(); ++i) {
      EXPECT_GE(r.bottom[i].value, ref[i] - 1e-12);
      EXPECT_NEAR(r.bottom[i].residual, rb[i], 1e-10);
      EXPECT_FALSE(r.bottom[i].converged);
    }
  }
}

TEST(LanczosSeed, SameSeedSameResultOtherSeedStillCorrect) {
  const int64_t n = 100;
  const Dense a = random_symmetric(n, 21);
  const auto ref = eigenvalues(a, n);
  auto run = [&](uint64_t seed) {
    DenseOperator<double> op(a, n);
    LanczosOptions opt;
    opt.top = 3;
    opt.bottom = 3;
    opt.block = 2;
    opt.tol = 1e-10;
    opt.seed = seed;
    return solve(op, opt);
  };
  const auto r1 = run(42), r2 = run(42), r3 = run(43);
  ASSERT_EQ(r1.top.size(), r2.top.size());
  for (size_t i = 0; i < r1.top.size(); ++i) {
    EXPECT_EQ(r1.top[i].value, r2.top[i].value);
    EXPECT_EQ(r1.top[i].residual, r2.top[i].residual);
  }
  for (size_t i = 0; i < r1.bottom.size(); ++i) EXPECT_EQ(r1.bottom[i].value, r2.bottom[i].value);
  EXPECT_EQ(r1.products, r2.products);
  EXPECT_TRUE(r3.converged);
  expect_matches(r3, a, n, ref, 1e-9, 0);
  // A different start really is a different run.
  bool differs = r1.products != r3.products;
  for (size_t i = 0; i < r1.top.size(); ++i) differs |= r1.top[i].residual != r3.top[i].residual;
  EXPECT_TRUE(differs);
}

TEST(LanczosTiny, OneByOne) {
  DenseOperator<double> op({3.5}, 1);
  LanczosOptions opt;
  opt.top = 2;
  opt.bottom = 1;
  opt.block = 4;
  opt.want_vectors = true;
  const auto r = solve(op, opt);
  ASSERT_EQ(r.top.size(), 1u);
  ASSERT_EQ(r.bottom.size(), 1u);
  EXPECT_DOUBLE_EQ(r.top[0].value, 3.5);
  EXPECT_DOUBLE_EQ(r.bottom[0].value, 3.5);
  EXPECT_TRUE(r.converged);
  EXPECT_EQ(r.products, 1);
  EXPECT_NEAR(std::abs(r.top_vectors.data()[0]), 1.0, 1e-15);
}

TEST(LanczosTiny, ThreeByThreeAskingForMoreThanExists) {
  const Dense a = {2, -1, 0.5, -1, 3, 0.25, 0.5, 0.25, -4};
  const auto ref = eigenvalues(a, 3);
  for (int block : {1, 2, 5}) {
    SCOPED_TRACE(block);
    DenseOperator<double> op(a, 3);
    LanczosOptions opt;
    opt.top = 5;
    opt.bottom = 2;
    opt.block = block;
    opt.tol = 1e-12;
    opt.want_vectors = true;
    const auto r = solve(op, opt);
    ASSERT_EQ(r.top.size(), 3u);
    ASSERT_EQ(r.bottom.size(), 2u);
    EXPECT_TRUE(r.converged);
    EXPECT_LE(r.products, 3 + block);
    expect_matches(r, a, 3, ref, 1e-13, 1e-13);
  }
}

TEST(LanczosTiny, OperatorBlockLimitIsRespected) {
  const int64_t n = 60;
  const Dense a = random_symmetric(n, 9);
  const auto ref = eigenvalues(a, n);
  DenseOperator<double> op(a, n, /*max_block=*/2);
  LanczosOptions opt;
  opt.top = 2;
  opt.bottom = 2;
  opt.block = 8;  // clamped to the operator's limit
  opt.tol = 1e-10;
  const auto r = solve(op, opt);
  EXPECT_TRUE(r.converged);
  expect_matches(r, a, n, ref, 1e-9, 0);
}

TEST(LanczosFloat, RandomDenseMatchesLapackToSinglePrecision) {
  const int64_t n = 120;
  const Dense a = random_symmetric(n, 17);
  const auto ref = eigenvalues(a, n);
  const double scale = std::max(std::abs(ref.front()), std::abs(ref.back()));
  for (int block : {1, 3}) {
    SCOPED_TRACE(block);
    DenseOperator<float> op(a, n);
    LanczosOptions opt;
    opt.top = 3;
    opt.bottom = 3;
    opt.block = block;
    opt.tol = 1e-4;
    opt.want_vectors = true;
    const auto r = solve(op, opt);
    EXPECT_TRUE(r.converged);
    expect_matches(r, a, n, ref, 1e-4 * scale, 1e-3 * scale);
  }
}

TEST(LanczosFloat, LaplacianTopAndBottom) {
  const int64_t n = 100;
  const Dense a = laplacian(n);
  std::vector<double> ref;
  for (int64_t p = 1; p <= n; ++p)
    ref.push_back(4 * std::pow(std::sin(p * kPi / (2.0 * (n + 1))), 2));
  DenseOperator<float> op(a, n);
  LanczosOptions opt;
  opt.top = 3;
  opt.bottom = 2;
  opt.block = 2;
  opt.tol = 1e-4;
  opt.max_products = 20000;
  const auto r = solve(op, opt);
  EXPECT_TRUE(r.converged);
  expect_matches(r, a, n, ref, 1e-4 * 4, 0);
}

// Two tight clusters at +-1 (width 5e-5): in float the Krylov space looks nearly invariant
// after two steps. The small remainder is real and must not be dropped as "breakdown",
// or every Ritz value would claim convergence with a residual it does not have.
TEST(LanczosFloat, SmallRemainderIsNotBreakdown) {
  std::vector<double> d;
  for (int i = 0; i < 50; ++i) d.push_back(1.0 + 5e-5 * i / 49.0);
  for (int i = 0; i < 50; ++i) d.push_back(-1.0 - 5e-5 * i / 49.0);
  const int64_t n = static_cast<int64_t>(d.size());
  for (int block : {1, 2}) {
    SCOPED_TRACE(block);
    DiagonalOperator<float> op(d);
    LanczosOptions opt;
    opt.top = 1;
    opt.bottom = 1;
    opt.block = block;
    opt.tol = 1e-5;
    opt.max_products = 400;
    opt.want_vectors = true;
    const auto r = solve(op, opt);
    EXPECT_TRUE(r.converged);
    const auto rt = true_residuals(diagonal(d), n, r.top_vectors, r.top);
    const auto rb = true_residuals(diagonal(d), n, r.bottom_vectors, r.bottom);
    // Float rounding of the vectors themselves adds about 1e-7 to the true residual.
    if (r.top[0].converged) EXPECT_LE(rt[0], 1e-5 + 1e-6);
    if (r.bottom[0].converged) EXPECT_LE(rb[0], 1e-5 + 1e-6);
    EXPECT_NEAR(r.top[0].residual, rt[0], 2e-6);
    EXPECT_NEAR(r.bottom[0].residual, rb[0], 2e-6);
  }
}

// An operator that starts returning NaN after a few products, optionally claiming to live
// on the device.
class PoisonedOperator final : public CurvatureOperator<double> {
 public:
  explicit PoisonedOperator(int64_t n, Where where = Where::Host) : n_(n), where_(where) {}
  int64_t dim() const override { return n_; }
  int64_t max_block() const override { return 64; }
  Where where() const override { return where_; }
  void apply(BlockView<const double> X, BlockView<double> Y) override {
    for (int64_t j = 0; j < X.cols; ++j)
      for (int64_t i = 0; i < n_; ++i)
        Y.col(j)[i] = products() >= 6 ? std::nan("") : (i + 1.0) * X.col(j)[i];
    count_products(X.cols);
  }

 private:
  int64_t n_;
  Where where_;
};

TEST(LanczosErrors, BadRequestsAndNaN) {
  {
    DenseOperator<double> empty({}, 0);
    EXPECT_THROW(solve(empty, LanczosOptions{}), Error);
  }
  DenseOperator<double> op(laplacian(10), 10);
  LanczosOptions none;
  none.top = 0;
  none.bottom = 0;
  EXPECT_THROW(solve(op, none), Error);
  LanczosOptions negative;
  negative.top = -1;
  EXPECT_THROW(solve(op, negative), Error);
  LanczosOptions only_bottom;
  only_bottom.top = 0;
  only_bottom.bottom = 2;
  only_bottom.tol = 1e-10;
  const auto r = solve(op, only_bottom);
  EXPECT_TRUE(r.top.empty());
  ASSERT_EQ(r.bottom.size(), 2u);
  EXPECT_NEAR(r.bottom[0].value, 4 * std::pow(std::sin(kPi / 22.0), 2), 1e-12);

  PoisonedOperator poisoned(80);
  LanczosOptions opt;
  opt.tol = 1e-12;
  EXPECT_THROW(solve(poisoned, opt), NumericalError);
  PoisonedOperator elsewhere(80, Where::Device);
  EXPECT_THROW(solve(elsewhere, opt), Error);
}

}  // namespace
}  // namespace hspec
