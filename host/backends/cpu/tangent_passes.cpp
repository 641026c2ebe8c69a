// Fused, OpenMP-threaded elementwise passes of the MLP reference operator (see tangent_passes.hpp).
#include "tangent_passes.hpp"

#include <algorithm>

namespace hspec::cpu {
namespace {

// Columns per block of a bias-gradient sum: partial sums per block, added in block order,
// make the result independent of the thread count (reruns stay bit-identical).
constexpr int64_t kSumBlock = 64;
// Below this many elements a pass is not worth waking threads for.
constexpr int64_t kParallelMin = 1 << 15;

int64_t blocks_per_direction(int64_t n) {
  return (n + kSumBlock - 1) / kSumBlock;
}

// Adds the per-block partial sums of each direction into its bias gradient, in block order.
template <class T>
void reduce_partials(const std::vector<T>& partial, const std::vector<T*>& bias_grad_of,
                     int64_t rows, int64_t n) {
  const int64_t nb = blocks_per_direction(n);
  for (size_t j = 0; j < bias_grad_of.size(); ++j) {
    T* dst = bias_grad_of[j];
    if (dst == nullptr) continue;
    for (int64_t b = 0; b < nb; ++b) {
      const T* p = partial.data() + (static_cast<int64_t>(j) * nb + b) * rows;
      for (int64_t r = 0; r < rows; ++r) dst[r] += p[r];
    }
  }
}

}  // namespace

template <class T>
void forward_epilogue(T* ra, T* rx, const T* dphi, const std::vector<const T*>& bias_of,
                      int64_t rows, int64_t n) {
  const int64_t cols = n * static_cast<int64_t>(bias_of.size());
  HSPEC_PARALLEL_FOR_IF(cols * rows >= kParallelMin)
  for (int64_t c = 0; c < cols; ++c) {
    const T* bias = bias_of[static_cast<size_t>(c / n)];
    T* a = ra + c * rows;
    if (bias != nullptr)
      for (int64_t r = 0; r < rows; ++r) a[r] += bias[r];
    if (rx != nullptr) {
      const T* d = dphi + (c % n) * rows;
      T* x = rx + c * rows;
      for (int64_t r = 0; r < rows; ++r) x[r] = d[r] * a[r];
    }
  }
}

template <class T>
void backward_epilogue(T* rg, const T* rd, const T* dphi, const T* s, const T* ra,
                       const std::vector<T*>& bias_grad_of, int64_t rows, int64_t n) {
  const int64_t k = static_cast<int64_t>(bias_grad_of.size()), nb = blocks_per_direction(n);
  std::vector<T> partial(static_cast<size_t>(k * nb * rows), T(0));
  HSPEC_PARALLEL_FOR_IF(k * n * rows >= kParallelMin)
  for (int64_t blk = 0; blk < k * nb; ++blk) {
    const int64_t j = blk / nb, first = (blk % nb) * kSumBlock;
    const int64_t last = std::min(first + kSumBlock, n);
    T* sum =
        bias_grad_of[static_cast<size_t>(j)] != nullptr ? partial.data() + blk * rows : nullptr;
    for (int64_t i = first; i < last; ++i) {
      const int64_t c = j * n + i;
      const T* d = dphi + i * rows;
      const T* x = rd + c * rows;
      T* g = rg + c * rows;
      if (s != nullptr) {
        const T* si = s + i * rows;
        const T* a = ra + c * rows;
        for (int64_t r = 0; r < rows; ++r) g[r] = d[r] * x[r] + si[r] * a[r];
      } else {
        for (int64_t r = 0; r < rows; ++r) g[r] = d[r] * x[r];
      }
      if (sum != nullptr)
        for (int64_t r = 0; r < rows; ++r) sum[r] += g[r];
    }
  }
  reduce_partials(partial, bias_grad_of, rows, n);
}

template <class T>
void add_column_sums(const T* m, const std::vector<T*>& bias_grad_of, int64_t rows, int64_t n) {
  const int64_t k = static_cast<int64_t>(bias_grad_of.size()), nb = blocks_per_direction(n);
  std::vector<T> partial(static_cast<size_t>(k * nb * rows), T(0));
  HSPEC_PARALLEL_FOR_IF(k * n * rows >= kParallelMin)
  for (int64_t blk = 0; blk < k * nb; ++blk) {
    const int64_t j = blk / nb, first = (blk % nb) * kSumBlock;
    const int64_t last = std::min(first + kSumBlock, n);
    if (bias_grad_of[static_cast<size_t>(j)] == nullptr) continue;
    T* sum = partial.data() + blk * rows;
    for (int64_t i = first; i < last; ++i) {
      const T* col = m + (j * n + i) * rows;
      for (int64_t r = 0; r < rows; ++r) sum[r] += col[r];
    }
  }
  reduce_partials(partial, bias_grad_of, rows, n);
}

#define HSPEC_INSTANTIATE(T)                                                                 \
  template void forward_epilogue<T>(T*, T*, const T*, const std::vector<const T*>&, int64_t, \
                                    int64_t);                                                \
  template void backward_epilogue<T>(T*, const T*, const T*, const T*, const T*,             \
                                     const std::vector<T*>&, int64_t, int64_t);              \
  template void add_column_sums<T>(const T*, const std::vector<T*>&, int64_t, int64_t);
HSPEC_INSTANTIATE(float)
HSPEC_INSTANTIATE(double)
#undef HSPEC_INSTANTIATE

}  // namespace hspec::cpu
