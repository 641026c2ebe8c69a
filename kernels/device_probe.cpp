// The device probe of the CUDA build: counts usable devices and never throws; when there is
// none it keeps the runtime's reason, so "no GPU" and "driver too old" read differently.
#include <cuda_runtime_api.h>

#include "cuda_util.hpp"
#include "hspec/device.hpp"

namespace hspec {
namespace {

struct Probe {
  int count = 0;
  std::string reason;
};

Probe probe() {
  Probe p;
  const cudaError_t e = cudaGetDeviceCount(&p.count);
  if (e != cudaSuccess) {
    // Clear it so later calls do not see it; keep it for the message.
    cudaGetLastError();
    p.count = 0;
    p.reason = "cudaGetDeviceCount failed: " + detail::cuda_error_text(e);
  } else if (p.count <= 0) {
    p.count = 0;
    p.reason = "no CUDA device is visible";
  }
  return p;
}

}  // namespace

int cuda_device_count() {
  return probe().count;
}

std::string cuda_probe_reason() {
  return probe().reason;
}

bool built_with_cuda() {
  return true;
}

std::string cuda_device_name(int index) {
  if (index < 0 || index >= cuda_device_count()) return "";
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return prop.name;
}

uint64_t cuda_free_memory(int index) {
  cuda::require_device(index);
  cuda::DeviceGuard guard(index);
  size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK_THROW(cudaMemGetInfo(&free_bytes, &total_bytes));
  return static_cast<uint64_t>(free_bytes);
}

}  // namespace hspec
