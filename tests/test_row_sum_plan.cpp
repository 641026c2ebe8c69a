// The CUDA bias row sums' split of the samples across blocks (kernels/row_sum_plan.hpp, plain
// C++): every sample in exactly one slice, enough blocks for a narrow output layer to fill a
// card, scratch that covers every chunk size, and the host reference in the kernel's order
// against a naive sum. tests/gpu compares the kernel with the reference bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../kernels/row_sum_plan.hpp"
#include "hspec/random.hpp"

namespace hspec::cuda {
namespace {

TEST(RowSumPlan, ANarrowOutputLayerIsSpreadOverManyBlocks) {
  // A 10-class output layer, 8,192 samples, one direction: before, a single block of the
  // grid walked all 8,192 samples.
  const RowSumSplit s = row_sum_split(10, 8192, 1);
  EXPECT_EQ(s.row_blocks, 1);
  EXPECT_GE(s.row_blocks * s.slices, 64);  // at least half the SMs of a 132-SM card
  EXPECT_GE(s.slice, kMinSliceSamples);
  // A wide layer with many directions already has the blocks: no split, no pass 2.
  const RowSumSplit wide = row_sum_split(2048, 8192, 64);
  EXPECT_EQ(wide.slices, 1);
  EXPECT_EQ(row_sum_scratch(2048, 8192, 64), 0);
}

TEST(RowSumPlan, SlicesCoverEverySampleOnceAndScratchCoversSmallerChunks) {
  for (int64_t rows : {1, 10, 31, 33, 512, 2048}) {
    for (int64_t k : {1, 3, 16, 64, 1024}) {
      for (int64_t n : {0, 1, 31, 127, 128, 129, 1000, 4097, 8192, 100000}) {
        const RowSumSplit s = row_sum_split(rows, n, k);
        SCOPED_TRACE(testing::Message() << rows << " x " << n << " x " << k);
        EXPECT_GE(s.slices, 1);
        EXPECT_LE(s.slices, 65535);
        EXPECT_GE(s.slice * s.slices, n);                              // every sample in a slice
        EXPECT_LT((s.slices - 1) * s.slice, std::max<int64_t>(n, 1));  // none empty
        const int64_t scratch = row_sum_scratch(rows, n, k);
        for (int64_t m = 0; m <= n; m += std::max<int64_t>(1, n / 97)) {
          const RowSumSplit t = row_sum_split(rows, m, k);
          if (t.slices > 1) {
            EXPECT_GE(scratch, rows * t.slices * k) << "chunk of " << m;
          }
        }
      }
    }
  }
}

TEST(RowSumPlan, ReferenceInTheKernelsOrderMatchesANaiveSum) {
  for (int64_t rows : {1, 10, 33}) {
    for (int64_t n : {0, 5, 129, 3000, 8192}) {
      for (int64_t k : {1, 4}) {
        std::vector<float> a(static_cast<size_t>(rows * n * k));
        for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(rng::gaussian(4, 0, i));
        const int64_t ld = rows + 3;
        std::vector<double> got(static_cast<size_t>(ld * k), 0.5);
        bias_row_sums_reference<float, double>(a.data(), rows, n, k, got.data(), ld);
        for (int64_t j = 0; j < k; ++j) {
          for (int64_t o = 0; o < rows; ++o) {
            double naive = 0.5, magnitude = 0;
            for (int64_t i = 0; i < n; ++i) {
              naive += a[o + (j * n + i) * rows];
              magnitude += std::fabs(a[o + (j * n + i) * rows]);
            }
            EXPECT_NEAR(got[o + j * ld], naive, 1e-13 * (magnitude + 1)) << o << ", " << j;
          }
          for (int64_t o = rows; o < ld; ++o) EXPECT_EQ(got[o + j * ld], 0.5);  // padding
        }
      }
    }
  }
}

}  // namespace
}  // namespace hspec::cuda
