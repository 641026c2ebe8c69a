// CpuSpace: the solver's block algebra on host memory, with BLAS GEMMs for the Gram
// products and block updates. Small host-side coefficient matrices are double; they are
// rounded to T once per call, so fp32 runs do their O(n) work in fp32.
#include "hspec/backends/cpu/cpu_space.hpp"

#include <cmath>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "hspec/backends/cpu/blas.hpp"
#include "hspec/error.hpp"
#include "hspec/random.hpp"

namespace hspec {

template <class T>
Matrix<T> CpuSpace<T>::allocate(int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0) throw Error("CpuSpace::allocate: negative shape");
  const size_t count = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  T* p = nullptr;
  try {
    p = new T[count > 0 ? count : 1]();
  } catch (const std::bad_alloc&) {
    throw Error("out of host memory allocating a " + std::to_string(rows) + " x " +
                std::to_string(cols) + " block (" +
                std::to_string(count * sizeof(T) / (1024 * 1024)) + " MiB)");
  }
  return Matrix<T>(std::shared_ptr<T>(p, [](T* q) { delete[] q; }), rows, cols);
}

template <class T>
void CpuSpace<T>::gram(BlockView<const T> A, BlockView<const T> B, double* G, int64_t ldg) {
  const int64_t p = A.cols, q = B.cols;
  if (p == 0 || q == 0) return;
  if constexpr (std::is_same_v<T, double>) {
    blas::gemm('T', 'N', p, q, A.rows, 1.0, A.data, A.ld, B.data, B.ld, 0.0, G, ldg);
  } else {
    std::vector<T> tmp(static_cast<size_t>(p * q));
    blas::gemm('T', 'N', p, q, A.rows, T(1), A.data, A.ld, B.data, B.ld, T(0), tmp.data(), p);
    for (int64_t j = 0; j < q; ++j)
      for (int64_t i = 0; i < p; ++i) G[i + j * ldg] = tmp[i + j * p];
  }
}

template <class T>
void CpuSpace<T>::update(BlockView<T> Y, BlockView<const T> A, const double* C, int64_t ldc,
                         double alpha, double beta) {
  const int64_t p = A.cols, q = Y.cols;
  if (q == 0) return;
  if constexpr (std::is_same_v<T, double>) {
    blas::gemm('N', 'N', Y.rows, q, p, alpha, A.data, A.ld, C, ldc, beta, Y.data, Y.ld);
  } else {
    std::vector<T> c(static_cast<size_t>(p * q));
    for (int64_t j = 0; j < q; ++j)
      for (int64_t i = 0; i < p; ++i) c[i + j * p] = static_cast<T>(C[i + j * ldc]);
    blas::gemm('N', 'N', Y.rows, q, p, static_cast<T>(alpha), A.data, A.ld, c.data(), p > 0 ? p : 1,
               static_cast<T>(beta), Y.data, Y.ld);
  }
}

template <class T>
void CpuSpace<T>::norms(BlockView<const T> A, double* out) {
  for (int64_t j = 0; j < A.cols; ++j) {
    // Scaled sum of squares, as in LAPACK's dnrm2, so huge or tiny entries cannot overflow.
    const T* a = A.col(j);
    double scale = 0.0, ssq = 1.0;
    for (int64_t i = 0; i < A.rows; ++i) {
      const double v = std::fabs(static_cast<double>(a[i]));
      if (v == 0.0) continue;
      if (scale < v) {
        ssq = 1.0 + ssq * (scale / v) * (scale / v);
        scale = v;
      } else {
        ssq += (v / scale) * (v / scale);
      }
    }
    out[j] = scale * std::sqrt(ssq);
  }
}

template <class T>
void CpuSpace<T>::scale_columns(BlockView<T> A, const double* s) {
  for (int64_t j = 0; j < A.cols; ++j) {
    T* a = A.col(j);
    const T f = static_cast<T>(s[j]);
    for (int64_t i = 0; i < A.rows; ++i) a[i] *= f;
  }
}

template <class T>
void CpuSpace<T>::copy(BlockView<const T> src, BlockView<T> dst) {
  if (src.rows != dst.rows || src.cols != dst.cols) throw Error("CpuSpace::copy: shape mismatch");
  for (int64_t j = 0; j < src.cols; ++j)
    std::memmove(dst.col(j), src.col(j), sizeof(T) * static_cast<size_t>(src.rows));
}

template <class T>
void CpuSpace<T>::fill_random(BlockView<T> A, Distribution dist, uint64_t seed) {
  for (int64_t j = 0; j < A.cols; ++j) {
    T* a = A.col(j);
    for (int64_t i = 0; i < A.rows; ++i) {
      const uint64_t idx = static_cast<uint64_t>(i);
      const double v = dist == Distribution::Gaussian ? rng::gaussian(seed, j, idx)
                                                      : rng::rademacher(seed, j, idx);
      a[i] = static_cast<T>(v);
    }
  }
}

template <class T>
void CpuSpace<T>::to_host(BlockView<const T> src, T* host, int64_t ldh) {
  copy(src, BlockView<T>(host, src.rows, src.cols, ldh));
}

template <class T>
void CpuSpace<T>::from_host(const T* host, int64_t ldh, BlockView<T> dst) {
  copy(BlockView<const T>(host, dst.rows, dst.cols, ldh), dst);
}

template class CpuSpace<float>;
template class CpuSpace<double>;

}  // namespace hspec
