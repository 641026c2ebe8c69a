// Typed, checked cuBLAS calls (float/double, 64-bit sizes) for kernels/.
// GEMM, strided-batched GEMM and norms; column-major, as the reference BLAS.
#pragma once
#include <cublas_v2.h>

#include <cstdint>
#include <type_traits>

#include "hspec/backends/cuda/cuda_check.hpp"

namespace hspec::cuda {

inline cublasOperation_t op_of(char t) {
  return t == 'T' ? CUBLAS_OP_T : CUBLAS_OP_N;
}

// C (m x n) = alpha op(A) op(B) + beta C.
template <class T>
void gemm(cublasHandle_t h, char ta, char tb, int64_t m, int64_t n, int64_t k, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if constexpr (std::is_same_v<T, double>) {
    CUBLAS_CHECK_THROW(
        cublasDgemm_64(h, op_of(ta), op_of(tb), m, n, k, &alpha, A, lda, B, ldb, &beta, C, ldc));
  } else {
    static_assert(std::is_same_v<T, float>, "gemm: float or double");
    CUBLAS_CHECK_THROW(
        cublasSgemm_64(h, op_of(ta), op_of(tb), m, n, k, &alpha, A, lda, B, ldb, &beta, C, ldc));
  }
}

// For i in [0, batch): C_i = alpha op(A_i) op(B_i) + beta C_i with X_i = X + i * strideX.
// A stride of 0 shares one operand across the batch.
template <class T>
void gemm_batched(cublasHandle_t h, char ta, char tb, int64_t m, int64_t n, int64_t k, T alpha,
                  const T* A, int64_t lda, int64_t strideA, const T* B, int64_t ldb,
                  int64_t strideB, T beta, T* C, int64_t ldc, int64_t strideC, int64_t batch) {
  if (m <= 0 || n <= 0 || batch <= 0) return;
  if constexpr (std::is_same_v<T, double>) {
    CUBLAS_CHECK_THROW(cublasDgemmStridedBatched_64(h, op_of(ta), op_of(tb), m, n, k, &alpha, A,
                                                    lda, strideA, B, ldb, strideB, &beta, C, ldc,
                                                    strideC, batch));
  } else {
    static_assert(std::is_same_v<T, float>, "gemm_batched: float or double");
    CUBLAS_CHECK_THROW(cublasSgemmStridedBatched_64(h, op_of(ta), op_of(tb), m, n, k, &alpha, A,
                                                    lda, strideA, B, ldb, strideB, &beta, C, ldc,
                                                    strideC, batch));
  }
}

// Switches a handle to device pointer mode (scalar results written to device memory) for its
// lifetime; back to host pointer mode afterwards.
class DevicePointerMode {
 public:
  explicit DevicePointerMode(cublasHandle_t h) : h_(h) {
    CUBLAS_CHECK_THROW(cublasSetPointerMode(h_, CUBLAS_POINTER_MODE_DEVICE));
  }
  ~DevicePointerMode() { cublasSetPointerMode(h_, CUBLAS_POINTER_MODE_HOST); }
  DevicePointerMode(const DevicePointerMode&) = delete;
  DevicePointerMode& operator=(const DevicePointerMode&) = delete;

 private:
  cublasHandle_t h_;
};

// result = ||x||_2 (n elements, stride 1). `result` must match the handle's pointer mode.
template <class T>
void nrm2(cublasHandle_t h, int64_t n, const T* x, T* result) {
  if constexpr (std::is_same_v<T, double>) {
    CUBLAS_CHECK_THROW(cublasDnrm2_64(h, n, x, 1, result));
  } else {
    static_assert(std::is_same_v<T, float>, "nrm2: float or double");
    CUBLAS_CHECK_THROW(cublasSnrm2_64(h, n, x, 1, result));
  }
}

}  // namespace hspec::cuda
