// CPU compute backend, part 1: memory, BLAS GEMMs, elementwise maps with their derivatives,
// and numpy-broadcast binary ops and reductions (plain strided loops over up to 8 axes).
#include "cpu_compute.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "hspec/backends/cpu/blas.hpp"
#include "hspec/error.hpp"
#include "hspec/graph/compute_math.hpp"

namespace hspec {
namespace {

// Row-major strides of s, with 0 where the axis is broadcast against `full`.
Shape broadcast_strides(const Shape& s, const Shape& full) {
  Shape st(s.size(), 0);
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = (s[i] == 1 && full[i] != 1) ? 0 : acc;
    acc *= s[i];
  }
  return st;
}

void check_ranks(const Shape& a, const Shape& b) {
  if (a.size() != b.size() || a.size() > size_t(kMaxRank) || a.empty())
    throw Error("graph compute: broadcast shapes of different or unsupported rank");
}

// Calls inner(out, a, b, count, stride_a, stride_b) for runs of `count` consecutive output
// elements, the operands advancing by their strides (0 = broadcast). Adjacent axes with
// the same broadcast pattern are merged first, so a per-channel operand over [k, n, C, H, W]
// gives runs of H W elements instead of W.
template <class Inner>
void for_each_broadcast(const Shape& full, const Shape& sa, const Shape& sb, Inner inner) {
  if (shape_numel(full) == 0) return;
  const Shape ta0 = broadcast_strides(sa, full), tb0 = broadcast_strides(sb, full);
  int64_t ext[kMaxRank], ta[kMaxRank], tb[kMaxRank];
  int r = 0;
  for (size_t i = 0; i < full.size(); ++i) {
    if (full[i] == 1) continue;  // extent-1 axes contribute nothing
    if (r > 0 && ta[r - 1] == ta0[i] * full[i] && tb[r - 1] == tb0[i] * full[i]) {
      ext[r - 1] *= full[i];  // contiguous with the previous axis in both operands
      ta[r - 1] = ta0[i];
      tb[r - 1] = tb0[i];
      continue;
    }
    ext[r] = full[i];
    ta[r] = ta0[i];
    tb[r] = tb0[i];
    ++r;
  }
  if (r == 0) {
    inner(int64_t(0), int64_t(0), int64_t(0), int64_t(1), int64_t(0), int64_t(0));
    return;
  }
  const int64_t run = ext[r - 1], total = shape_numel(full);
  int64_t idx[kMaxRank] = {0};
  int64_t oa = 0, ob = 0;
  for (int64_t o = 0; o < total; o += run) {
    inner(o, oa, ob, run, ta[r - 1], tb[r - 1]);
    for (int ax = r - 1; ax-- > 0;) {  // odometer over the outer axes
      ++idx[ax];
      oa += ta[ax];
      ob += tb[ax];
      if (idx[ax] < ext[ax]) break;
      oa -= ta[ax] * ext[ax];
      ob -= tb[ax] * ext[ax];
      idx[ax] = 0;
    }
  }
}

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
  std::fill(x, x + n, value);
}
template <class T>
void CpuCompute<T>::axpy(int64_t n, T alpha, const T* x, T* y, bool accumulate) {
  if (accumulate)
    for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
  else
    for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i];
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
  for (int64_t i = 0; i < a; ++i)
    for (int64_t j = 0; j < b; ++j)
      for (int64_t l = 0; l < c; ++l) {
        const T* s = src + ((i * b + j) * c + l) * d;
        T* t = dst + ((i * c + l) * b + j) * d;
        if (accumulate)
          for (int64_t e = 0; e < d; ++e) t[e] += s[e];
        else
          std::copy(s, s + d, t);
      }
}

template <class T>
void CpuCompute<T>::unary(UnaryKind f, const T* x, T* y, int64_t n) {
  T v[3] = {T(0), T(0), T(0)};
  for (int64_t i = 0; i < n; ++i) {
    unary_values(f, x[i], v);
    y[i] = v[0];
  }
}

template <class T>
void CpuCompute<T>::unary_derivative(UnaryKind f, int order, const T* x, const T* s, const T* r,
                                     T* out, int64_t n, int64_t reps, bool accumulate) {
  // Derivatives of a block of x once, then applied to every repetition (direction).
  constexpr int64_t kBlock = 512;
  T d[kBlock];
  T v[3] = {T(0), T(0), T(0)};
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t m = std::min(kBlock, n - i0);
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
void CpuCompute<T>::broadcast_to(const T* src, const Shape& ss, T* dst, const Shape& sd, T alpha,
                                 bool accumulate) {
  check_ranks(ss, sd);
  binary_loop(src, ss, src, ss, dst, sd, alpha, accumulate, [](T x, T) { return x; });
}

template <class T>
void CpuCompute<T>::reduce_to(const T* src, const Shape& ss, T* dst, const Shape& sd, T alpha,
                              bool accumulate) {
  check_ranks(ss, sd);
  // Summed in double and rounded once: a bias adjoint sums thousands of samples, and a float
  // running sum would lose digits that the products' GEMM terms keep.
  const int64_t m = shape_numel(sd);
  std::vector<double> acc(size_t(m), 0.0);
  // Iterate over the source; the destination index ignores the reduced axes.
  for_each_broadcast(ss, sd, sd,
                     [&](int64_t i, int64_t o, int64_t, int64_t n, int64_t sto, int64_t) {
                       const T* x = src + i;
                       if (sto == 0) {  // a run summed into one element
                         double sum = 0;
                         for (int64_t j = 0; j < n; ++j) sum += double(x[j]);
                         acc[size_t(o)] += sum;
                       } else {
                         double* y = acc.data() + o;
                         for (int64_t j = 0; j < n; ++j) y[j * sto] += double(x[j]);
                       }
                     });
  for (int64_t i = 0; i < m; ++i) {
    const T v = T(double(alpha) * acc[size_t(i)]);
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
