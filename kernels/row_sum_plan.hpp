// The bias row sums of the CUDA operator (bias_row_sums in hvp_kernels.cu), without CUDA: how
// the kernel's blocks split the samples, and a plain host reference that adds in exactly the
// kernel's order, so a test can demand bit-identical results.
//
// Pass 1: block (32 rows, 32 lanes) of grid (row blocks, slices, k) sums one slice of
// consecutive samples: lane y adds samples y, y + 32, ... of the slice, then lane 0 adds the
// 32 lane sums in order. Pass 2 (only with more than one slice) adds the slice sums of each
// row in slice order. Every addition is in double and in a fixed order: deterministic.
#pragma once
#include <algorithm>
#include <cstdint>

namespace hspec::cuda {

constexpr int kSumRows = 32, kSumLanes = 32;
// A slice gives each lane at least 4 samples; beyond about 1024 blocks more slices only add
// pass-2 work (132 SMs on an H100/H200 hold 2 of these 1024-thread blocks each).
constexpr int64_t kMinSliceSamples = 4 * kSumLanes;
constexpr int64_t kTargetSumBlocks = 1024;

struct RowSumSplit {
  int64_t row_blocks = 1;  // grid x
  int64_t slices = 1;      // grid y: slices of samples
  int64_t slice = 0;       // samples per slice (the last one may be shorter)
};

// Slices before rounding: at most this many for any sample count up to n.
inline int64_t row_sum_max_slices(int64_t row_blocks, int64_t n, int64_t k) {
  const int64_t grid_k = std::clamp<int64_t>(k, 1, 65535);
  const int64_t by_work = (n + kMinSliceSamples - 1) / kMinSliceSamples;
  const int64_t by_grid = kTargetSumBlocks / (row_blocks * grid_k);
  return std::clamp<int64_t>(std::min(by_work, by_grid), 1, 65535);
}

inline RowSumSplit row_sum_split(int64_t rows, int64_t n, int64_t k) {
  RowSumSplit s;
  s.row_blocks = std::max<int64_t>(1, (rows + kSumRows - 1) / kSumRows);
  s.slices = row_sum_max_slices(s.row_blocks, n, k);
  s.slice = (n + s.slices - 1) / s.slices;
  if (s.slice > 0) s.slices = (n + s.slice - 1) / s.slice;  // no empty slice
  return s;
}

// Doubles of scratch that pass 1 needs for any sample count up to n (a single slice adds
// straight into dst and needs none).
inline int64_t row_sum_scratch(int64_t rows, int64_t n, int64_t k) {
  const int64_t row_blocks = std::max<int64_t>(1, (rows + kSumRows - 1) / kSumRows);
  const int64_t slices = row_sum_max_slices(row_blocks, n, k);
  return slices > 1 ? rows * slices * k : 0;
}

// dst[o + j * ld_dst] += sum_i a[o + (j * n + i) * rows], in the kernel's order.
template <class T, class Out>
void bias_row_sums_reference(const T* a, int64_t rows, int64_t n, int64_t k, Out* dst,
                             int64_t ld_dst) {
  const RowSumSplit s = row_sum_split(rows, n, k);
  for (int64_t j = 0; j < k; ++j) {
    for (int64_t o = 0; o < rows; ++o) {
      const T* col = a + j * rows * n + o;
      double total = 0;
      for (int64_t c = 0; c < s.slices; ++c) {
        const int64_t first = c * s.slice, end = std::min(n, first + s.slice);
        double lane[kSumLanes] = {};
        for (int y = 0; y < kSumLanes; ++y)
          for (int64_t i = first + y; i < end; i += kSumLanes)
            lane[y] += static_cast<double>(col[i * rows]);
        double slice_sum = 0;
        for (int y = 0; y < kSumLanes; ++y) slice_sum += lane[y];
        total = s.slices == 1 ? slice_sum : total + slice_sum;
      }
      dst[o + j * ld_dst] += static_cast<Out>(total);
    }
  }
}

}  // namespace hspec::cuda
