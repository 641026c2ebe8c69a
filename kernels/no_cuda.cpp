// A build without the CUDA backend: the probe finds no devices, the factories refuse.
#include "hspec/device.hpp"

namespace hspec {

int cuda_device_count() {
  return 0;
}
bool built_with_cuda() {
  return false;
}
std::string cuda_device_name(int) {
  return "";
}
std::string cuda_probe_reason() {
  return "hspec was built without CUDA";
}

}  // namespace hspec

#include "hspec/backends/cuda/cuda_backend.hpp"
#include "hspec/backends/cuda/cuda_compute.hpp"
#include "hspec/error.hpp"

namespace hspec {

template <class T>
std::unique_ptr<VectorSpace<T>> make_cuda_space(int) {
  throw Error("hspec was built without CUDA (rebuild with -DHSPEC_CUDA=ON)");
}

template std::unique_ptr<VectorSpace<float>> make_cuda_space<float>(int);
template std::unique_ptr<VectorSpace<double>> make_cuda_space<double>(int);

}  // namespace hspec

namespace hspec {

double cuda_gemm_tflops(int, GemmPrecision, int64_t) {
  throw Error("hspec was built without CUDA (rebuild with -DHSPEC_CUDA=ON)");
}

uint64_t cuda_free_memory(int) {
  throw Error("hspec was built without CUDA (rebuild with -DHSPEC_CUDA=ON)");
}

void cuda_symmetric_eigensolve(int, int64_t, double*, int64_t, double*) {
  throw Error("hspec was built without CUDA (rebuild with -DHSPEC_CUDA=ON)");
}

}  // namespace hspec

namespace hspec {

template <class T>
std::unique_ptr<Compute<T>> make_cuda_compute(int, bool) {
  throw DeviceError(
      "the graph engine's CUDA backend is not in this build: hspec was built without CUDA "
      "(rebuild with -DHSPEC_CUDA=ON)");
}
template std::unique_ptr<Compute<float>> make_cuda_compute<float>(int, bool);
template std::unique_ptr<Compute<double>> make_cuda_compute<double>(int, bool);
void* cuda_pinned_alloc(uint64_t) {
  throw Error("hspec was built without CUDA (rebuild with -DHSPEC_CUDA=ON)");
}
void cuda_pinned_free(void*) noexcept {}
template <class T>
void cuda_block_to_host(int, BlockView<const T>, T*) {
  throw Error("hspec was built without CUDA (rebuild with -DHSPEC_CUDA=ON)");
}
template <class T>
void cuda_block_from_host(int, const T*, BlockView<T>) {
  throw Error("hspec was built without CUDA (rebuild with -DHSPEC_CUDA=ON)");
}
template void cuda_block_to_host<float>(int, BlockView<const float>, float*);
template void cuda_block_to_host<double>(int, BlockView<const double>, double*);
template void cuda_block_from_host<float>(int, const float*, BlockView<float>);
template void cuda_block_from_host<double>(int, const double*, BlockView<double>);

}  // namespace hspec
