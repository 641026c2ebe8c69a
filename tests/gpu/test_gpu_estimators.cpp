// Exact mode (cuSOLVER) and the trace and density estimators on the CUDA backend, against
// the exact spectrum of the dense Hessian (built on the CPU, solved by LAPACK). The device draws
// its probes with cuRAND, not the CPU generator, so the estimates differ from the CPU's; what must
// hold is the same accuracy against the exact answer. Each test skips without a device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "gpu_test_util.hpp"
#include "hspec/backends/cpu/cpu_space.hpp"
#include "hspec/backends/cuda/cuda_backend.hpp"
#include "hspec/device.hpp"
#include "hspec/error.hpp"
#include "hspec/mlp/reference_operator.hpp"
#include "hspec/solvers/density.hpp"
#include "hspec/solvers/exact.hpp"
#include "hspec/solvers/trace.hpp"

namespace hspec {
namespace {

using gputest::test_data;
using gputest::test_mlp;

struct Problem {
  Model model;
  Dataset data;
  gputest::CudaMlpOptions opt;
  ExactResult exact;
};

// An 8-12-4 tanh MLP (156 parameters: the second layer has no bias) on 64 samples with its exact
// fp64 spectrum.
Problem small_problem() {
  Problem p{test_mlp({8, 12, 4}, Activation::Tanh, 91), {}, {}, {}};
  p.data = test_data(p.model, Loss::CE, 64, 92);
  p.opt.base.loss = Loss::CE;
  p.opt.base.max_block = 16;
  MlpReferenceOperator<double> op(p.model, p.data, p.opt.base);
  CpuSpace<double> space;
  p.exact = exact_spectrum<double>(op, space, 1, 1, 1e-10, 1ull << 30);
  return p;
}

TEST(CudaExact, CusolverMatchesLapack) {
  HSPEC_REQUIRE_DEVICE();
  const Problem p = small_problem();
  auto op = gputest::cuda_mlp_operator<double>(p.model, p.data, p.opt);
  auto space = make_cuda_space<double>(0);
  const SymmetricEigensolver cusolver{"cuSOLVER syevd",
                                      [](int64_t n, double* a, int64_t lda, double* w) {
                                        cuda_symmetric_eigensolve(0, n, a, lda, w);
                                      }};
  const ExactResult g = exact_spectrum<double>(*op, *space, 3, 3, 1e-10, 1ull << 30, cusolver);
  EXPECT_EQ(g.solver, "cuSOLVER syevd");
  ASSERT_EQ(g.eigenvalues.size(), p.exact.eigenvalues.size());
  const double scale =
      std::max(std::fabs(p.exact.eigenvalues.front()), std::fabs(p.exact.eigenvalues.back()));
  for (size_t i = 0; i < g.eigenvalues.size(); ++i)
    EXPECT_NEAR(g.eigenvalues[i], p.exact.eigenvalues[i], 1e-10 * scale) << i;
  EXPECT_NEAR(g.trace, p.exact.trace, 1e-10 * scale * static_cast<double>(g.eigenvalues.size()));
  // The residuals ||C u - lambda u|| use cuSOLVER's eigenvectors: they must be eigenvectors.
  for (const RitzValue& v : g.top) EXPECT_TRUE(v.converged) << v.value << " " << v.residual;
  for (const RitzValue& v : g.bottom) EXPECT_TRUE(v.converged) << v.value << " " << v.residual;
}

TEST(CudaExact, EigensolverRejectsAMissingDevice) {
  HSPEC_REQUIRE_DEVICE();
  std::vector<double> a = {2, 1, 1, 2}, w(2);
  EXPECT_THROW(cuda_symmetric_eigensolve(cuda_device_count(), 2, a.data(), 2, w.data()),
               DeviceError);
  cuda_symmetric_eigensolve(0, 2, a.data(), 2, w.data());  // [[2,1],[1,2]]: 1 and 3
  EXPECT_NEAR(w[0], 1.0, 1e-14);
  EXPECT_NEAR(w[1], 3.0, 1e-14);
  EXPECT_NEAR(std::fabs(a[0]), std::sqrt(0.5), 1e-14);  // eigenvector (1, -1)/sqrt(2)
}

TEST(CudaTrace, EveryMethodMatchesTheExactTrace) {
  HSPEC_REQUIRE_DEVICE();
  const Problem p = small_problem();
  for (TraceMethod m :
       {TraceMethod::KrylovHutchPP, TraceMethod::HutchPP, TraceMethod::Hutchinson}) {
    auto op = gputest::cuda_mlp_operator<double>(p.model, p.data, p.opt);
    auto space = make_cuda_space<double>(0);
    TraceOptions to;
    to.method = m;
    to.rel_tol = 0;
    to.max_products = 60;
    to.seed = 93;
    const TraceResult r = estimate_trace<double>(*op, *space, to);
    EXPECT_EQ(r.products, 60) << trace_method_name(m);
    EXPECT_GT(r.std_error, 0) << trace_method_name(m);
    EXPECT_LE(std::fabs(r.estimate - p.exact.trace), 4 * r.std_error + 1e-9)
        << trace_method_name(m) << ": " << r.estimate << " vs " << p.exact.trace;
  }
}

TEST(CudaTrace, Float32KrylovWithinItsErrorPlusRounding) {
  HSPEC_REQUIRE_DEVICE();
  const Problem p = small_problem();
  auto op = gputest::cuda_mlp_operator<float>(p.model, p.data, p.opt);
  auto space = make_cuda_space<float>(0);
  TraceOptions to;
  to.rel_tol = 0;
  to.max_products = 60;
  to.seed = 94;
  const TraceResult r = estimate_trace<float>(*op, *space, to);
  EXPECT_LE(std::fabs(r.estimate - p.exact.trace),
            4 * r.std_error + 1e-4 * std::fabs(p.exact.trace));
}

TEST(CudaDensity, QuadratureIsAProbabilityMeasureInsideTheSpectrum) {
  HSPEC_REQUIRE_DEVICE();
  const Problem p = small_problem();
  auto op = gputest::cuda_mlp_operator<double>(p.model, p.data, p.opt);
  auto space = make_cuda_space<double>(0);
  DensityOptions dopt;
  dopt.probes = 4;
  dopt.steps = 60;
  dopt.seed = 95;
  const Density d = slq_density<double>(*op, *space, dopt);
  ASSERT_FALSE(d.nodes.empty());
  EXPECT_NEAR(std::accumulate(d.weights.begin(), d.weights.end(), 0.0), 1.0, 1e-12);
  const double lo = p.exact.eigenvalues.front(), hi = p.exact.eigenvalues.back();
  const double scale = std::max(std::fabs(lo), std::fabs(hi));
  for (double x : d.nodes) {  // Ritz values lie inside [lambda_min, lambda_max]
    EXPECT_GE(x, lo - 1e-9 * scale);
    EXPECT_LE(x, hi + 1e-9 * scale);
  }
  // 60 steps on 156 dimensions: the extreme Ritz values have converged.
  EXPECT_NEAR(d.nodes.back(), hi, 1e-8 * scale);
  // The quadrature's mean is a Hutchinson estimate of tr(C)/n from 4 normalised probes:
  // not exact (0.34-1.46 times the true mean over 20 seeds of the same run on the CPU), but
  // of its order.
  double mean = 0;
  for (size_t i = 0; i < d.nodes.size(); ++i) mean += d.weights[i] * d.nodes[i];
  const double true_mean = p.exact.trace / static_cast<double>(p.exact.eigenvalues.size());
  EXPECT_GT(mean, 0.1 * true_mean);
  EXPECT_LT(mean, 10 * true_mean);
}

}  // namespace
}  // namespace hspec
