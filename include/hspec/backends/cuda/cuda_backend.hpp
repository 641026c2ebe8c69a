// Entry points of the CUDA backend. Declared in every build; a build without CUDA defines
// them to throw Error("hspec was built without CUDA"), so callers need no #ifdefs.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "hspec/operator.hpp"
#include "hspec/space.hpp"

namespace hspec {

// The device vector space (kernels/cuda_space.cu). Curvature products on a card come from
// the graph operator on the CUDA compute backend (cuda_compute.hpp), for MLPs too.
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
