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

namespace {

// Up to this many columns, the Gram products and block updates go column by column through
// GEMV, which reads the basis once per column; beyond it one GEMM is cheaper. On the 2-core
// Zen 3 development machine (OpenBLAS 0.3.21, 32 basis columns of 669,706 fp32 entries) a
// Gram product plus update took 7.6 ms of CPU time per column by GEMV against 26 ms by GEMM
// at one column, 33 against 45 ms at four, 60 against 48 ms at eight.
constexpr int64_t kMaxGemvColumns = 4;

}  // namespace

template <class T>
void CpuSpace<T>::gram(BlockView<const T> A, BlockView<const T> B, double* G, int64_t ldg) {
  const int64_t p = A.cols, q = B.cols;
  if (p == 0 || q == 0) return;
  if constexpr (std::is_same_v<T, double>) {
    if (q <= kMaxGemvColumns) {
      for (int64_t j = 0; j < q; ++j)
        blas::gemv('T', A.rows, p, 1.0, A.data, A.ld, B.col(j), 0.0, G + j * ldg);
    } else {
      blas::gemm('T', 'N', p, q, A.rows, 1.0, A.data, A.ld, B.data, B.ld, 0.0, G, ldg);
    }
  } else {
    std::vector<T> tmp(static_cast<size_t>(p * q));
    if (q <= kMaxGemvColumns) {
      for (int64_t j = 0; j < q; ++j)
        blas::gemv('T', A.rows, p, T(1), A.data, A.ld, B.col(j), T(0), tmp.data() + j * p);
    } else {
      blas::gemm('T', 'N', p, q, A.rows, T(1), A.data, A.ld, B.data, B.ld, T(0), tmp.data(), p);
    }
    for (int64_t j = 0; j < q; ++j)
      for (int64_t i = 0; i < p; ++i) G[i + j * ldg] = tmp[i + j * p];
  }
}

template <class T>
void CpuSpace<T>::update(BlockView<T> Y, BlockView<const T> A, const double* C, int64_t ldc,
                         double alpha, double beta) {
  const int64_t p = A.cols, q = Y.cols;
  if (q == 0) return;
  // The coefficients in the compute precision (rounded once), columns p apart.
  std::vector<T> rounded;
  const T* c = nullptr;
  int64_t ld = ldc;
  if constexpr (std::is_same_v<T, double>) {
    c = C;
  } else {
    rounded.resize(static_cast<size_t>(p * q));
    for (int64_t j = 0; j < q; ++j)
      for (int64_t i = 0; i < p; ++i) rounded[i + j * p] = static_cast<T>(C[i + j * ldc]);
    c = rounded.data();
    ld = p;
  }
  const T a = static_cast<T>(alpha), b = static_cast<T>(beta);
  if (q <= kMaxGemvColumns) {
    for (int64_t j = 0; j < q; ++j)
      blas::gemv('N', Y.rows, p, a, A.data, A.ld, c + j * ld, b, Y.col(j));
  } else {
    blas::gemm('N', 'N', Y.rows, q, p, a, A.data, A.ld, c, ld > 0 ? ld : 1, b, Y.data, Y.ld);
  }
}

template <class T>
void CpuSpace<T>::norms(BlockView<const T> A, double* out) {
  for (int64_t j = 0; j < A.cols; ++j) {
    const T* a = A.col(j);
    // Plain sum of squares in double, four running sums in a fixed order (the result does
    // not depend on the thread count): fp32 entries cannot overflow or underflow it, and
    // fp64 ones only when the sum leaves [2^-900, inf).
    double part[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= A.rows; i += 4)
      for (int u = 0; u < 4; ++u) {
        const double v = static_cast<double>(a[i + u]);
        part[u] += v * v;
      }
    for (; i < A.rows; ++i) part[0] += static_cast<double>(a[i]) * static_cast<double>(a[i]);
    const double ssq = (part[0] + part[1]) + (part[2] + part[3]);
    if (std::isfinite(ssq) && (ssq >= 0x1p-900 || sizeof(T) < sizeof(double))) {
      out[j] = std::sqrt(ssq);
      continue;
    }
    // Scaled sum of squares, as in LAPACK's dnrm2, for huge or tiny fp64 entries.
    double scale = 0.0, scaled = 1.0;
    for (i = 0; i < A.rows; ++i) {
      const double v = std::fabs(static_cast<double>(a[i]));
      if (v == 0.0) continue;
      if (scale < v) {
        scaled = 1.0 + scaled * (scale / v) * (scale / v);
        scale = v;
      } else {
        scaled += (v / scale) * (v / scale);
      }
    }
    out[j] = scale * std::sqrt(scaled);
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
