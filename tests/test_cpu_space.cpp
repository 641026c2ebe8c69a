// CpuSpace's block algebra against plain double loops: Gram products and block updates on
// both of their paths (column by column through GEMV, and one GEMM for wider blocks), with
// leading dimensions larger than the rows, and column norms over the whole fp64 range.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "hspec/backends/cpu/cpu_space.hpp"
#include "hspec/random.hpp"

namespace hspec {
namespace {

template <class T>
std::vector<T> random_matrix(int64_t ld, int64_t cols, uint64_t seed) {
  std::vector<T> m(static_cast<size_t>(ld * cols));
  for (size_t i = 0; i < m.size(); ++i) m[i] = static_cast<T>(rng::gaussian(seed, 0, i));
  return m;
}

template <class T>
void check_gram_and_update(int64_t q, double tol) {
  const int64_t rows = 1003, p = 7, lda = 1010, ldb = 1005, ldg = 9;
  const std::vector<T> a = random_matrix<T>(lda, p, 1), b = random_matrix<T>(ldb, q, 2);
  const BlockView<const T> A(a.data(), rows, p, lda), B(b.data(), rows, q, ldb);
  CpuSpace<T> space;
  std::vector<double> g(static_cast<size_t>(ldg * q), -7.0);
  space.gram(A, B, g.data(), ldg);
  for (int64_t j = 0; j < q; ++j) {
    for (int64_t i = 0; i < p; ++i) {
      double ref = 0, mag = 0;
      for (int64_t r = 0; r < rows; ++r) {
        ref += static_cast<double>(a[r + i * lda]) * static_cast<double>(b[r + j * ldb]);
        mag += std::fabs(static_cast<double>(a[r + i * lda]) * static_cast<double>(b[r + j * ldb]));
      }
      EXPECT_NEAR(g[i + j * ldg], ref, tol * mag) << "q=" << q << " i=" << i << " j=" << j;
    }
    for (int64_t i = p; i < ldg; ++i) EXPECT_EQ(g[i + j * ldg], -7.0);  // padding untouched
  }

  // Y = 0.5 Y - 2 A C, C p x q with leading dimension ldc > p.
  const int64_t ldc = p + 3, ldy = 1007;
  std::vector<double> c(static_cast<size_t>(ldc * q));
  for (size_t i = 0; i < c.size(); ++i) c[i] = rng::gaussian(3, 0, i);
  std::vector<T> y = random_matrix<T>(ldy, q, 4);
  const std::vector<T> y0 = y;
  space.update(BlockView<T>(y.data(), rows, q, ldy), A, c.data(), ldc, -2.0, 0.5);
  for (int64_t j = 0; j < q; ++j) {
    for (int64_t r = 0; r < rows; ++r) {
      double ref = 0.5 * static_cast<double>(y0[r + j * ldy]), mag = std::fabs(ref);
      for (int64_t i = 0; i < p; ++i) {
        const double t = -2.0 * static_cast<double>(a[r + i * lda]) *
                         static_cast<double>(static_cast<T>(c[i + j * ldc]));
        ref += t;
        mag += std::fabs(t);
      }
      EXPECT_NEAR(static_cast<double>(y[r + j * ldy]), ref, tol * mag)
          << "q=" << q << " r=" << r << " j=" << j;
    }
    for (int64_t r = rows; r < ldy; ++r) EXPECT_EQ(y[r + j * ldy], y0[r + j * ldy]);
  }
}

TEST(CpuSpace, GramAndUpdateMatchPlainLoopsOnBothPaths) {
  for (int64_t q : {1, 2, 4, 5, 9}) {  // GEMV up to 4 columns, GEMM beyond
    check_gram_and_update<double>(q, 1e-14);
    check_gram_and_update<float>(q, 1e-5);
  }
}

TEST(CpuSpace, UpdateWithNoBasisColumnsOnlyScales) {
  CpuSpace<double> space;
  std::vector<double> y = {1, 2, 3, 4, 5, 6};
  const double unused = 0;
  space.update(BlockView<double>(y.data(), 3, 2, 3), BlockView<const double>(nullptr, 3, 0, 3),
               &unused, 1, 1.0, 2.0);
  EXPECT_EQ(y, (std::vector<double>{2, 4, 6, 8, 10, 12}));
}

TEST(CpuSpace, NormsAreAccurateOverTheWholeRange) {
  const int64_t n = 4099;  // not a multiple of the four running sums
  for (double magnitude : {1.0, 1e-200, 1e200, 1e-310, 1e300}) {
    std::vector<double> x(static_cast<size_t>(2 * n));
    long double ref = 0;  // with a scale that keeps the squares in range
    for (int64_t i = 0; i < n; ++i) {
      const double u = rng::gaussian(11, 0, static_cast<uint64_t>(i));
      x[i] = u * magnitude;
      ref += static_cast<long double>(u) * u;
      x[n + i] = i == 17 ? -magnitude : 0.0;  // a single entry
    }
    double out[2] = {0, 0};
    CpuSpace<double>().norms(BlockView<const double>(x.data(), n, 2, n), out);
    const double expect = static_cast<double>(std::sqrt(ref)) * magnitude;
    // Denormal entries carry fewer digits; the scaled fallback rounds a little more.
    const double tol = magnitude < 1e-300 ? 1e-10 : magnitude == 1.0 ? 1e-13 : 1e-12;
    EXPECT_NEAR(out[0] / expect, 1.0, tol) << magnitude;
    EXPECT_EQ(out[1], magnitude) << magnitude;
  }
  std::vector<float> f(1001);
  double ref = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    f[i] = static_cast<float>(rng::gaussian(12, 0, i)) * 1e30f;
    ref += static_cast<double>(f[i]) * static_cast<double>(f[i]);
  }
  double out = 0;
  CpuSpace<float>().norms(BlockView<const float>(f.data(), 1001, 1, 1001), &out);
  EXPECT_NEAR(out / std::sqrt(ref), 1.0, 1e-14);
  const std::vector<float> zero(5, 0.0f);
  CpuSpace<float>().norms(BlockView<const float>(zero.data(), 5, 1, 5), &out);
  EXPECT_EQ(out, 0.0);
}

}  // namespace
}  // namespace hspec
