// CudaCompute, part 1: the object (device, stream, cuBLAS handle), memory through the
// Buffer/alloc_bytes seam (cudaMalloc with a deleter), transfers, fills, axpy, strided 2-D
// copies, the finiteness check, strided-batched GEMMs (cuBLAS, row-major by the
// transposition trick) and the axis swap. CPU reference: host/backends/cpu/cpu_compute.cpp.
#include <cmath>
#include <new>

#include "../cublas_ops.hpp"
#include "cuda_compute.hpp"
#include "hspec/backends/cuda/cuda_compute.hpp"

namespace hspec::cuda {
namespace {

template <class T>
__global__ void fill_kernel(T* x, int64_t n, T value) {
  HSPEC_GRID_LOOP(i, n) x[i] = value;
}

template <class T>
__global__ void axpy_kernel(int64_t n, T alpha, const T* x, T* y, bool accumulate) {
  HSPEC_GRID_LOOP(i, n) y[i] = accumulate ? y[i] + alpha * x[i] : alpha * x[i];
}

// Column j of the rows x cols block: dst[j ld_dst + i] (+)= src[j ld_src + i].
template <class T>
__global__ void copy_2d_kernel(const T* src, int64_t ld_src, T* dst, int64_t ld_dst, int64_t rows,
                               int64_t cols, bool accumulate) {
  HSPEC_GRID_LOOP(e, rows * cols) {
    const int64_t j = e / rows, i = e - j * rows;
    const T v = src[j * ld_src + i];
    T& d = dst[j * ld_dst + i];
    d = accumulate ? d + v : v;
  }
}

// *bad = 1 when some x[i] is NaN or Inf. Every writer writes the same value, so no atomics.
template <class T>
__global__ void nonfinite_kernel(const T* x, int64_t n, int* bad) {
  HSPEC_GRID_LOOP(i, n) if (!isfinite(x[i]))* bad = 1;
}

// [a, b, c, d] -> [a, c, b, d]; one thread per destination element.
template <class T>
__global__ void swap_axes12_kernel(const T* src, T* dst, int64_t a, int64_t b, int64_t c, int64_t d,
                                   bool accumulate) {
  HSPEC_GRID_LOOP(e, a * b * c * d) {
    int64_t r = e;
    const int64_t ie = r % d;
    r /= d;
    const int64_t j = r % b;  // destination axes: i, l, j, ie
    r /= b;
    const int64_t l = r % c;
    const int64_t i = r / c;
    const T v = src[((i * b + j) * c + l) * d + ie];
    dst[e] = accumulate ? dst[e] + v : v;
  }
}

}  // namespace

template <class T>
CudaCompute<T>::CudaCompute(int device, bool tf32) : device_(device) {
  require_device(device_);
  DeviceGuard guard(device_);
  stream_ = std::make_unique<Stream>();
  blas_ = std::make_unique<CublasHandle>(stream_->get());
  if (std::is_same_v<T, float> && tf32)
    CUBLAS_CHECK_THROW(cublasSetMathMode(blas_->get(), CUBLAS_TF32_TENSOR_OP_MATH));
  flags_.reserve(1);
}

template <class T>
CudaCompute<T>::~CudaCompute() {
  // The handle, the stream and the scratch are released with the device current.
  DeviceGuard guard(device_, std::nothrow);
  sample_loss_ = DeviceBuffer<double>();
  flags_ = DeviceBuffer<int>();
  blas_.reset();
  stream_.reset();
}

template <class T>
std::shared_ptr<void> CudaCompute<T>::alloc_bytes(size_t bytes) {
  DeviceGuard guard(device_);
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes > 0 ? bytes : 1);
  if (e != cudaSuccess) {
    cudaGetLastError();  // out-of-memory is not sticky; clear it
    throw DeviceError("cudaMalloc of " + std::to_string(bytes >> 20) + " MiB on cuda:" +
                      std::to_string(device_) + " failed: " + detail::cuda_error_text(e));
  }
  const int device = device_;
  return std::shared_ptr<void>(p, [device](void* q) {
    DeviceGuard g(device, std::nothrow);
    best_effort(cudaFree(q));
  });
}

// Uploads wait for the copy: the callers' host vectors are often temporaries.
template <class T>
void CudaCompute<T>::upload(const T* host, T* dev, int64_t n) {
  if (n <= 0) return;
  DeviceGuard guard(device_);
  CUDA_CHECK_THROW(
      cudaMemcpyAsync(dev, host, sizeof(T) * size_t(n), cudaMemcpyHostToDevice, stream()));
  stream_->sync();
}

template <class T>
void CudaCompute<T>::upload_index(const int64_t* host, int64_t* dev, int64_t n) {
  if (n <= 0) return;
  DeviceGuard guard(device_);
  CUDA_CHECK_THROW(
      cudaMemcpyAsync(dev, host, sizeof(int64_t) * size_t(n), cudaMemcpyHostToDevice, stream()));
  stream_->sync();
}

template <class T>
void CudaCompute<T>::download(const T* dev, T* host, int64_t n) {
  if (n <= 0) return;
  DeviceGuard guard(device_);
  CUDA_CHECK_THROW(
      cudaMemcpyAsync(host, dev, sizeof(T) * size_t(n), cudaMemcpyDeviceToHost, stream()));
  stream_->sync();
}

template <class T>
void CudaCompute<T>::fill(T* x, int64_t n, T value) {
  if (n <= 0) return;
  DeviceGuard guard(device_);
  fill_kernel<<<grid_for(n, kGraphThreads), kGraphThreads, 0, stream()>>>(x, n, value);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void CudaCompute<T>::axpy(int64_t n, T alpha, const T* x, T* y, bool accumulate) {
  if (n <= 0) return;
  DeviceGuard guard(device_);
  axpy_kernel<<<grid_for(n, kGraphThreads), kGraphThreads, 0, stream()>>>(n, alpha, x, y,
                                                                          accumulate);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void CudaCompute<T>::copy_2d(const T* src, int64_t ld_src, T* dst, int64_t ld_dst, int64_t rows,
                             int64_t cols, bool accumulate) {
  if (rows <= 0 || cols <= 0) return;
  DeviceGuard guard(device_);
  copy_2d_kernel<<<grid_for(rows * cols, kGraphThreads), kGraphThreads, 0, stream()>>>(
      src, ld_src, dst, ld_dst, rows, cols, accumulate);
  CUDA_CHECK_LAUNCH();
}

template <class T>
bool CudaCompute<T>::all_finite(const T* x, int64_t n) {
  if (n <= 0) return true;
  DeviceGuard guard(device_);
  CUDA_CHECK_THROW(cudaMemsetAsync(flags_.get(), 0, sizeof(int), stream()));
  nonfinite_kernel<<<grid_for(n, kGraphThreads), kGraphThreads, 0, stream()>>>(x, n, flags_.get());
  CUDA_CHECK_LAUNCH();
  int bad = 0;
  CUDA_CHECK_THROW(
      cudaMemcpyAsync(&bad, flags_.get(), sizeof(int), cudaMemcpyDeviceToHost, stream()));
  stream_->sync();
  return bad == 0;
}

template <class T>
void CudaCompute<T>::gemm_batched(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha,
                                  const T* A, int64_t lda, int64_t sa, const T* B, int64_t ldb,
                                  int64_t sb, T beta, T* C, int64_t ldc, int64_t sc,
                                  int64_t batch) {
  if (m <= 0 || n <= 0 || batch <= 0) return;
  DeviceGuard guard(device_);
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T on the same arrays.
  cuda::gemm_batched<T>(blas_->get(), tb ? 'T' : 'N', ta ? 'T' : 'N', n, m, k, alpha, B,
                        std::max<int64_t>(ldb, 1), sb, A, std::max<int64_t>(lda, 1), sa, beta, C,
                        std::max<int64_t>(ldc, 1), sc, batch);
}

template <class T>
void CudaCompute<T>::swap_axes12(const T* src, T* dst, int64_t a, int64_t b, int64_t c, int64_t d,
                                 bool accumulate) {
  const int64_t total = a * b * c * d;
  if (total <= 0) return;
  DeviceGuard guard(device_);
  swap_axes12_kernel<<<grid_for(total, kGraphThreads), kGraphThreads, 0, stream()>>>(
      src, dst, a, b, c, d, accumulate);
  CUDA_CHECK_LAUNCH();
}

template class CudaCompute<float>;
template class CudaCompute<double>;

}  // namespace hspec::cuda

namespace hspec {

template <class T>
std::unique_ptr<Compute<T>> make_cuda_compute(int device, bool tf32) {
  return std::make_unique<cuda::CudaCompute<T>>(device, tf32);
}
template std::unique_ptr<Compute<float>> make_cuda_compute<float>(int, bool);
template std::unique_ptr<Compute<double>> make_cuda_compute<double>(int, bool);

}  // namespace hspec
