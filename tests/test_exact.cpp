// Exact mode: the dense spectrum from identity-block products, checked against closed forms
// (1-D Laplacian eigenvalues and trace), the memory refusal, and the CLI against Lanczos.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "hspec/backends/cpu/cpu_space.hpp"
#include "hspec/dense_operator.hpp"
#include "hspec/error.hpp"
#include "hspec/formats/safetensors.hpp"
#include "hspec/mlp/model.hpp"
#include "hspec/mlp/workloads.hpp"
#include "hspec/solvers/exact.hpp"

namespace hspec {
namespace {

TEST(ExactTest, LaplacianSpectrumAndTraceInClosedForm) {
  const int64_t n = 60;
  std::vector<double> a(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    a[i + i * n] = 2;
    if (i + 1 < n) a[i + 1 + i * n] = a[i + (i + 1) * n] = -1;
  }
  DenseOperator<double> op(a, n, 7);  // block 7 does not divide 60: a ragged last block
  CpuSpace<double> space;
  const ExactResult r = exact_spectrum<double>(op, space, 3, 2, 1e-10, 1ull << 30);
  EXPECT_EQ(r.products, n);
  EXPECT_NEAR(r.trace, 2.0 * n, 1e-12);
  EXPECT_EQ(r.asymmetry, 0.0);
  ASSERT_EQ(r.eigenvalues.size(), static_cast<size_t>(n));
  const double pi = 3.14159265358979323846;
  for (int64_t p = 1; p <= n; ++p)
    EXPECT_NEAR(r.eigenvalues[p - 1], 4 * std::pow(std::sin(p * pi / (2.0 * (n + 1))), 2), 1e-13);
  ASSERT_EQ(r.top.size(), 3u);
  ASSERT_EQ(r.bottom.size(), 2u);
  EXPECT_GT(r.top[0].value, r.top[1].value);
  EXPECT_LT(r.bottom[0].value, r.bottom[1].value);
  for (const auto& v : r.top) EXPECT_TRUE(v.converged && v.residual < 1e-13);
}

TEST(ExactTest, TheEigensolverIsASeam) {
  // Another solver can be plugged in (the CUDA backend plugs in cuSOLVER); its name is
  // reported, and a solver that returns garbage is caught rather than reported.
  const int64_t n = 3;
  const std::vector<double> a = {2, 0, 0, 0, -1, 0, 0, 0, 5};
  CpuSpace<double> space;
  DenseOperator<double> op(a, n);
  const ExactResult r = exact_spectrum<double>(op, space, 1, 1, 1e-12, 1ull << 30);
  EXPECT_EQ(r.solver, "LAPACK dsyevd");
  int calls = 0;
  const SymmetricEigensolver counted{"counted LAPACK",
                                     [&](int64_t m, double* x, int64_t ld, double* w) {
                                       ++calls;
                                       lapack_eigensolver().solve(m, x, ld, w);
                                     }};
  DenseOperator<double> op2(a, n);
  const ExactResult c = exact_spectrum<double>(op2, space, 1, 1, 1e-12, 1ull << 30, counted);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(c.solver, "counted LAPACK");
  EXPECT_EQ(c.eigenvalues, (std::vector<double>{-1, 2, 5}));
  const SymmetricEigensolver broken{"broken", [](int64_t m, double*, int64_t, double* w) {
                                      for (int64_t i = 0; i < m; ++i) w[i] = std::nan("");
                                    }};
  DenseOperator<double> op3(a, n);
  EXPECT_THROW(exact_spectrum<double>(op3, space, 1, 1, 1e-12, 1ull << 30, broken), NumericalError);
}

TEST(ExactTest, RefusesAboveTheMemoryBudget) {
  DenseOperator<double> op(std::vector<double>(100 * 100, 0.0), 100);
  CpuSpace<double> space;
  EXPECT_THROW(exact_spectrum<double>(op, space, 1, 1, 1e-6, exact_bytes(100) - 1), UsageError);
  EXPECT_EQ(op.products(), 0);  // refused before any work
}

TEST(ExactTest, CliExactAgreesWithLanczos) {
  const std::string dir = HSPEC_TEST_TMP;
  const std::string model = dir + "/exact_model.safetensors",
                    data = dir + "/exact_data.safetensors";
  const Model teacher = random_mlp({5, 4, 3}, Activation::Sigmoid, 8);
  const Dataset ds = teacher_dataset(teacher, 30, 9);
  save_model(model, random_mlp({5, 4, 3}, Activation::Sigmoid, 10), Loss::CE);
  write_safetensors(data, {make_tensor("inputs", {ds.n, ds.d}, ds.inputs),
                           make_tensor("labels", {ds.n}, ds.labels)});
  auto run = [&](const std::string& extra) {
    const std::string cmd = std::string(HSPEC_CLI_PATH) + " analyze --model " + model + " --data " +
                            data + " --precision fp64 --top 3 --bottom 3 --tol 1e-10 --json - " +
                            extra;
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, got);
    EXPECT_EQ(pclose(p), 0);
    return nlohmann::json::parse(out);
  };
  const auto ex = run("--exact"), lz = run("");
  EXPECT_TRUE(ex["exact"].get<bool>());
  EXPECT_EQ(ex["eigenvalues"].size(), static_cast<size_t>(5 * 4 + 4 + 4 * 3 + 3));
  double sum = 0;
  for (const auto& v : ex["eigenvalues"]) sum += v.get<double>();
  EXPECT_NEAR(sum, ex["trace"].get<double>(), 1e-12);
  const double lmax = ex["top"][0]["value"].get<double>();
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(ex["top"][i]["value"].get<double>(), lz["top"][i]["value"].get<double>(),
                1e-9 * lmax);
    EXPECT_NEAR(ex["bottom"][i]["value"].get<double>(), lz["bottom"][i]["value"].get<double>(),
                1e-9 * lmax);
  }
}

}  // namespace
}  // namespace hspec
