// Thin typed wrappers over the Fortran BLAS/LAPACK symbols. We declare the prototypes
// ourselves so any BLAS works (OpenBLAS, the reference BLAS) without cblas.h or lapacke.h.
#pragma once
#include <cstddef>
#include <cstdint>

namespace hspec::blas {

// C = alpha op(A) op(B) + beta C, column-major; trans is 'N' or 'T'.
void gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

// y = alpha op(A) x + beta y for A: m x n column-major, trans 'N' or 'T' (unit strides).
// One column of a GEMM runs several times faster here: the GEMM drivers pack panels of A
// and walk C in tiles, which a single column never repays.
void gemv(char ta, int64_t m, int64_t n, float alpha, const float* A, int64_t lda, const float* x,
          float beta, float* y);
void gemv(char ta, int64_t m, int64_t n, double alpha, const double* A, int64_t lda,
          const double* x, double beta, double* y);

// Eigen-decomposition of a dense symmetric n x n matrix (column-major, lower triangle read):
// w ascending, A overwritten by the orthonormal eigenvectors. Throws NumericalError when
// LAPACK reports a failure.
void syev(int64_t n, double* A, int64_t lda, double* w);

}  // namespace hspec::blas
