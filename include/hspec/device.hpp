// Device probe: how many CUDA devices this process can use. 0 when hspec was built without
// CUDA, when there is no driver, or when there is no device; never throws for those.
#pragma once
#include <string>

namespace hspec {

int cuda_device_count();
bool built_with_cuda();
std::string cuda_device_name(int index);  // "" when unavailable

}  // namespace hspec
