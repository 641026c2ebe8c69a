// cuda_symmetric_eigensolve: exact mode's dense symmetric eigenproblem on the device, with
// cuSOLVER's 64-bit divide-and-conquer syevd (eigenvalues and eigenvectors) in double.
#include <cusolverDn.h>

#include <string>
#include <vector>

#include "cuda_util.hpp"
#include "hspec/backends/cuda/cuda_backend.hpp"

namespace hspec {
namespace {

// A cuSOLVER dense handle bound to a stream.
class SolverHandle {
 public:
  explicit SolverHandle(cudaStream_t stream) {
    CUSOLVER_CHECK_THROW(cusolverDnCreate(&h_));
    const cusolverStatus_t st = cusolverDnSetStream(h_, stream);
    if (st != CUSOLVER_STATUS_SUCCESS) {
      cusolverDnDestroy(h_);
      CUSOLVER_CHECK_THROW(st);
    }
  }
  ~SolverHandle() {
    if (h_) cusolverDnDestroy(h_);
  }
  SolverHandle(const SolverHandle&) = delete;
  SolverHandle& operator=(const SolverHandle&) = delete;
  cusolverDnHandle_t get() const { return h_; }

 private:
  cusolverDnHandle_t h_ = nullptr;
};

// The options object of cuSOLVER's 64-bit API (default algorithms).
class SolverParams {
 public:
  SolverParams() { CUSOLVER_CHECK_THROW(cusolverDnCreateParams(&p_)); }
  ~SolverParams() {
    if (p_) cusolverDnDestroyParams(p_);
  }
  SolverParams(const SolverParams&) = delete;
  SolverParams& operator=(const SolverParams&) = delete;
  cusolverDnParams_t get() const { return p_; }

 private:
  cusolverDnParams_t p_ = nullptr;
};

}  // namespace

void cuda_symmetric_eigensolve(int device, int64_t n, double* a, int64_t lda, double* w) {
  if (n <= 0) return;
  if (lda < n) throw Error("cuda_symmetric_eigensolve: leading dimension below n");
  cuda::require_device(device);
  cuda::DeviceGuard guard(device);
  cuda::Stream stream;
  SolverHandle handle(stream.get());
  SolverParams params;
  const cusolverEigMode_t jobz = CUSOLVER_EIG_MODE_VECTOR;
  const cublasFillMode_t uplo = CUBLAS_FILL_MODE_LOWER;

  cuda::DeviceBuffer<double> da(n * n), dw(n);
  cuda::DeviceBuffer<int> dinfo(1);
  size_t device_bytes = 0, host_bytes = 0;
  CUSOLVER_CHECK_THROW(cusolverDnXsyevd_bufferSize(handle.get(), params.get(), jobz, uplo, n,
                                                   CUDA_R_64F, da.get(), n, CUDA_R_64F, dw.get(),
                                                   CUDA_R_64F, &device_bytes, &host_bytes));
  // The matrix and the workspace must fit together; say so plainly rather than as a failed
  // cudaMalloc deep inside.
  size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK_THROW(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (device_bytes > free_bytes) {
    throw UsageError("exact mode on the device: cuSOLVER syevd needs " +
                     std::to_string(device_bytes >> 20) + " MiB of workspace for " +
                     std::to_string(n) + " parameters beyond the " +
                     std::to_string((8 * n * n) >> 20) + " MiB matrix, and only " +
                     std::to_string(free_bytes >> 20) +
                     " MiB are free; use --device cpu or Lanczos instead of --exact");
  }
  cuda::DeviceBuffer<char> dwork(static_cast<int64_t>(device_bytes));
  std::vector<char> hwork(host_bytes);

  cuda::copy_2d(da.get(), n, a, lda, n, n, cudaMemcpyHostToDevice, stream.get());
  CUSOLVER_CHECK_THROW(cusolverDnXsyevd(handle.get(), params.get(), jobz, uplo, n, CUDA_R_64F,
                                        da.get(), n, CUDA_R_64F, dw.get(), CUDA_R_64F, dwork.get(),
                                        device_bytes, hwork.data(), host_bytes, dinfo.get()));
  int info = 0;
  CUDA_CHECK_THROW(
      cudaMemcpyAsync(&info, dinfo.get(), sizeof(int), cudaMemcpyDeviceToHost, stream.get()));
  CUDA_CHECK_THROW(cudaMemcpyAsync(w, dw.get(), sizeof(double) * static_cast<size_t>(n),
                                   cudaMemcpyDeviceToHost, stream.get()));
  cuda::copy_2d(a, lda, da.get(), n, n, n, cudaMemcpyDeviceToHost, stream.get());
  stream.sync();
  if (info < 0) throw Error("cusolverDnXsyevd: argument " + std::to_string(-info) + " was invalid");
  if (info > 0)
    throw NumericalError("cusolverDnXsyevd: " + std::to_string(info) +
                         " off-diagonal elements did not converge to zero");
}

}  // namespace hspec
