// Device probe: how many CUDA devices this process can use, and why none when there are none.
// 0 when hspec was built without CUDA, when there is no driver (or one too old for the
// runtime), or when there is no device; the probe never throws for those.
#pragma once
#include <cstdint>
#include <string>

namespace hspec {

int cuda_device_count();
bool built_with_cuda();
std::string cuda_device_name(int index);  // "" when unavailable

// Why cuda_device_count() is 0, for messages: the runtime's own error when it refused
// (e.g. "cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime
// version"), "no CUDA device is visible", or "hspec was built without CUDA"; "" when there
// are devices.
std::string cuda_probe_reason();

// Free bytes on CUDA device `index` now (cudaMemGetInfo; the device becomes current).
// DeviceError when the device cannot be asked; Error in a build without CUDA.
uint64_t cuda_free_memory(int index);

}  // namespace hspec
