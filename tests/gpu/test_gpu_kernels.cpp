// GPU tests of the CUDA backend's plumbing: the device guard (no error left behind, no
// context on a device that was not asked for), and the memory plan end to end (--max-memory
// on the card, a basis too big for the card refused before any work).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../../kernels/cuda_util.hpp"
#include "../cli_test_util.hpp"
#include "gpu_test_util.hpp"
#include "hspec/backends/cuda/cuda_backend.hpp"
#include "hspec/formats/safetensors.hpp"
#include "hspec/mlp/workloads.hpp"

namespace hspec {
namespace {

TEST(CudaDeviceGuard, LeavesNoErrorBehind) {
  HSPEC_REQUIRE_DEVICE();
  const Model m = gputest::test_mlp({4, 6, 3}, Activation::Tanh, 1);
  const Dataset ds = gputest::test_data(m, Loss::CE, 20, 2);
  {
    gputest::CudaMlpOptions opt;
    opt.base.loss = Loss::CE;
    auto op = gputest::cuda_mlp_operator<float>(m, ds, opt);
    auto space = make_cuda_space<float>(0);
    Matrix<float> x = space->allocate(op->dim(), 1);
  }
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

TEST(CudaDeviceGuard, UsingTheLastDeviceLeavesDeviceZeroAlone) {
  HSPEC_REQUIRE_DEVICE();
  const int count = cuda_device_count();
  if (count < 2) GTEST_SKIP() << "needs two devices";
  if (cuda::primary_context_active(0)) GTEST_SKIP() << "device 0 is already in use here";
  const Model m = gputest::test_mlp({4, 6, 3}, Activation::Tanh, 1);
  const Dataset ds = gputest::test_data(m, Loss::CE, 20, 2);
  gputest::CudaMlpOptions opt;
  opt.base.loss = Loss::CE;
  opt.device = count - 1;
  { auto op = gputest::cuda_mlp_operator<float>(m, ds, opt); }
  EXPECT_TRUE(cuda::primary_context_active(count - 1));
  EXPECT_FALSE(cuda::primary_context_active(0));
}

std::string tmp(const std::string& name) {
  return testutil::scratch("gpu_", name);
}

std::string write_problem(const std::string& tag, const std::vector<int64_t>& sizes,
                          int64_t samples) {
  const std::string model = tmp(tag + "_model.safetensors"), data = tmp(tag + "_data.safetensors");
  const Dataset ds = teacher_dataset(random_mlp(sizes, Activation::Tanh, 11), samples, 12);
  save_model(model, random_mlp(sizes, Activation::Tanh, 13), Loss::CE);
  write_safetensors(data, {make_tensor("inputs", {ds.n, ds.d}, ds.inputs),
                           make_tensor("labels", {ds.n}, ds.labels)});
  return "--model " + model + " --data " + data;
}

TEST(CudaMemoryPlan, BasisBeyondTheCardIsRefusedBeforeAnyWork) {
  HSPEC_REQUIRE_DEVICE();
  // 669,706 parameters x 60,000 basis columns in fp64 is 321 GB: more than any card holds,
  // but within the --max-memory given, so only the device check can refuse it.
  const std::string files = write_problem("huge", {784, 512, 512, 10}, 64);
  const testutil::CliResult r = testutil::run_cli(
      "analyze " + files + " --device cuda --precision fp64 --max-basis 30000 --max-memory 2000G",
      tmp("huge.stderr"));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("of device memory"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("free on cuda:0"), std::string::npos) << r.err;
}

TEST(CudaMemoryPlan, TightMaxMemoryReachesTheOperatorAndKeepsTheValues) {
  HSPEC_REQUIRE_DEVICE();
  const std::string files = write_problem("tight", {20, 24, 5}, 600);
  const std::string args =
      "analyze " + files + " --precision fp64 --top 3 --bottom 1 --tol 1e-12 --json -";
  const testutil::CliResult cpu = testutil::run_cli(args + " --device cpu", tmp("tc.stderr"));
  // About 0.5 MiB of basis and data; the rest of 1 MiB forces chunks of samples on the card.
  const testutil::CliResult gpu =
      testutil::run_cli(args + " --device cuda --max-memory 1M", tmp("tg.stderr"));
  ASSERT_EQ(cpu.code, 0) << cpu.err;
  ASSERT_EQ(gpu.code, 0) << gpu.err;
  const auto a = nlohmann::json::parse(cpu.out), b = nlohmann::json::parse(gpu.out);
  EXPECT_EQ(b["backend"], "cuda");
  const double scale = std::fabs(a["top"][0]["value"].get<double>());
  for (const char* end : {"top", "bottom"}) {
    ASSERT_EQ(a[end].size(), b[end].size());
    for (size_t i = 0; i < a[end].size(); ++i)
      EXPECT_NEAR(a[end][i]["value"].get<double>(), b[end][i]["value"].get<double>(),
                  1e-10 * scale);
  }
  const testutil::CliResult tiny =
      testutil::run_cli(args + " --device cuda --max-memory 20K", tmp("tt.stderr"));
  EXPECT_EQ(tiny.code, 2) << tiny.err;
  EXPECT_NE(tiny.err.find("--max-memory"), std::string::npos) << tiny.err;
}

}  // namespace
}  // namespace hspec
