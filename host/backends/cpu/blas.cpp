// Fortran BLAS/LAPACK bindings (gemm, gemv, syevd) with overflow and error checks.
#include "hspec/backends/cpu/blas.hpp"

#include <climits>
#include <string>
#include <vector>

#include "hspec/error.hpp"

extern "C" {
// Fortran character arguments carry a hidden length after the explicit arguments.
void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
            const float* alpha, const float* A, const int* lda, const float* B, const int* ldb,
            const float* beta, float* C, const int* ldc, size_t, size_t);
void dgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
            const double* alpha, const double* A, const int* lda, const double* B, const int* ldb,
            const double* beta, double* C, const int* ldc, size_t, size_t);
void sgemv_(const char* ta, const int* m, const int* n, const float* alpha, const float* A,
            const int* lda, const float* x, const int* incx, const float* beta, float* y,
            const int* incy, size_t);
void dgemv_(const char* ta, const int* m, const int* n, const double* alpha, const double* A,
            const int* lda, const double* x, const int* incx, const double* beta, double* y,
            const int* incy, size_t);
void dsyevd_(const char* jobz, const char* uplo, const int* n, double* A, const int* lda, double* w,
             double* work, const int* lwork, int* iwork, const int* liwork, int* info, size_t,
             size_t);
}

namespace hspec::blas {
namespace {

int to_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) {
    throw Error(std::string("BLAS dimension ") + what + " = " + std::to_string(v) +
                " does not fit a 32-bit BLAS integer");
  }
  return static_cast<int>(v);
}

template <class T, class F>
void gemm_impl(F fn, char ta, char tb, int64_t m, int64_t n, int64_t k, T alpha, const T* A,
               int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (m == 0 || n == 0) return;
  const int im = to_int(m, "m"), in = to_int(n, "n"), ik = to_int(k, "k");
  // BLAS requires ld >= 1 even for empty operands.
  const int ila = to_int(lda < 1 ? 1 : lda, "lda"), ilb = to_int(ldb < 1 ? 1 : ldb, "ldb"),
            ilc = to_int(ldc < 1 ? 1 : ldc, "ldc");
  if (k == 0) {
    // Reference BLAS handles k = 0 as a pure scale of C; keep that explicit.
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < m; ++i) C[i + j * ldc] = beta == T(0) ? T(0) : beta * C[i + j * ldc];
    return;
  }
  fn(&ta, &tb, &im, &in, &ik, &alpha, A, &ila, B, &ilb, &beta, C, &ilc, 1, 1);
}

template <class T, class F>
void gemv_impl(F fn, char ta, int64_t m, int64_t n, T alpha, const T* A, int64_t lda, const T* x,
               T beta, T* y) {
  const int64_t ylen = ta == 'N' ? m : n;
  if (ylen == 0) return;
  const int im = to_int(m, "m"), in = to_int(n, "n"), ila = to_int(lda < 1 ? 1 : lda, "lda");
  if (m == 0 || n == 0) {  // y = beta y, as gemm's k = 0
    for (int64_t i = 0; i < ylen; ++i) y[i] = beta == T(0) ? T(0) : beta * y[i];
    return;
  }
  const int one = 1;
  fn(&ta, &im, &in, &alpha, A, &ila, x, &one, &beta, y, &one, 1);
}

}  // namespace

void gemv(char ta, int64_t m, int64_t n, float alpha, const float* A, int64_t lda, const float* x,
          float beta, float* y) {
  gemv_impl<float>(sgemv_, ta, m, n, alpha, A, lda, x, beta, y);
}

void gemv(char ta, int64_t m, int64_t n, double alpha, const double* A, int64_t lda,
          const double* x, double beta, double* y) {
  gemv_impl<double>(dgemv_, ta, m, n, alpha, A, lda, x, beta, y);
}

void gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_impl<float>(sgemm_, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  gemm_impl<double>(dgemm_, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

void syev(int64_t n, double* A, int64_t lda, double* w) {
  if (n == 0) return;
  const int in = to_int(n, "n"), ilda = to_int(lda, "lda");
  const char jobz = 'V', uplo = 'L';
  int info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  dsyevd_(&jobz, &uplo, &in, A, &ilda, w, &work_query, &lwork, &iwork_query, &liwork, &info, 1, 1);
  if (info != 0)
    throw NumericalError("LAPACK dsyevd workspace query failed, info=" + std::to_string(info));
  lwork = static_cast<int>(work_query) + 1;
  liwork = iwork_query;
  std::vector<double> work(static_cast<size_t>(lwork));
  std::vector<int> iwork(static_cast<size_t>(liwork > 0 ? liwork : 1));
  dsyevd_(&jobz, &uplo, &in, A, &ilda, w, work.data(), &lwork, iwork.data(), &liwork, &info, 1, 1);
  if (info != 0) {
    throw NumericalError("LAPACK dsyevd failed on a " + std::to_string(n) + "x" +
                         std::to_string(n) + " matrix, info=" + std::to_string(info) +
                         (info > 0 ? " (no convergence; the matrix may hold NaN/Inf)" : ""));
  }
}

}  // namespace hspec::blas
