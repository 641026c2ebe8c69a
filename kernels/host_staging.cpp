// Host staging of device blocks for data-parallel reductions: pinned host memory and
// strided copies (cudaMemcpy2D on the legacy default stream, so ordered after the operator's
// blocking stream and complete on return).
#include <cuda_runtime.h>

#include "cuda_util.hpp"
#include "hspec/backends/cuda/cuda_backend.hpp"

namespace hspec {

void* cuda_pinned_alloc(uint64_t bytes) {
  void* p = nullptr;
  CUDA_CHECK_THROW(cudaMallocHost(&p, bytes > 0 ? bytes : 1));
  return p;
}

void cuda_pinned_free(void* p) noexcept {
  if (p != nullptr) cudaFreeHost(p);
}

template <class T>
void cuda_block_to_host(int device, BlockView<const T> X, T* host) {
  cuda::DeviceGuard guard(device);
  CUDA_CHECK_THROW(cudaMemcpy2D(host, sizeof(T) * size_t(X.rows), X.data, sizeof(T) * size_t(X.ld),
                                sizeof(T) * size_t(X.rows), size_t(X.cols),
                                cudaMemcpyDeviceToHost));
}

template <class T>
void cuda_block_from_host(int device, const T* host, BlockView<T> Y) {
  cuda::DeviceGuard guard(device);
  CUDA_CHECK_THROW(cudaMemcpy2D(Y.data, sizeof(T) * size_t(Y.ld), host, sizeof(T) * size_t(Y.rows),
                                sizeof(T) * size_t(Y.rows), size_t(Y.cols),
                                cudaMemcpyHostToDevice));
}

template void cuda_block_to_host<float>(int, BlockView<const float>, float*);
template void cuda_block_to_host<double>(int, BlockView<const double>, double*);
template void cuda_block_from_host<float>(int, const float*, BlockView<float>);
template void cuda_block_from_host<double>(int, const double*, BlockView<double>);

}  // namespace hspec
