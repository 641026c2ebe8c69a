// The device probe of a build without the CUDA backend: there are never any devices.
#include "hspec/device.hpp"

namespace hspec {

int cuda_device_count() { return 0; }
bool built_with_cuda() { return false; }
std::string cuda_device_name(int) { return ""; }

}  // namespace hspec
