// The device probe seen from the command line: without a usable CUDA device, `--device cuda`
// is a usage error that carries the runtime's reason (a driver too old for the runtime must
// not read as "0 devices"), and `--device auto` says in the report why it ran on the CPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_test_util.hpp"
#include "hspec/device.hpp"
#include "hspec/formats/safetensors.hpp"
#include "hspec/mlp/workloads.hpp"

namespace hspec {
namespace {

std::string tmp(const std::string& name) {
  return testutil::scratch("probe_", name);
}

std::string write_problem() {
  const std::string model = tmp("model.safetensors"), data = tmp("data.safetensors");
  const Dataset ds = teacher_dataset(random_mlp({5, 4, 3}, Activation::Tanh, 1), 24, 2);
  save_model(model, random_mlp({5, 4, 3}, Activation::Tanh, 3), Loss::CE);
  write_safetensors(data, {make_tensor("inputs", {ds.n, ds.d}, ds.inputs),
                           make_tensor("labels", {ds.n}, ds.labels)});
  return "--model " + model + " --data " + data + " --top 2 --bottom 1";
}

TEST(DeviceProbe, ReasonIsGivenExactlyWhenThereIsNoDevice) {
  EXPECT_EQ(cuda_probe_reason().empty(), cuda_device_count() > 0) << cuda_probe_reason();
}

TEST(DeviceProbe, CudaWithoutADeviceIsAUsageErrorCarryingTheRuntimeReason) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present (tests/gpu covers it)";
  const testutil::CliResult r =
      testutil::run_cli("analyze " + write_problem() + " --device cuda", tmp("cuda.stderr"));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  if (!built_with_cuda()) {
    EXPECT_NE(r.err.find("built without CUDA"), std::string::npos) << r.err;
    return;
  }
  // The runtime's own words: its error name (e.g. cudaErrorInsufficientDriver when the driver
  // is missing or too old, cudaErrorNoDevice) or that it sees no device.
  EXPECT_NE(r.err.find("no usable CUDA device"), std::string::npos) << r.err;
  EXPECT_TRUE(r.err.find("cudaError") != std::string::npos ||
              r.err.find("no CUDA device is visible") != std::string::npos)
      << r.err;
  const testutil::CliResult r1 =
      testutil::run_cli("analyze " + write_problem() + " --device cuda:1", tmp("cuda1.stderr"));
  EXPECT_EQ(r1.code, 2) << r1.err;
  EXPECT_NE(r1.err.find("no usable CUDA device ("), std::string::npos) << r1.err;
}

TEST(DeviceProbe, AutoFallbackToTheCpuSaysWhyInTheReport) {
  const testutil::CliResult r = testutil::run_cli(
      "analyze " + write_problem() + " --device auto --json -", tmp("auto.stderr"));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const std::string device = j["device"].get<std::string>();
  if (cuda_device_count() > 0) {
    EXPECT_EQ(j["backend"], "cuda");
  } else if (built_with_cuda()) {
    EXPECT_EQ(j["backend"], "cpu");
    EXPECT_EQ(device.rfind("cpu (CUDA unavailable: ", 0), 0u) << device;
    EXPECT_TRUE(device.find("cudaError") != std::string::npos ||
                device.find("no CUDA device is visible") != std::string::npos)
        << device;
  } else {
    EXPECT_EQ(device, "cpu");  // nothing to explain: CUDA was not built in
  }
}

}  // namespace
}  // namespace hspec
