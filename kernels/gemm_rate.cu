// cuda_gemm_tflops: the card's measured cuBLAS GEMM rate (sgemm, TF32 tensor-core sgemm or
// dgemm), the yardstick the benchmark divides its product rates by.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "cublas_ops.hpp"
#include "cuda_util.hpp"
#include "hspec/backends/cuda/cuda_backend.hpp"

namespace hspec {
namespace {

// Median milliseconds of an n x n x n GEMM of T on `handle`, timed with CUDA events.
template <class T>
double median_gemm_ms(cublasHandle_t handle, cudaStream_t stream, int64_t n) {
  const std::vector<T> ones(static_cast<size_t>(n * n), T(1));
  cuda::DeviceBuffer<T> a = cuda::upload(ones, stream);
  cuda::DeviceBuffer<T> b = cuda::upload(ones, stream);
  cuda::DeviceBuffer<T> c(n * n);
  cuda::Event start, stop;
  std::vector<double> ms;
  for (int rep = 0; rep < 12; ++rep) {
    CUDA_CHECK_THROW(cudaEventRecord(start.get(), stream));
    cuda::gemm<T>(handle, 'N', 'N', n, n, n, T(1), a.get(), n, b.get(), n, T(0), c.get(), n);
    CUDA_CHECK_THROW(cudaEventRecord(stop.get(), stream));
    CUDA_CHECK_THROW(cudaEventSynchronize(stop.get()));
    float t = 0;
    CUDA_CHECK_THROW(cudaEventElapsedTime(&t, start.get(), stop.get()));
    if (rep >= 2) ms.push_back(t);  // the first runs warm up cuBLAS's kernel selection
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

double cuda_gemm_tflops(int device, GemmPrecision precision, int64_t n) {
  if (n < 1 || n > 32768) throw Error("cuda_gemm_tflops: size must be in [1, 32768]");
  cuda::require_device(device);
  cuda::DeviceGuard guard(device);
  cuda::Stream stream;
  cuda::CublasHandle handle(stream.get());
  CUBLAS_CHECK_THROW(cublasSetMathMode(handle.get(), precision == GemmPrecision::TF32
                                                         ? CUBLAS_TF32_TENSOR_OP_MATH
                                                         : CUBLAS_PEDANTIC_MATH));
  const double ms = precision == GemmPrecision::FP64
                        ? median_gemm_ms<double>(handle.get(), stream.get(), n)
                        : median_gemm_ms<float>(handle.get(), stream.get(), n);
  return 2.0 * static_cast<double>(n) * n * n / (ms * 1e-3) / 1e12;
}

}  // namespace hspec
