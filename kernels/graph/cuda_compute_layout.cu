// CudaCompute, part 5: the layout copy behind Transpose, Slice, Split and Concat (a strided
// box, one thread per element: the caller guarantees distinct elements never share a
// destination, so accumulation needs no atomics) and softmax rows (one thread per row, the
// CPU's order of operations: shift by the row maximum, sum, scale). CPU reference:
// host/backends/cpu/cpu_compute_layout.cpp.
#include "cuda_compute.hpp"

namespace hspec::cuda {
namespace {

struct BoxIndex {
  int rank = 0;
  int64_t ext[kMaxRank] = {0};
  int64_t src[kMaxRank] = {0};
  int64_t dst[kMaxRank] = {0};
};

template <class T>
__global__ void strided_copy_kernel(const T* src, T* dst, BoxIndex b, int64_t n, bool accumulate) {
  HSPEC_GRID_LOOP(i, n) {
    int64_t o = i, os = 0, od = 0;
    for (int ax = b.rank - 1; ax >= 0; --ax) {
      const int64_t e = b.ext[ax];
      const int64_t q = o / e, r = o - q * e;
      os += r * b.src[ax];
      od += r * b.dst[ax];
      o = q;
    }
    dst[od] = accumulate ? dst[od] + src[os] : src[os];
  }
}

template <class T>
__global__ void softmax_kernel(const T* x, T* y, int64_t outer, int64_t len, int64_t inner) {
  HSPEC_GRID_LOOP(row, outer * inner) {
    const int64_t o = row / inner, j = row - o * inner;
    const T* xr = x + o * len * inner + j;
    T* yr = y + o * len * inner + j;
    T m = -INFINITY;
    for (int64_t i = 0; i < len; ++i) m = fmax(m, xr[i * inner]);
    T sum = T(0);
    for (int64_t i = 0; i < len; ++i) {
      yr[i * inner] = exp(xr[i * inner] - m);
      sum += yr[i * inner];
    }
    const T inv = T(1) / sum;
    for (int64_t i = 0; i < len; ++i) yr[i * inner] *= inv;
  }
}

}  // namespace

template <class T>
void CudaCompute<T>::strided_copy(const T* src, const Shape& src_strides, T* dst,
                                  const Shape& dst_strides, const Shape& extents, bool accumulate) {
  const size_t r = extents.size();
  if (src_strides.size() != r || dst_strides.size() != r || r > size_t(kMaxRank))
    throw Error("graph compute: strided_copy with mismatched or unsupported ranks");
  const int64_t n = shape_numel(extents);
  if (n == 0) return;
  BoxIndex b;
  b.rank = static_cast<int>(r);
  for (size_t i = 0; i < r; ++i) {
    b.ext[i] = extents[i];
    b.src[i] = src_strides[i];
    b.dst[i] = dst_strides[i];
  }
  DeviceGuard guard(device_);
  strided_copy_kernel<<<grid_for(n, kGraphThreads), kGraphThreads, 0, stream()>>>(src, dst, b, n,
                                                                                  accumulate);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void CudaCompute<T>::softmax(const T* x, T* y, int64_t outer, int64_t len, int64_t inner) {
  const int64_t rows = outer * inner;
  if (rows == 0 || len == 0) return;
  DeviceGuard guard(device_);
  softmax_kernel<<<grid_for(rows, kGraphThreads), kGraphThreads, 0, stream()>>>(x, y, outer, len,
                                                                                inner);
  CUDA_CHECK_LAUNCH();
}

#define HSPEC_LAYOUT_MEMBERS(T)                                                        \
  template void CudaCompute<T>::strided_copy(const T*, const Shape&, T*, const Shape&, \
                                             const Shape&, bool);                      \
  template void CudaCompute<T>::softmax(const T*, T*, int64_t, int64_t, int64_t);
HSPEC_LAYOUT_MEMBERS(float)
HSPEC_LAYOUT_MEMBERS(double)
#undef HSPEC_LAYOUT_MEMBERS

}  // namespace hspec::cuda
