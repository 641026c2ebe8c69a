// CPU compute backend, part 1: memory, BLAS GEMMs, elementwise maps with their derivatives,
// and numpy-broadcast binary ops and reductions (strided loops over up to 8 axes, threaded
// with OpenMP above a size, with results that do not depend on the thread count).
#include "cpu_compute.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "cpu_broadcast.hpp"
#include "hspec/backends/cpu/blas.hpp"
#include "hspec/error.hpp"
#include "hspec/graph/compute_math.hpp"

namespace hspec {
namespace {

using cpu_broadcast::for_each_broadcast;
using cpu_broadcast::kParallelMin;

void check_ranks(const Shape& a, const Shape& b) {
  if (a.size() != b.size() || a.size() > size_t(kMaxRank) || a.empty())
    throw Error("graph compute: broadcast shapes of different or unsupported rank");
}

// Source elements per block of a reduction (see reduce_to) and the most blocks: fixed by the
// shapes alone, so the sums do not depend on the thread count.
constexpr int64_t kReduceBlock = 1 << 14;
constexpr int64_t kMaxReduceBlocks = 64;

template <class T, class Op>
void binary_loop(const T* a, const Shape& sa, const T* b, const Shape& sb, T* out, const Shape& so,
                 T alpha, bool accumulate, Op op) {
  for_each_broadcast(so, sa, sb,
                     [&](int64_t o, int64_t ia, int64_t ib, int64_t n, int64_t sta, int64_t stb) {
                       T* y = out + o;
                       const T* pa = a + ia;
                       const T* pb = b + ib;
                       if (sta == 1 && stb == 1) {
                         if (accumulate)
                           for (int64_t i = 0; i < n; ++i) y[i] += alpha * op(pa[i], pb[i]);
                         else
                           for (int64_t i = 0; i < n; ++i) y[i] = alpha * op(pa[i], pb[i]);
                       } else {
                         for (int64_t i = 0; i < n; ++i) {
                           const T v = alpha * op(pa[i * sta], pb[i * stb]);
                           y[i] = accumulate ? y[i] + v : v;
                         }
                       }
                     });
}

}  // namespace

template <class T>
std::shared_ptr<void> CpuCompute<T>::alloc_bytes(size_t bytes) {
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p) throw Error("graph engine: out of host memory allocating " + std::to_string(bytes));
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

template <class T>
void CpuCompute<T>::upload(const T* host, T* dev, int64_t n) {
  if (n > 0) std::memcpy(dev, host, sizeof(T) * size_t(n));
}
template <class T>
void CpuCompute<T>::upload_index(const int64_t* host, int64_t* dev, int64_t n) {
  if (n > 0) std::memcpy(dev, host, sizeof(int64_t) * size_t(n));
}
template <class T>
void CpuCompute<T>::download(const T* dev, T* host, int64_t n) {
  if (n > 0) std::memcpy(host, dev, sizeof(T) * size_t(n));
}
template <class T>
void CpuCompute<T>::fill(T* x, int64_t n, T value) {
  constexpr int64_t kPiece = 1 << 14;
  const int64_t pieces = (n + kPiece - 1) / kPiece;
  HSPEC_OMP_FOR_IF(n >= kParallelMin)
  for (int64_t b = 0; b < pieces; ++b)
    std::fill(x + b * kPiece, x + std::min(n, (b + 1) * kPiece), value);
}
template <class T>
void CpuCompute<T>::axpy(int64_t n, T alpha, const T* x, T* y, bool accumulate) {
  if (accumulate) {
    HSPEC_OMP_FOR_IF(n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
  } else {
    HSPEC_OMP_FOR_IF(n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i];
  }
}
template <class T>
void CpuCompute<T>::copy_2d(const T* src, int64_t ld_src, T* dst, int64_t ld_dst, int64_t rows,
                            int64_t cols, bool accumulate) {
  for (int64_t j = 0; j < cols; ++j)
    axpy(rows, T(1), src + j * ld_src, dst + j * ld_dst, accumulate);
}
template <class T>
bool CpuCompute<T>::all_finite(const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}

template <class T>
void CpuCompute<T>::gemm_batched(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha,
                                 const T* A, int64_t lda, int64_t sa, const T* B, int64_t ldb,
                                 int64_t sb, T beta, T* C, int64_t ldc, int64_t sc, int64_t batch) {
  if (m == 0 || n == 0) return;
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T on the same arrays.
  for (int64_t b = 0; b < batch; ++b)
    blas::gemm(tb ? 'T' : 'N', ta ? 'T' : 'N', n, m, k, alpha, B + b * sb,
               std::max<int64_t>(ldb, 1), A + b * sa, std::max<int64_t>(lda, 1), beta, C + b * sc,
               std::max<int64_t>(ldc, 1));
}

template <class T>
void CpuCompute<T>::swap_axes12(const T* src, T* dst, int64_t a, int64_t b, int64_t c, int64_t d,
                                bool accumulate) {
  // One row of d elements per (i, j, l); rows are independent, so they are dealt to threads.
  const int64_t rows = a * b * c;
  HSPEC_OMP_FOR_IF(rows * d >= kParallelMin && rows > 1)
  for (int64_t q = 0; q < rows; ++q) {
    const int64_t l = q % c, j = (q / c) % b, i = q / (b * c);
    const T* s = src + q * d;
    T* t = dst + ((i * c + l) * b + j) * d;
    if (accumulate)
      for (int64_t e = 0; e < d; ++e) t[e] += s[e];
    else
      std::copy(s, s + d, t);
  }
}

template <class T>
void CpuCompute<T>::unary(UnaryKind f, const T* x, T* y, int64_t n) {
  HSPEC_OMP_FOR_IF(n >= kParallelMin / 8)  // transcendental: threads pay off sooner
  for (int64_t i = 0; i < n; ++i) {
    T v[3] = {T(0), T(0), T(0)};
    unary_values(f, x[i], v);
    y[i] = v[0];
  }
}

template <class T>
void CpuCompute<T>::unary_derivative(UnaryKind f, int order, const T* x, const T* s, const T* r,
                                     T* out, int64_t n, int64_t reps, bool accumulate) {
  // Derivatives of a block of x once, then applied to every repetition (direction).
  constexpr int64_t kBlock = 512;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  HSPEC_OMP_FOR_IF(n * reps >= kParallelMin && blocks > 1)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t i0 = b * kBlock, m = std::min(kBlock, n - i0);
    T d[kBlock];
    T v[3] = {T(0), T(0), T(0)};
    for (int64_t i = 0; i < m; ++i) {
      unary_values(f, x[i0 + i], v);
      d[i] = v[order] * (s ? s[i0 + i] : T(1));
    }
    for (int64_t j = 0; j < reps; ++j) {
      const T* rj = r + j * n + i0;
      T* oj = out + j * n + i0;
      if (accumulate)
        for (int64_t i = 0; i < m; ++i) oj[i] += d[i] * rj[i];
      else
        for (int64_t i = 0; i < m; ++i) oj[i] = d[i] * rj[i];
    }
  }
}

template <class T>
void CpuCompute<T>::binary(BinaryKind op, const T* a, const Shape& sa, const T* b, const Shape& sb,
                           T* out, const Shape& so, T alpha, bool accumulate) {
  check_ranks(sa, so);
  check_ranks(sb, so);
  switch (op) {
    case BinaryKind::Add:
      return binary_loop(a, sa, b, sb, out, so, alpha, accumulate, [](T x, T y) { return x + y; });
    case BinaryKind::Sub:
      return binary_loop(a, sa, b, sb, out, so, alpha, accumulate, [](T x, T y) { return x - y; });
    case BinaryKind::Mul:
      return binary_loop(a, sa, b, sb, out, so, alpha, accumulate, [](T x, T y) { return x * y; });
    case BinaryKind::Div:
      return binary_loop(a, sa, b, sb, out, so, alpha, accumulate, [](T x, T y) { return x / y; });
  }
}

template <class T>
void CpuCompute<T>::scaled_sum(const T* a, const T* p, const T* b, const T* q, T* out, int64_t n,
                               int64_t reps, bool accumulate) {
  HSPEC_OMP_FOR_IF(n * reps >= kParallelMin && reps * n > 1)
  for (int64_t c = 0; c < reps * n; ++c) {
    const int64_t i = c % n;
    const T first = accumulate ? out[c] + a[i] * p[c] : a[i] * p[c];
    out[c] = first + b[i] * q[c];
  }
}

template <class T>
void CpuCompute<T>::broadcast_to(const T* src, const Shape& ss, T* dst, const Shape& sd, T alpha,
                                 bool accumulate) {
  check_ranks(ss, sd);
  binary_loop(src, ss, src, ss, dst, sd, alpha, accumulate, [](T x, T) { return x; });
}

template <class T>
void CpuCompute<T>::reduce_to(const T* src, const Shape& ss, T* dst, const Shape& sd, T alpha,
                              bool accumulate) {
  check_ranks(ss, sd);
  if (ss == sd) {  // nothing to sum: an elementwise copy (same rounding as the sums' path)
    binary_loop(src, ss, src, ss, dst, sd, alpha, accumulate, [](T x, T) { return x; });
    return;
  }
  // Summed in double and rounded once: a bias adjoint sums thousands of samples, and a float
  // running sum would lose digits that the products' GEMM terms keep. The source's runs are
  // summed in fixed blocks (each into its own partial sums, in order), and the partials are
  // added in block order, so threads change nothing in the result.
  const int64_t m = shape_numel(sd);
  const cpu_broadcast::Runs r(ss, sd, sd);
  if (r.total == 0) {
    if (!accumulate) fill(dst, m, T(0));
    return;
  }
  bool rows_only = r.rank > 0 && r.ta[r.rank - 1] == 0;
  for (int ax = 0; ax + 1 < r.rank; ++ax) rows_only = rows_only && r.ta[ax] != 0;
  if (rows_only) {  // each run sums into its own element: runs split over threads as they are
    HSPEC_OMP_FOR_IF(r.total >= kParallelMin)
    for (int64_t g = 0; g < cpu_broadcast::kMaxPieces; ++g) {
      auto sum_row = [&](int64_t i, int64_t o, int64_t, int64_t n, int64_t, int64_t) {
        double sum = 0;
        for (int64_t j = 0; j < n; ++j) sum += double(src[i + j]);
        const T v = T(double(alpha) * sum);
        dst[o] = accumulate ? dst[o] + v : v;
      };
      r.visit(r.count * g / cpu_broadcast::kMaxPieces,
              r.count * (g + 1) / cpu_broadcast::kMaxPieces, sum_row);
    }
    return;
  }
  const int64_t by_size = (r.total + kReduceBlock - 1) / kReduceBlock;
  const int64_t blocks =
      std::max<int64_t>(1, std::min({by_size, kMaxReduceBlocks, r.count, r.total / (4 * m)}));
  if (partial_.size() < size_t(blocks * m)) partial_.resize(size_t(blocks * m));
  double* part = partial_.data();
  HSPEC_OMP_FOR_IF(blocks > 1)
  for (int64_t b = 0; b < blocks; ++b) {
    double* acc = part + b * m;
    std::fill(acc, acc + m, 0.0);
    // Iterate over the source; the destination index ignores the reduced axes.
    auto sum_run = [&](int64_t i, int64_t o, int64_t, int64_t n, int64_t sto, int64_t) {
      const T* x = src + i;
      if (sto == 0) {  // a run summed into one element
        double sum = 0;
        for (int64_t j = 0; j < n; ++j) sum += double(x[j]);
        acc[o] += sum;
      } else {
        double* y = acc + o;
        for (int64_t j = 0; j < n; ++j) y[j * sto] += double(x[j]);
      }
    };
    r.visit(r.count * b / blocks, r.count * (b + 1) / blocks, sum_run);
  }
  HSPEC_OMP_FOR_IF(m * blocks >= kParallelMin)
  for (int64_t i = 0; i < m; ++i) {
    double sum = part[i];
    for (int64_t b = 1; b < blocks; ++b) sum += part[b * m + i];
    const T v = T(double(alpha) * sum);
    dst[i] = accumulate ? dst[i] + v : v;
  }
}

template class CpuCompute<float>;
template class CpuCompute<double>;

template <class T>
std::unique_ptr<Compute<T>> make_cpu_compute() {
  return std::make_unique<CpuCompute<T>>();
}
template std::unique_ptr<Compute<float>> make_cpu_compute<float>();
template std::unique_ptr<Compute<double>> make_cpu_compute<double>();

}  // namespace hspec
