// GPU tests of the CUDA backend against the CPU reference: curvature products for every
// loss/activation/curvature, TF32 accuracy, the device vector space, block Lanczos on both
// backends, chunked vs cached primal passes. Each test skips cleanly without a device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <memory>
#include <ostream>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "gpu_test_util.hpp"
#include "hspec/backends/cpu/cpu_space.hpp"
#include "hspec/backends/cuda/cuda_backend.hpp"
#include "hspec/device.hpp"
#include "hspec/error.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/mlp/model.hpp"
#include "hspec/mlp/reference_operator.hpp"
#include "hspec/random.hpp"
#include "hspec/solvers/lanczos.hpp"

namespace hspec {

// Readable test parameters in gtest's messages.
void PrintTo(Loss l, std::ostream* os) {
  *os << loss_name(l);
}
void PrintTo(Activation a, std::ostream* os) {
  *os << activation_name(a);
}
void PrintTo(Curvature c, std::ostream* os) {
  *os << curvature_name(c);
}

namespace {

using gputest::test_data;
using gputest::test_mlp;

template <class T>
std::vector<T> random_block(int64_t rows, int64_t cols, int64_t ld, uint64_t seed) {
  std::vector<T> x(static_cast<size_t>(ld * cols), T(0));
  for (int64_t j = 0; j < cols; ++j)
    for (int64_t i = 0; i < rows; ++i) x[i + j * ld] = static_cast<T>(rng::gaussian(seed, j, i));
  return x;
}

// max over columns of ||a_j - b_j|| / ||b_j|| (rows x cols, leading dimensions lda, ldb).
template <class T, class U>
double max_column_error(const T* a, int64_t lda, const U* b, int64_t ldb, int64_t rows,
                        int64_t cols) {
  double worst = 0;
  for (int64_t j = 0; j < cols; ++j) {
    double diff = 0, ref = 0;
    for (int64_t i = 0; i < rows; ++i) {
      const double d = static_cast<double>(a[i + j * lda]) - static_cast<double>(b[i + j * ldb]);
      diff += d * d;
      ref += static_cast<double>(b[i + j * ldb]) * static_cast<double>(b[i + j * ldb]);
    }
    worst = std::max(worst, std::sqrt(diff) / std::max(std::sqrt(ref), 1e-300));
  }
  return worst;
}

// Y = C X on the device for a host block X (rows = dim, ld = ldx): X goes up with one leading
// dimension and Y comes back from another, so both strided paths are used.
template <class T>
std::vector<T> device_product(CurvatureOperator<T>& op, VectorSpace<T>& space,
                              const std::vector<T>& x, int64_t ldx, int64_t k) {
  const int64_t n = op.dim(), ldy = n + 5;
  Matrix<T> dx = space.allocate(ldx, k), dy = space.allocate(ldy, k);
  BlockView<T> xv(dx.data(), n, k, ldx), yv(dy.data(), n, k, ldy);
  space.from_host(x.data(), ldx, xv);
  op.apply(xv, yv);
  std::vector<T> y(static_cast<size_t>(n * k));
  space.to_host(yv, y.data(), n);
  // The padding rows below Y were not touched.
  std::vector<T> pad(static_cast<size_t>(ldy * k));
  space.to_host(dy.view(), pad.data(), ldy);
  for (int64_t j = 0; j < k; ++j)
    for (int64_t i = n; i < ldy; ++i) EXPECT_EQ(pad[i + j * ldy], T(0));
  return y;
}

TEST(DeviceProbe, CountsWithoutThrowing) {
  int count = -1;
  EXPECT_NO_THROW(count = cuda_device_count());
  EXPECT_GE(count, 0);
  EXPECT_TRUE(built_with_cuda());
  // scripts/gpu-check.sh: no device is a failure there, with the runtime's reason.
  if (std::getenv("HSPEC_REQUIRE_GPU")) {
    EXPECT_GT(count, 0) << cuda_probe_reason();
  }
  EXPECT_EQ(cuda_device_name(-1), "");
  EXPECT_EQ(cuda_device_name(count), "");
  std::cout << "CUDA devices: " << count;
  if (count > 0) std::cout << " (0: " << cuda_device_name(0) << ")";
  std::cout << "\n";
}

using Config = std::tuple<Loss, Activation, Curvature>;

class CudaVsCpu : public ::testing::TestWithParam<Config> {
 protected:
  template <class T>
  void compare(double tol) {
    const auto [loss, act, curv] = GetParam();
    const int64_t out = loss == Loss::BCE ? 1 : 3;
    const Model m = test_mlp({5, 7, 6, out}, act, 11);
    const Dataset ds = test_data(m, loss, 37, 12);
    gputest::CudaMlpOptions opt;
    opt.base.loss = loss;
    opt.base.curvature = curv;
    opt.base.max_block = 4;
    MlpReferenceOperator<T> cpu(m, ds, opt.base);
    auto gpu = gputest::cuda_mlp_operator<T>(m, ds, opt);
    auto space = make_cuda_space<T>(0);
    ASSERT_EQ(gpu->dim(), cpu.dim());
    EXPECT_EQ(gpu->where(), Where::Device);
    EXPECT_NEAR(gpu->loss_value(), cpu.loss_value(), tol * std::abs(cpu.loss_value()));
    EXPECT_NEAR(gpu->grad_norm(), cpu.grad_norm(), tol * cpu.grad_norm());

    const int64_t n = cpu.dim(), k = 3, ldx = n + 3;
    const std::vector<T> x = random_block<T>(n, k, ldx, 13);
    std::vector<T> ref(static_cast<size_t>(n * k));
    cpu.apply(BlockView<const T>(x.data(), n, k, ldx), BlockView<T>(ref.data(), n, k));
    const std::vector<T> y = device_product<T>(*gpu, *space, x, ldx, k);
    const double err = max_column_error(y.data(), n, ref.data(), n, n, k);
    EXPECT_LE(err, tol) << loss_name(loss) << " " << activation_name(act) << " "
                        << curvature_name(curv);
    EXPECT_EQ(gpu->products(), k);
  }
};

TEST_P(CudaVsCpu, Float64) {
  HSPEC_REQUIRE_DEVICE();
  compare<double>(1e-12);
}

TEST_P(CudaVsCpu, Float32) {
  HSPEC_REQUIRE_DEVICE();
  compare<float>(1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    AllModels, CudaVsCpu,
    ::testing::Combine(::testing::Values(Loss::CE, Loss::MSE, Loss::BCE),
                       ::testing::Values(Activation::Identity, Activation::Relu, Activation::Tanh,
                                         Activation::Sigmoid, Activation::Gelu),
                       ::testing::Values(Curvature::Hessian, Curvature::GGN)),
    [](const ::testing::TestParamInfo<Config>& info) {
      return std::string(loss_name(std::get<0>(info.param))) + "_" +
             activation_name(std::get<1>(info.param)) + "_" +
             curvature_name(std::get<2>(info.param));
    });

// One Linear layer (linear / logistic / softmax regression), a single direction.
TEST(CudaHvp, SingleLayerModelsMatchCpu) {
  HSPEC_REQUIRE_DEVICE();
  for (Loss loss : {Loss::CE, Loss::MSE, Loss::BCE}) {
    const Model m =
        test_mlp({6, loss == Loss::BCE ? int64_t{1} : int64_t{4}}, Activation::Tanh, 21);
    const Dataset ds = test_data(m, loss, 29, 22);
    gputest::CudaMlpOptions opt;
    opt.base.loss = loss;
    opt.base.max_block = 1;
    MlpReferenceOperator<double> cpu(m, ds, opt.base);
    auto gpu = gputest::cuda_mlp_operator<double>(m, ds, opt);
    auto space = make_cuda_space<double>(0);
    const int64_t n = cpu.dim();
    const std::vector<double> x = random_block<double>(n, 1, n, 23);
    std::vector<double> ref(static_cast<size_t>(n));
    cpu.apply(BlockView<const double>(x.data(), n, 1), BlockView<double>(ref.data(), n, 1));
    const std::vector<double> y = device_product<double>(*gpu, *space, x, n, 1);
    EXPECT_LE(max_column_error(y.data(), n, ref.data(), n, n, 1), 1e-12) << loss_name(loss);
  }
}

// TF32 tensor cores against the fp64 product of the same model: the relative error is
// reported (about 1e-3 is what 10-bit mantissas give) and must stay below 1e-2.
TEST(CudaHvp, Tf32AccuracyAgainstFloat64) {
  HSPEC_REQUIRE_DEVICE();
  const Model m = test_mlp({64, 128, 128, 10}, Activation::Tanh, 31);
  const Dataset ds = test_data(m, Loss::CE, 512, 32);
  gputest::CudaMlpOptions opt;
  opt.base.max_block = 4;
  auto ref_op = gputest::cuda_mlp_operator<double>(m, ds, opt);
  auto ref_space = make_cuda_space<double>(0);
  const int64_t n = ref_op->dim(), k = 4;
  const std::vector<double> x = random_block<double>(n, k, n, 33);
  const std::vector<double> ref = device_product<double>(*ref_op, *ref_space, x, n, k);

  const std::vector<float> xf(x.begin(), x.end());
  auto space = make_cuda_space<float>(0);
  auto fp32 = gputest::cuda_mlp_operator<float>(m, ds, opt);
  opt.tf32 = true;
  auto tf32 = gputest::cuda_mlp_operator<float>(m, ds, opt);
  const std::vector<float> y32 = device_product<float>(*fp32, *space, xf, n, k);
  const std::vector<float> ytf = device_product<float>(*tf32, *space, xf, n, k);
  const double err32 = max_column_error(y32.data(), n, ref.data(), n, n, k);
  const double errtf = max_column_error(ytf.data(), n, ref.data(), n, n, k);
  std::cout << "relative error vs fp64: fp32 " << err32 << ", tf32 " << errtf << "\n";
  RecordProperty("fp32_relative_error", std::to_string(err32));
  RecordProperty("tf32_relative_error", std::to_string(errtf));
  EXPECT_LE(err32, 1e-5);
  EXPECT_LE(errtf, 1e-2);
}

// Chunked and cached, and recomputed per chunk (a memory budget too small for the cache):
// the same products, loss and gradient.
TEST(CudaHvp, ChunkedMatchesUnchunked) {
  HSPEC_REQUIRE_DEVICE();
  const Model m = test_mlp({5, 8, 6, 3}, Activation::Gelu, 41);
  const Dataset ds = test_data(m, Loss::CE, 50, 42);
  auto space = make_cuda_space<double>(0);
  gputest::CudaMlpOptions opt;
  opt.base.max_block = 3;
  auto whole = gputest::cuda_mlp_operator<double>(m, ds, opt);
  const int64_t n = whole->dim(), k = 3;
  const std::vector<double> x = random_block<double>(n, k, n, 43);
  const std::vector<double> ref = device_product<double>(*whole, *space, x, n, k);
  struct Variant {
    int64_t chunk;
    uint64_t max_memory;  // 4096 bytes cannot hold the 50-sample cache: recompute per chunk
  };
  for (const Variant v : {Variant{7, 0}, Variant{0, 4096}, Variant{7, 4096}, Variant{50, 0}}) {
    opt.base.chunk = v.chunk;
    opt.max_memory = v.max_memory;
    auto op = gputest::cuda_mlp_operator<double>(m, ds, opt);
    const std::vector<double> y = device_product<double>(*op, *space, x, n, k);
    EXPECT_LE(max_column_error(y.data(), n, ref.data(), n, n, k), 1e-12)
        << "chunk " << v.chunk << " max_memory " << v.max_memory;
    EXPECT_NEAR(op->loss_value(), whole->loss_value(), 1e-12 * whole->loss_value());
    EXPECT_NEAR(op->grad_norm(), whole->grad_norm(), 1e-12 * whole->grad_norm());
  }
}

TEST(CudaHvp, RejectsBadInputsAndReportsNaN) {
  HSPEC_REQUIRE_DEVICE();
  const Model m = test_mlp({4, 5, 3}, Activation::Tanh, 51);
  Dataset ds = test_data(m, Loss::CE, 10, 52);
  gputest::CudaMlpOptions opt;
  opt.base.max_block = 2;
  auto op = gputest::cuda_mlp_operator<double>(m, ds, opt);
  auto space = make_cuda_space<double>(0);
  const int64_t n = op->dim();
  Matrix<double> x = space->allocate(n, 3), y = space->allocate(n, 3);
  EXPECT_THROW(op->apply(x.view(), y.view()), Error);  // wider than max_block
  EXPECT_THROW(op->apply(x.columns(0, 2), y.columns(0, 1)), Error);
  std::vector<double> h(static_cast<size_t>(n), 1.0);
  h[7] = std::numeric_limits<double>::quiet_NaN();
  space->from_host(h.data(), n, x.columns(0, 1));
  EXPECT_THROW(op->apply(x.columns(0, 1), y.columns(0, 1)), NumericalError);

  Dataset bad = ds;
  bad.labels[3] = 3;
  EXPECT_THROW(gputest::cuda_mlp_operator<double>(m, bad, opt), InputError);
  opt.device = cuda_device_count();
  EXPECT_THROW(gputest::cuda_mlp_operator<double>(m, ds, opt), DeviceError);
  EXPECT_THROW(make_cuda_space<double>(cuda_device_count()), DeviceError);
}

template <class T>
class CudaSpaceTest : public ::testing::Test {};
using Precisions = ::testing::Types<float, double>;
TYPED_TEST_SUITE(CudaSpaceTest, Precisions);

TYPED_TEST(CudaSpaceTest, MatchesCpuSpace) {
  using T = TypeParam;
  HSPEC_REQUIRE_DEVICE();
  const double tol = std::is_same_v<T, double> ? 1e-13 : 1e-5;
  auto gpu = make_cuda_space<T>(0);
  CpuSpace<T> cpu;
  EXPECT_EQ(gpu->where(), Where::Device);
  const int64_t n = 1000, lda = n + 7;
  const std::vector<T> a = random_block<T>(n, 5, lda, 61);
  const std::vector<T> b = random_block<T>(n, 3, n, 62);
  Matrix<T> da = gpu->allocate(lda, 5), db = gpu->allocate(n, 3);
  BlockView<T> av(da.data(), n, 5, lda);
  gpu->from_host(a.data(), lda, av);
  gpu->from_host(b.data(), n, db.view());
  const BlockView<const T> ha(a.data(), n, 5, lda), hb(b.data(), n, 3, n);

  // Round trip, and a fresh allocation is zero.
  std::vector<T> back(static_cast<size_t>(n * 5));
  gpu->to_host(av, back.data(), n);
  EXPECT_EQ(max_column_error(back.data(), n, a.data(), lda, n, 5), 0.0);
  Matrix<T> z = gpu->allocate(n, 2);
  std::vector<T> zh(static_cast<size_t>(n * 2), T(1));
  gpu->to_host(z.view(), zh.data(), n);
  for (T v : zh) EXPECT_EQ(v, T(0));

  // Gram product, with the host result's leading dimension larger than p.
  std::vector<double> g(6 * 3, -1.0), gref(6 * 3, -1.0);
  gpu->gram(av.columns(1, 4), db.view(), g.data(), 6);
  cpu.gram(ha.columns(1, 4), hb, gref.data(), 6);
  EXPECT_LE(max_column_error(g.data(), 6, gref.data(), 6, 4, 3), tol);
  EXPECT_EQ(g[4], -1.0);  // rows p..ldg of G are left alone

  // Y = beta Y + alpha A C, including beta = 0 and an empty A.
  std::vector<double> c(5 * 3);
  for (size_t i = 0; i < c.size(); ++i) c[i] = rng::gaussian(63, 0, i);
  for (const double beta : {-1.3, 0.0}) {
    std::vector<T> yref = b;
    cpu.update(BlockView<T>(yref.data(), n, 3), ha, c.data(), 5, 0.7, beta);
    Matrix<T> dy = gpu->allocate(n, 3);
    gpu->from_host(b.data(), n, dy.view());
    gpu->update(dy.view(), av, c.data(), 5, 0.7, beta);
    std::vector<T> y(static_cast<size_t>(n * 3));
    gpu->to_host(dy.view(), y.data(), n);
    EXPECT_LE(max_column_error(y.data(), n, yref.data(), n, n, 3), tol) << "beta " << beta;
  }
  {
    Matrix<T> dy = gpu->allocate(n, 3);
    gpu->from_host(b.data(), n, dy.view());
    gpu->update(dy.view(), av.columns(0, 0), c.data(), 1, 0.7, 2.0);
    std::vector<T> y(static_cast<size_t>(n * 3));
    gpu->to_host(dy.view(), y.data(), n);
    for (int64_t i = 0; i < n * 3; ++i) EXPECT_EQ(y[i], T(2) * b[i]);
  }

  // Norms and column scaling.
  std::vector<double> nr(5), nref(5);
  gpu->norms(av, nr.data());
  cpu.norms(ha, nref.data());
  for (int j = 0; j < 5; ++j) EXPECT_NEAR(nr[j], nref[j], tol * nref[j]);
  const std::vector<double> s = {0.5, -2.0, 0.0, 3.0, 1.0};
  std::vector<T> scaled = a;
  cpu.scale_columns(BlockView<T>(scaled.data(), n, 5, lda), s.data());
  gpu->scale_columns(av, s.data());
  gpu->to_host(av, back.data(), n);
  EXPECT_LE(max_column_error(back.data(), n, scaled.data(), lda, n, 5), tol);

  // Copies: strided, and overlapping (columns 0..2 onto 1..3 of the same matrix).
  Matrix<T> dc = gpu->allocate(n, 4);
  gpu->copy(av.columns(0, 4), dc.view());
  gpu->copy(dc.columns(0, 3), dc.columns(1, 3));
  std::vector<T> cp(static_cast<size_t>(n * 4));
  gpu->to_host(dc.view(), cp.data(), n);
  EXPECT_LE(max_column_error(cp.data(), n, scaled.data(), lda, n, 1), 0.0);
  EXPECT_LE(max_column_error(cp.data() + n, n, scaled.data(), lda, n, 3), 0.0);
}

TYPED_TEST(CudaSpaceTest, RandomFillIsSeededAndDistributed) {
  using T = TypeParam;
  HSPEC_REQUIRE_DEVICE();
  auto gpu = make_cuda_space<T>(0);
  const int64_t n = 10001, k = 3;  // an odd count exercises the Box-Muller pairing
  Matrix<T> m1 = gpu->allocate(n, k), m2 = gpu->allocate(n + 4, k);
  BlockView<T> strided(m2.data(), n, k, n + 4);
  std::vector<T> h1(static_cast<size_t>(n * k)), h2(h1.size());
  for (Distribution dist : {Distribution::Gaussian, Distribution::Rademacher}) {
    gpu->fill_random(m1.view(), dist, 71);
    gpu->fill_random(strided, dist, 71);
    gpu->to_host(m1.view(), h1.data(), n);
    gpu->to_host(strided, h2.data(), n);
    EXPECT_EQ(h1, h2);  // depends only on the seed and the shape
    gpu->fill_random(strided, dist, 72);
    gpu->to_host(strided, h2.data(), n);
    EXPECT_NE(h1, h2);
    double mean = 0, var = 0;
    for (T v : h1) mean += static_cast<double>(v);
    mean /= static_cast<double>(h1.size());
    for (T v : h1) var += (static_cast<double>(v) - mean) * (static_cast<double>(v) - mean);
    var /= static_cast<double>(h1.size());
    EXPECT_NEAR(mean, 0.0, 0.05);
    EXPECT_NEAR(var, 1.0, 0.05);
    if (dist == Distribution::Rademacher) {
      for (T v : h1) EXPECT_TRUE(v == T(1) || v == T(-1));
    }
  }
}

// Block Lanczos written once against the seams: on the CUDA operator and space it finds the
// eigenvalues the CPU finds (different random starts, same converged values).
TEST(CudaLanczos, SameEigenvaluesAsCpu) {
  HSPEC_REQUIRE_DEVICE();
  const Model m = test_mlp({4, 6, 3}, Activation::Tanh, 81);
  const Dataset ds = test_data(m, Loss::CE, 40, 82);
  gputest::CudaMlpOptions opt;
  opt.base.max_block = 2;
  LanczosOptions lo;
  lo.top = 3;
  lo.bottom = 2;
  lo.block = 2;
  lo.tol = 1e-10;
  lo.seed = 83;
  MlpReferenceOperator<double> cpu_op(m, ds, opt.base);
  CpuSpace<double> cpu_space;
  const LanczosResult<double> cpu = BlockLanczos<double>(cpu_op, cpu_space).compute(lo);
  auto gpu_op = gputest::cuda_mlp_operator<double>(m, ds, opt);
  auto gpu_space = make_cuda_space<double>(0);
  const LanczosResult<double> gpu = BlockLanczos<double>(*gpu_op, *gpu_space).compute(lo);
  ASSERT_TRUE(cpu.converged);
  ASSERT_TRUE(gpu.converged);
  ASSERT_EQ(gpu.top.size(), cpu.top.size());
  ASSERT_EQ(gpu.bottom.size(), cpu.bottom.size());
  const double scale =
      std::max(std::abs(cpu.top.front().value), std::abs(cpu.bottom.front().value));
  for (size_t i = 0; i < cpu.top.size(); ++i)
    EXPECT_NEAR(gpu.top[i].value, cpu.top[i].value, 1e-10 * scale) << "top " << i;
  for (size_t i = 0; i < cpu.bottom.size(); ++i)
    EXPECT_NEAR(gpu.bottom[i].value, cpu.bottom[i].value, 1e-10 * scale) << "bottom " << i;
}

}  // namespace
}  // namespace hspec
