// CPU compute backend, part 3: row gathers and their scatter-add adjoint (embedding lookups
// by token id, Gather with constant indices on activations).
#include <cstring>

#include "cpu_compute.hpp"

namespace hspec {

template <class T>
void CpuCompute<T>::gather_rows(const T* table, int64_t table_stride, const int64_t* idx,
                                int64_t count, int64_t width, T* out, int64_t reps,
                                bool accumulate) {
  for (int64_t r = 0; r < reps; ++r) {
    const T* tab = table + r * table_stride;
    T* dst = out + r * count * width;
    for (int64_t i = 0; i < count; ++i) {
      const T* row = tab + idx[i] * width;
      T* o = dst + i * width;
      if (accumulate)
        for (int64_t c = 0; c < width; ++c) o[c] += row[c];
      else
        std::memcpy(o, row, sizeof(T) * size_t(width));
    }
  }
}

template <class T>
void CpuCompute<T>::scatter_add_rows(const T* src, const int64_t* idx, int64_t count, int64_t width,
                                     T* table, int64_t table_stride, int64_t reps) {
  // Sequential in i, so repeated indices add up in a fixed order (deterministic results).
  for (int64_t r = 0; r < reps; ++r) {
    T* tab = table + r * table_stride;
    const T* s = src + r * count * width;
    for (int64_t i = 0; i < count; ++i) {
      T* row = tab + idx[i] * width;
      const T* g = s + i * width;
      for (int64_t c = 0; c < width; ++c) row[c] += g[c];
    }
  }
}

#define HSPEC_GATHER_MEMBERS(T)                                                                 \
  template void CpuCompute<T>::gather_rows(const T*, int64_t, const int64_t*, int64_t, int64_t, \
                                           T*, int64_t, bool);                                  \
  template void CpuCompute<T>::scatter_add_rows(const T*, const int64_t*, int64_t, int64_t, T*, \
                                                int64_t, int64_t);
HSPEC_GATHER_MEMBERS(float)
HSPEC_GATHER_MEMBERS(double)

}  // namespace hspec
