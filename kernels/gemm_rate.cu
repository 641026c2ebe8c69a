// cuda_gemm_tflops: the card's measured sgemm (or TF32 tensor-core) rate, the yardstick the
// benchmark divides its HVP rates by.
#include <algorithm>
#include <vector>

#include "cuda_util.hpp"
#include "hspec/cuda_backend.hpp"

namespace hspec {

double cuda_gemm_tflops(int device, bool tf32, int64_t n) {
  cuda::require_device(device);
  cuda::DeviceGuard guard(device);
  cuda::Stream stream;
  cuda::CublasHandle handle(stream.get());
  CUBLAS_CHECK_THROW(
      cublasSetMathMode(handle.get(), tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH));
  const std::vector<float> ones(static_cast<size_t>(n * n), 1.0f);
  cuda::DeviceBuffer<float> a = cuda::upload(ones, stream.get());
  cuda::DeviceBuffer<float> b = cuda::upload(ones, stream.get());
  cuda::DeviceBuffer<float> c(n * n);
  cudaEvent_t start = nullptr, stop = nullptr;
  CUDA_CHECK_THROW(cudaEventCreate(&start));
  CUDA_CHECK_THROW(cudaEventCreate(&stop));
  const int in = static_cast<int>(n);
  const float alpha = 1.0f, beta = 0.0f;
  std::vector<double> ms;
  for (int rep = 0; rep < 12; ++rep) {
    CUDA_CHECK_THROW(cudaEventRecord(start, stream.get()));
    CUBLAS_CHECK_THROW(cublasSgemm(handle.get(), CUBLAS_OP_N, CUBLAS_OP_N, in, in, in, &alpha,
                                   a.get(), in, b.get(), in, &beta, c.get(), in));
    CUDA_CHECK_THROW(cudaEventRecord(stop, stream.get()));
    CUDA_CHECK_THROW(cudaEventSynchronize(stop));
    float t = 0;
    CUDA_CHECK_THROW(cudaEventElapsedTime(&t, start, stop));
    if (rep >= 2) ms.push_back(t);  // the first runs warm up cuBLAS's kernel selection
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  const double median_s = ms[ms.size() / 2] * 1e-3;
  return 2.0 * static_cast<double>(n) * n * n / median_s / 1e12;
}

}  // namespace hspec
