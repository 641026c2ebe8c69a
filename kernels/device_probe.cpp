// The device probe of the CUDA build: counts usable devices and never throws.
// No driver, no device and any other failure all mean zero devices.
#include <cuda_runtime_api.h>

#include "hspec/device.hpp"

namespace hspec {

int cuda_device_count() {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    // cudaErrorNoDevice and cudaErrorInsufficientDriver (no driver at all) are the usual
    // ones; whatever it is, there is nothing usable. Clear it so later calls do not see it.
    cudaGetLastError();
    return 0;
  }
  return count > 0 ? count : 0;
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

}  // namespace hspec
