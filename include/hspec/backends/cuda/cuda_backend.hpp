// Entry points of the CUDA backend. Declared in every build; a build without CUDA defines
// them to throw Error("hspec was built without CUDA"), so callers need no #ifdefs.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "hspec/mlp/cpu_hvp.hpp"
#include "hspec/operator.hpp"
#include "hspec/space.hpp"

namespace hspec {

struct CudaOperatorOptions {
  CpuOperatorOptions base;  // curvature, loss, max_block, chunk
  int device = 0;           // CUDA device index
  bool tf32 = false;        // fp32 GEMMs on TF32 tensor cores (T = float only)
  uint64_t max_memory = 0;  // device bytes to use; 0 = from cudaMemGetInfo
};

// The curvature operator on a CUDA device, with its results (loss, gradient) like the CPU one.
template <class T>
class CudaCurvature : public CurvatureOperator<T> {
 public:
  virtual double loss_value() const = 0;
  virtual double grad_norm() const = 0;
  // The gradient at the checkpoint (flat parameter order), on the host.
  virtual const std::vector<double>& gradient() const = 0;
};

// Checks the data against the model (InputError, as the CPU operator) on the host, then
// builds the operator on the device (host/backends/cuda/cuda_operator.cpp).
template <class T>
std::unique_ptr<CudaCurvature<T>> make_cuda_operator(const Model& model, const Dataset& data,
                                                     const CudaOperatorOptions& opt);

namespace detail {
// The device part of make_cuda_operator (kernels/cuda_hvp.cu), for inputs already checked:
// kernels/ calls nothing of the host library, so the two link one way only.
template <class T>
std::unique_ptr<CudaCurvature<T>> make_checked_cuda_operator(const Model& model,
                                                             const Dataset& data,
                                                             const CudaOperatorOptions& opt);
}  // namespace detail

template <class T>
std::unique_ptr<VectorSpace<T>> make_cuda_space(int device);

}  // namespace hspec

namespace hspec {

enum class GemmPrecision { FP32, TF32, FP64 };

// The card's measured GEMM rate in TFLOP/s: n x n x n cuBLAS sgemm (TF32: on TF32 tensor
// cores; FP64: dgemm), median of several runs timed with CUDA events, for benchmarks to
// compare against.
double cuda_gemm_tflops(int device, GemmPrecision precision, int64_t n);

// Exact mode's eigensolver on the device: on entry the n x n symmetric matrix a (host,
// column-major, leading dimension lda; its lower triangle is read), on exit its orthonormal
// eigenvectors in the same place, with the eigenvalues ascending in w (host, n). cuSOLVER
// syevd in double; UsageError when its workspace does not fit the free device memory.
void cuda_symmetric_eigensolve(int device, int64_t n, double* a, int64_t lda, double* w);

}  // namespace hspec

namespace hspec {

// Host staging of device blocks for the reductions of a data-parallel run
// (host/distributed/): page-locked host memory, and copies between a device block (any
// leading dimension) and a packed rows x cols host buffer, synchronous.
void* cuda_pinned_alloc(uint64_t bytes);
void cuda_pinned_free(void* p) noexcept;
template <class T>
void cuda_block_to_host(int device, BlockView<const T> X, T* host);
template <class T>
void cuda_block_from_host(int device, const T* host, BlockView<T> Y);

}  // namespace hspec
