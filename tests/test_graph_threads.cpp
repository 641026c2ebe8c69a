// Graph engine on more than one thread: the CPU compute's threaded elementwise passes and
// blocked reductions against plain loops, and whole products that are bit-identical for 1
// and 2 threads and agree with the MLP operator at sizes where every pass is threaded.
#include <gtest/gtest.h>

#include <cstring>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "graph_test_util.hpp"
#include "hspec/graph/graph_operator.hpp"
#include "hvp_test_util.hpp"

namespace hspec {
namespace {

// Sets the OpenMP threads (the graph engine's own loops) for a scope, then restores them.
// BLAS threads stay as they are: OpenBLAS's pthreads build may split a GEMM differently
// for another thread count (hspec::cpu::set_threads sets both), which this does not test.
class OmpThreads {
 public:
#if defined(_OPENMP)
  explicit OmpThreads(int n) : before_(omp_get_max_threads()) {
    omp_set_num_threads(n);
  }
  ~OmpThreads() {
    omp_set_num_threads(before_);
  }

 private:
  int before_;
#else
  explicit OmpThreads(int) {}
#endif
};

std::vector<double> gaussian(int64_t n, uint64_t stream) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = rng::gaussian(91, stream, i);
  return v;
}

TEST(GraphComputeThreads, BroadcastAndReduceMatchPlainLoops) {
  OmpThreads two(2);
  auto cx = make_cpu_compute<double>();
  // Many runs: [3, 1000, 7, 40] = a [3, 1000, 1, 40] * b [1, 1, 7, 40].
  const int64_t A = 3, B = 1000, C = 7, D = 40;
  const std::vector<double> a = gaussian(A * B * D, 1), b = gaussian(C * D, 2);
  std::vector<double> out(size_t(A * B * C * D), 1.0);
  cx->binary(BinaryKind::Mul, a.data(), {A, B, 1, D}, b.data(), {1, 1, C, D}, out.data(),
             {A, B, C, D}, 2.0, true);
  for (int64_t i = 0; i < A; ++i)
    for (int64_t j = 0; j < B; ++j)
      for (int64_t l = 0; l < C; ++l)
        for (int64_t e = 0; e < D; ++e)
          ASSERT_EQ(out[size_t(((i * B + j) * C + l) * D + e)],
                    1.0 + 2.0 * (a[size_t((i * B + j) * D + e)] * b[size_t(l * D + e)]));
  // Reduced to [3, 1, 7, 1]: sums of 40000 terms each.
  std::vector<double> sums(size_t(A * C), 0.5);
  cx->reduce_to(out.data(), {A, B, C, D}, sums.data(), {A, 1, C, 1}, -1.0, true);
  for (int64_t i = 0; i < A; ++i)
    for (int64_t l = 0; l < C; ++l) {
      double ref = 0;
      for (int64_t j = 0; j < B; ++j)
        for (int64_t e = 0; e < D; ++e) ref += out[size_t(((i * B + j) * C + l) * D + e)];
      EXPECT_NEAR(sums[size_t(i * C + l)], 0.5 - ref, 1e-11 * std::abs(ref) + 1e-12);
    }
  // Rows summed to one element each: [2, 500, 64] -> [2, 500, 1].
  const std::vector<double> rows = gaussian(2 * 500 * 64, 4);
  std::vector<double> row_sums(1000);
  cx->reduce_to(rows.data(), {2, 500, 64}, row_sums.data(), {2, 500, 1}, 3.0, false);
  for (int64_t i = 0; i < 1000; ++i) {
    double ref = 0;
    for (int64_t e = 0; e < 64; ++e) ref += rows[size_t(i * 64 + e)];
    EXPECT_NEAR(row_sums[size_t(i)], 3.0 * ref, 1e-13);
  }
  // One long run: [1, 200000] + a scalar [1, 1], then summed to one element.
  const int64_t N = 200000;
  const std::vector<double> x = gaussian(N, 3);
  const double s = 0.25;
  std::vector<double> y(static_cast<size_t>(N));
  cx->binary(BinaryKind::Add, x.data(), {1, N}, &s, {1, 1}, y.data(), {1, N}, 1.0, false);
  double ref = 0;
  for (int64_t i = 0; i < N; ++i) {
    ASSERT_EQ(y[size_t(i)], x[size_t(i)] + s);
    ref += y[size_t(i)];
  }
  double total = 0;
  cx->reduce_to(y.data(), {1, N}, &total, {1, 1}, 1.0, false);
  EXPECT_NEAR(total, ref, 1e-10 * std::abs(ref) + 1e-12);
}

// An MLP big enough that the elementwise passes and the bias sums are split over threads.
struct BigMlp {
  Model model = hvptest::make_mlp({24, 48, 48, 6}, Activation::Tanh, 5);
  Dataset data = hvptest::make_data(2048, 24, Loss::CE, 6, 6);
  int64_t k = 3;
};

template <class T>
std::vector<T> products(const BigMlp& m, Curvature c, int threads) {
  OmpThreads scope(threads);
  GraphCurvatureOperator<T> op(graph_from_mlp(m.model), m.data, graphtest::gopt(Loss::CE, c, m.k));
  const int64_t p = op.dim();
  std::vector<T> x(size_t(p * m.k)), y(size_t(p * m.k));
  for (size_t i = 0; i < x.size(); ++i) x[i] = T(rng::gaussian(7, 0, i));
  op.apply(BlockView<const T>(x.data(), p, m.k), BlockView<T>(y.data(), p, m.k));
  return y;
}

template <class T>
void expect_bit_identical(Curvature c) {
  const BigMlp m;
  const std::vector<T> one = products<T>(m, c, 1), two = products<T>(m, c, 2);
  ASSERT_EQ(one.size(), two.size());
  EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(T)), 0);
}

TEST(GraphOperatorThreads, ProductsBitIdenticalForOneAndTwoThreads) {
#if !defined(_OPENMP)
  GTEST_SKIP() << "built without OpenMP: one thread only";
#endif
  for (Curvature c : {Curvature::Hessian, Curvature::GGN}) {
    expect_bit_identical<float>(c);
    expect_bit_identical<double>(c);
  }
}

TEST(GraphOperatorThreads, ThreadedProductsMatchMlpOperator) {
  const BigMlp m;
  for (Curvature c : {Curvature::Hessian, Curvature::GGN}) {
    const std::vector<double> got = products<double>(m, c, 2);
    OmpThreads scope(2);
    MlpReferenceOperator<double> mop(m.model, m.data, hvptest::options(Loss::CE, c, m.k));
    const int64_t p = mop.dim();
    std::vector<double> x(size_t(p * m.k)), ref(size_t(p * m.k));
    for (size_t i = 0; i < x.size(); ++i) x[i] = rng::gaussian(7, 0, i);
    mop.apply(BlockView<const double>(x.data(), p, m.k), BlockView<double>(ref.data(), p, m.k));
    double worst = 0, scale = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      worst = std::max(worst, std::abs(got[i] - ref[i]));
      scale = std::max(scale, std::abs(ref[i]));
    }
    ASSERT_GT(scale, 0.0);
    EXPECT_LE(worst, 1e-12 * scale);
  }
}

}  // namespace
}  // namespace hspec
