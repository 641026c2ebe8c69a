// What BlockLanczos's tolerance guarantees, checked on known spectra (closed forms and LAPACK
// on the dense matrix): every value reported converged lies within its residual, and within
// tol ||C||, of a true eigenvalue, the residual^2 / gap bound holds where a gap is reported,
// and a loose tolerance costs fewer products than a tight one by a real margin.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "hspec/backends/cpu/blas.hpp"
#include "hspec/backends/cpu/cpu_space.hpp"
#include "hspec/dense_operator.hpp"
#include "hspec/random.hpp"
#include "hspec/solvers/lanczos.hpp"

namespace hspec {
namespace {

using Dense = std::vector<double>;  // column-major n x n

Dense tridiagonal(const std::vector<double>& diag, const std::vector<double>& off) {
  const int64_t n = static_cast<int64_t>(diag.size());
  Dense a(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) a[i + i * n] = diag[i];
  for (int64_t i = 0; i + 1 < n; ++i) a[i + 1 + i * n] = a[i + (i + 1) * n] = off[i];
  return a;
}

struct Problem {
  std::string name;
  Dense a;                  // the matrix (empty for a diagonal problem)
  std::vector<double> d;    // the diagonal of a diagonal problem
  std::vector<double> ref;  // its eigenvalues, ascending
  int64_t n = 0;
};

// Spectra the tests run on: a Hessian-like diagonal (a few outliers above a bulk that decays
// towards zero, a small negative tail), the 1-D Laplacian and Clement's matrix (closed forms)
// and Wilkinson's W21+ (near-degenerate top pair; LAPACK reference).
std::vector<Problem> problems() {
  std::vector<Problem> ps;
  {
    Problem p;
    p.name = "hessian-like diagonal";
    for (double v : {18.0, 12.0, 9.5, 7.0, 6.2, 5.1}) p.d.push_back(v);
    for (int i = 0; i < 1500; ++i) p.d.push_back(3.0 * std::exp(-i / 60.0));
    for (int i = 0; i < 100; ++i) p.d.push_back(-0.2 * std::exp(-i / 10.0));
    p.n = static_cast<int64_t>(p.d.size());
    p.ref = p.d;
    std::sort(p.ref.begin(), p.ref.end());
    ps.push_back(p);
  }
  {
    Problem p;
    p.name = "laplacian 300";
    p.n = 300;
    p.a = tridiagonal(std::vector<double>(p.n, 2.0), std::vector<double>(p.n - 1, -1.0));
    for (int64_t k = 1; k <= p.n; ++k)
      p.ref.push_back(4 * std::pow(std::sin(k * 3.14159265358979323846 / (2.0 * (p.n + 1))), 2));
    ps.push_back(p);
  }
  {
    Problem p;
    p.name = "clement 100";
    p.n = 100;
    std::vector<double> off;
    for (int64_t i = 1; i < p.n; ++i) off.push_back(std::sqrt(double(i) * double(p.n - i)));
    p.a = tridiagonal(std::vector<double>(p.n, 0.0), off);
    for (int64_t k = 0; k < p.n; ++k) p.ref.push_back(-(p.n - 1) + 2.0 * k);
    ps.push_back(p);
  }
  {
    Problem p;
    p.name = "wilkinson 21";
    p.n = 21;
    std::vector<double> d;
    for (int64_t i = 0; i < p.n; ++i) d.push_back(std::abs(10.0 - double(i)));
    p.a = tridiagonal(d, std::vector<double>(p.n - 1, 1.0));
    Dense w = p.a;
    p.ref.assign(static_cast<size_t>(p.n), 0.0);
    blas::syev(p.n, w.data(), p.n, p.ref.data());
    ps.push_back(p);
  }
  return ps;
}

LanczosResult<double> run(const Problem& p, double tol, int block, uint64_t seed) {
  LanczosOptions opt;
  opt.top = 5;
  opt.bottom = 2;
  opt.block = block;
  opt.tol = tol;
  opt.seed = seed;
  if (p.n < 40) opt.max_basis = 12;  // below n, so the basis really restarts
  CpuSpace<double> space;
  if (p.a.empty()) {
    DiagonalOperator<double> op(p.d);
    return BlockLanczos<double>(op, space).compute(opt);
  }
  DenseOperator<double> op(p.a, p.n);
  return BlockLanczos<double>(op, space).compute(opt);
}

// Distance from x to the nearest true eigenvalue.
double distance(const std::vector<double>& ref, double x) {
  double best = std::numeric_limits<double>::infinity();
  for (double l : ref) best = std::min(best, std::abs(l - x));
  return best;
}

void expect_guarantees(const Problem& p, const LanczosResult<double>& r, double tol) {
  const double norm = std::max(std::abs(p.ref.front()), std::abs(p.ref.back()));
  const double slack = 1e-12 * norm;  // rounding in the references
  std::vector<RitzValue> all = r.top;
  all.insert(all.end(), r.bottom.begin(), r.bottom.end());
  for (const RitzValue& v : all) {
    const double err = distance(p.ref, v.value);
    EXPECT_LE(err, v.residual + slack) << v.value;  // |theta - lambda| <= residual, always
    if (!v.converged) continue;
    EXPECT_LE(v.residual, tol * norm * (1 + 1e-9)) << v.value;
    EXPECT_LE(err, tol * norm) << v.value;
    if (v.gap > 0) EXPECT_LE(err, v.residual * v.residual / v.gap + slack) << v.value;
  }
}

TEST(LanczosTolerance, ConvergedValuesAreWithinTolOfTheSpectrum) {
  for (const Problem& p : problems()) {
    for (double tol : {1e-2, 1e-3, 1e-4, 1e-6, 1e-10}) {
      for (int block : {1, 3}) {
        SCOPED_TRACE(p.name + " tol " + std::to_string(tol) + " block " + std::to_string(block));
        const auto r = run(p, tol, block, 7);
        EXPECT_TRUE(r.converged);
        expect_guarantees(p, r, tol);
      }
    }
  }
}

// On the well-separated Hessian-like spectrum the reported values are the extreme ones in
// order (not just some eigenvalues), at every tolerance, and their gaps are known.
TEST(LanczosTolerance, SeparatedTopValuesComeInOrderWithGaps) {
  const Problem p = problems().front();
  for (double tol : {1e-3, 1e-6}) {
    SCOPED_TRACE(tol);
    const auto r = run(p, tol, 1, 1);
    ASSERT_EQ(r.top.size(), 5u);
    for (size_t i = 0; i < 5; ++i) {
      EXPECT_NEAR(r.top[i].value, p.ref[p.n - 1 - i], tol * 18.0);
      EXPECT_GT(r.top[i].gap, 0.0) << i;
    }
    EXPECT_NEAR(r.bottom[0].value, p.ref[0], tol * 18.0);
  }
}

// A double eigenvalue at the top, block 1: one Krylov space holds a single vector of the
// pair, so only the probe round can report the second copy, and it must at a loose
// tolerance as well as at a tight one.
TEST(LanczosTolerance, ProbeRoundFindsTheSecondCopyAtLooseTolerance) {
  std::vector<double> d = {10.0, 10.0, 7.0};
  for (int i = 0; i < 300; ++i) d.push_back(5.0 * i / 299.0 - 1.0);  // bulk in [-1, 4]
  for (double tol : {1e-2, 1e-3, 1e-8}) {
    for (uint64_t seed : {1, 2, 3}) {
      SCOPED_TRACE("tol " + std::to_string(tol) + " seed " + std::to_string(seed));
      DiagonalOperator<double> op(d);
      CpuSpace<double> space;
      LanczosOptions opt;
      opt.top = 3;
      opt.bottom = 1;
      opt.tol = tol;
      opt.seed = seed;
      const auto r = BlockLanczos<double>(op, space).compute(opt);
      ASSERT_EQ(r.top.size(), 3u);
      EXPECT_TRUE(r.converged);
      EXPECT_GE(r.probes, 1);
      EXPECT_NEAR(r.top[0].value, 10.0, tol * 10);
      EXPECT_NEAR(r.top[1].value, 10.0, tol * 10);
      EXPECT_NEAR(r.top[2].value, 7.0, tol * 10);
    }
  }
}

// The stopping rule spends only what the tolerance needs: over these problems and seeds a
// tolerance of 1e-3 costs at most 60% of the products of 1e-10.
TEST(LanczosTolerance, LooseToleranceCostsFewerProducts) {
  int64_t loose = 0, tight = 0;
  for (const Problem& p : problems()) {
    for (uint64_t seed : {1, 2, 3}) {
      const auto a = run(p, 1e-3, 1, seed), b = run(p, 1e-10, 1, seed);
      EXPECT_TRUE(a.converged && b.converged) << p.name;
      EXPECT_LE(a.products, b.products) << p.name << " seed " << seed;
      loose += a.products;
      tight += b.products;
      std::printf("%-22s seed %llu: %5lld products at tol 1e-3, %5lld at 1e-10\n", p.name.c_str(),
                  static_cast<unsigned long long>(seed), static_cast<long long>(a.products),
                  static_cast<long long>(b.products));
    }
  }
  EXPECT_LE(loose, 0.6 * static_cast<double>(tight));
}

}  // namespace
}  // namespace hspec
