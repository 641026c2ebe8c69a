// CPU compute backend, part 3: the layout copy behind Transpose, Slice, Split and Concat
// (strided boxes with an odometer over the outer axes), and softmax rows.
#include <algorithm>
#include <cmath>

#include "cpu_compute.hpp"
#include "hspec/error.hpp"

namespace hspec {

template <class T>
void CpuCompute<T>::strided_copy(const T* src, const Shape& src_strides, T* dst,
                                 const Shape& dst_strides, const Shape& extents, bool accumulate) {
  const size_t r = extents.size();
  if (src_strides.size() != r || dst_strides.size() != r || r > size_t(kMaxRank))
    throw Error("graph compute: strided_copy with mismatched or unsupported ranks");
  if (r == 0) {
    *dst = accumulate ? *dst + *src : *src;
    return;
  }
  if (shape_numel(extents) == 0) return;
  const int64_t run = extents[r - 1], ss = src_strides[r - 1], ds = dst_strides[r - 1];
  int64_t idx[kMaxRank] = {0};
  int64_t os = 0, od = 0;
  const int64_t outer = shape_numel(extents) / run;
  for (int64_t o = 0; o < outer; ++o) {
    const T* s = src + os;
    T* d = dst + od;
    if (accumulate)
      for (int64_t i = 0; i < run; ++i) d[i * ds] += s[i * ss];
    else
      for (int64_t i = 0; i < run; ++i) d[i * ds] = s[i * ss];
    for (size_t ax = r - 1; ax-- > 0;) {  // odometer over the outer axes
      ++idx[ax];
      os += src_strides[ax];
      od += dst_strides[ax];
      if (idx[ax] < extents[ax]) break;
      os -= src_strides[ax] * extents[ax];
      od -= dst_strides[ax] * extents[ax];
      idx[ax] = 0;
    }
  }
}

template <class T>
void CpuCompute<T>::softmax(const T* x, T* y, int64_t outer, int64_t len, int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      const T* xr = x + o * len * inner + j;
      T* yr = y + o * len * inner + j;
      T m = -INFINITY;
      for (int64_t i = 0; i < len; ++i) m = std::max(m, xr[i * inner]);
      T sum = T(0);
      for (int64_t i = 0; i < len; ++i) {
        yr[i * inner] = std::exp(xr[i * inner] - m);
        sum += yr[i * inner];
      }
      const T inv = T(1) / sum;
      for (int64_t i = 0; i < len; ++i) yr[i * inner] *= inv;
    }
}

#define HSPEC_LAYOUT_MEMBERS(T)                                                       \
  template void CpuCompute<T>::strided_copy(const T*, const Shape&, T*, const Shape&, \
                                            const Shape&, bool);                      \
  template void CpuCompute<T>::softmax(const T*, T*, int64_t, int64_t, int64_t);
HSPEC_LAYOUT_MEMBERS(float)
HSPEC_LAYOUT_MEMBERS(double)

}  // namespace hspec
