// The transformer primitives of the compute seam against plain definitions: strided_copy as
// a transpose, a reversed strided slice (negative strides), a broadcast (stride 0) and an
// accumulating scatter; softmax rows over a middle axis by the textbook formula, including
// -inf entries (masked positions). Backends other than the CPU one are held to the same.
#include <gtest/gtest.h>

#include <cmath>

#include "hspec/graph/compute.hpp"
#include "hspec/random.hpp"

namespace hspec {
namespace {

std::vector<double> values(int64_t n, uint64_t stream) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = rng::gaussian(9, stream, i);
  return v;
}

TEST(GraphComputeLayout, StridedCopyTransposeSliceBroadcastScatter) {
  auto cx = make_cpu_compute<double>();
  // Transpose [2, 3, 4] -> [4, 2, 3]: out[c, a, b] = in[a, b, c].
  const auto in = values(24, 1);
  std::vector<double> out(24, -1.0);
  cx->strided_copy(in.data(), {1, 12, 4}, out.data(), {6, 3, 1}, {4, 2, 3}, false);
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 0; c < 4; ++c)
        EXPECT_EQ(out[size_t(c * 6 + a * 3 + b)], in[size_t(a * 12 + b * 4 + c)]);
  // Slice of [5, 6]: rows 4, 2, 0 (step -2), columns 1, 4 (step 3).
  const auto m = values(30, 2);
  std::vector<double> s(6, 0.0);
  cx->strided_copy(m.data() + 4 * 6 + 1, {-12, 3}, s.data(), {2, 1}, {3, 2}, false);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j)
      EXPECT_EQ(s[size_t(i * 2 + j)], m[size_t((4 - 2 * i) * 6 + 1 + 3 * j)]);
  // Broadcast a row of 3 over 4 rows, then scatter-add it back into the middle of [4, 5].
  const auto row = values(3, 3);
  std::vector<double> b(12, 0.0);
  cx->strided_copy(row.data(), {0, 1}, b.data(), {3, 1}, {4, 3}, false);
  std::vector<double> big(20, 1.0);
  cx->strided_copy(b.data(), {3, 1}, big.data() + 1, {5, 1}, {4, 3}, true);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 5; ++j)
      EXPECT_EQ(big[size_t(i * 5 + j)], (j >= 1 && j <= 3) ? 1.0 + row[size_t(j - 1)] : 1.0);
}

TEST(GraphComputeLayout, SoftmaxRowsOverAMiddleAxis) {
  auto cx = make_cpu_compute<double>();
  const int64_t outer = 2, len = 5, inner = 3;
  auto x = values(outer * len * inner, 4);
  x[size_t(0 * 15 + 2 * 3 + 1)] = -INFINITY;  // a masked entry
  std::vector<double> y(x.size());
  cx->softmax(x.data(), y.data(), outer, len, inner);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      double z = 0;
      for (int64_t i = 0; i < len; ++i) z += std::exp(x[size_t((o * len + i) * inner + j)]);
      for (int64_t i = 0; i < len; ++i) {
        const size_t at = size_t((o * len + i) * inner + j);
        EXPECT_NEAR(y[at], std::exp(x[at]) / z, 1e-15);
      }
    }
  EXPECT_EQ(y[size_t(2 * 3 + 1)], 0.0);
  // Large logits: shifted by the row maximum, no overflow.
  std::vector<double> big = {1000.0, 1001.0}, p(2);
  cx->softmax(big.data(), p.data(), 1, 2, 1);
  EXPECT_NEAR(p[1], 1.0 / (1.0 + std::exp(-1.0)), 1e-15);
}

}  // namespace
}  // namespace hspec
