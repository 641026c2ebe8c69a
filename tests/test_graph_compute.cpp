// The CPU compute backend of the graph engine against plain definitions: broadcast binary
// ops and reductions by multi-index arithmetic, im2col by the convolution's index formula,
// pooling on hand-worked examples (ties, padding, count_include_pad), and row gathers and
// their scatter-add by the definition table[idx[i]] (repeated indices included).
#include <gtest/gtest.h>

#include <functional>

#include "hspec/graph/compute.hpp"
#include "hspec/random.hpp"

namespace hspec {
namespace {

// Offset of the multi-index `idx` (of `full`) in a tensor of shape s broadcast to full.
int64_t offset(const Shape& s, const std::vector<int64_t>& idx) {
  int64_t o = 0;
  for (size_t i = 0; i < s.size(); ++i) o = o * s[i] + (s[i] == 1 ? 0 : idx[i]);
  return o;
}

void for_each_index(const Shape& full, const std::function<void(const std::vector<int64_t>&)>& f) {
  std::vector<int64_t> idx(full.size(), 0);
  for (int64_t n = 0; n < shape_numel(full); ++n) {
    f(idx);
    for (size_t ax = full.size(); ax-- > 0;) {
      if (++idx[ax] < full[ax]) break;
      idx[ax] = 0;
    }
  }
}

std::vector<double> random_values(int64_t n, uint64_t stream) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = rng::gaussian(5, stream, i) + 3.0;
  return v;
}

TEST(GraphCompute, BroadcastOpsMatchIndexArithmetic) {
  auto cx = make_cpu_compute<double>();
  const Shape out = {3, 4, 2, 5, 6};
  const std::vector<Shape> shapes = {{3, 4, 2, 5, 6}, {1, 4, 1, 1, 1}, {3, 1, 2, 1, 6},
                                     {1, 1, 1, 5, 6}, {3, 4, 1, 5, 1}, {1, 1, 1, 1, 1}};
  uint64_t stream = 0;
  for (const Shape& sa : shapes)
    for (const Shape& sb : shapes) {
      const auto a = random_values(shape_numel(sa), stream++),
                 b = random_values(shape_numel(sb), stream++);
      for (BinaryKind op : {BinaryKind::Add, BinaryKind::Sub, BinaryKind::Mul, BinaryKind::Div}) {
        std::vector<double> got = random_values(shape_numel(out), 99), ref = got;
        cx->binary(op, a.data(), sa, b.data(), sb, got.data(), out, 0.5, true);
        for_each_index(out, [&](const std::vector<int64_t>& idx) {
          const double x = a[size_t(offset(sa, idx))], y = b[size_t(offset(sb, idx))];
          const double v = op == BinaryKind::Add   ? x + y
                           : op == BinaryKind::Sub ? x - y
                           : op == BinaryKind::Mul ? x * y
                                                   : x / y;
          ref[size_t(offset(out, idx))] += 0.5 * v;
        });
        for (size_t i = 0; i < ref.size(); ++i)
          ASSERT_NEAR(got[i], ref[i], 1e-12 * std::abs(ref[i]) + 1e-12);
      }
      // reduce_to the operand's shape, and broadcast_to the output, against the same sums.
      const auto src = random_values(shape_numel(out), stream++);
      std::vector<double> red(size_t(shape_numel(sa)), 0.0), ref(red.size(), 0.0);
      cx->reduce_to(src.data(), out, red.data(), sa, 2.0, false);
      for_each_index(out, [&](const std::vector<int64_t>& idx) {
        ref[size_t(offset(sa, idx))] += 2.0 * src[size_t(offset(out, idx))];
      });
      for (size_t i = 0; i < ref.size(); ++i)
        ASSERT_NEAR(red[i], ref[i], 1e-11 * (1 + std::abs(ref[i])));
      std::vector<double> bc(size_t(shape_numel(out)), 0.0);
      cx->broadcast_to(a.data(), sa, bc.data(), out, -1.0, false);
      for_each_index(out, [&](const std::vector<int64_t>& idx) {
        ASSERT_EQ(bc[size_t(offset(out, idx))], -a[size_t(offset(sa, idx))]);
      });
    }
}

// A bias adjoint sums one value per sample. In float, the sum of 2^20 copies of 0.1f both
// down a column (strided runs) and along a row (one run) must round once from the exact
// sum: a running float sum is off by about 1e-2 relative here (it stalls once the total's
// ulp exceeds the terms).
TEST(GraphCompute, FloatReductionsRoundOnceFromTheExactSum) {
  auto cx = make_cpu_compute<float>();
  const int64_t n = int64_t(1) << 20;
  const std::vector<float> src(size_t(2 * n), 0.1f);
  const double exact = double(n) * double(0.1f);
  float col[2] = {0, 0};
  cx->reduce_to(src.data(), {n, 2}, col, {1, 2}, 1.0f, false);  // down the columns
  float row = 1.0f;
  cx->reduce_to(src.data(), {1, 2 * n}, &row, {1, 1}, 0.5f, true);  // one run, += 0.5 sum
  for (float c : col) EXPECT_EQ(c, float(exact));
  EXPECT_EQ(row, float(1.0 + exact));
}

TEST(GraphCompute, Im2colMatchesTheConvolutionIndexFormula) {
  auto cx = make_cpu_compute<double>();
  WindowGeom g;
  g.channels = 2;
  g.height = 5;
  g.width = 7;
  g.kh = 3;
  g.kw = 2;
  g.sh = 2;
  g.sw = 3;
  g.dh = 1;
  g.dw = 2;
  g.pad_top = 1;
  g.pad_left = 2;
  g.pad_bottom = 0;
  g.pad_right = 1;
  g.out_h = (5 + 1 + 0 - 3) / 2 + 1;
  g.out_w = (7 + 2 + 1 - 3) / 3 + 1;
  const int64_t groups = 2, per = 3, B = groups * per, CK = 2 * 3 * 2, P = g.out_h * g.out_w;
  const auto x = random_values(B * 2 * 5 * 7, 7);
  std::vector<double> cols(size_t(groups * CK * per * P), -1.0);
  cx->im2col(x.data(), cols.data(), g, groups, per);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 2; ++j)
          for (int64_t oh = 0; oh < g.out_h; ++oh)
            for (int64_t ow = 0; ow < g.out_w; ++ow) {
              const int64_t ih = oh * 2 - 1 + i, iw = ow * 3 - 2 + j * 2;
              const double want = (ih >= 0 && ih < 5 && iw >= 0 && iw < 7)
                                      ? x[size_t(((b * 2 + c) * 5 + ih) * 7 + iw)]
                                      : 0.0;
              const int64_t row = (c * 3 + i) * 2 + j, gr = b / per, p = b % per;
              ASSERT_EQ(cols[size_t(((gr * CK + row) * per + p) * P + oh * g.out_w + ow)], want);
            }
  // col2im is the adjoint: <im2col(x), y> = <x, col2im(y)>.
  const auto y = random_values(int64_t(cols.size()), 8);
  std::vector<double> back(x.size(), 0.0);
  cx->col2im(y.data(), back.data(), g, groups, per);
  double lhs = 0, rhs = 0;
  for (size_t i = 0; i < cols.size(); ++i) lhs += cols[i] * y[i];
  for (size_t i = 0; i < x.size(); ++i) rhs += x[i] * back[i];
  EXPECT_NEAR(lhs, rhs, 1e-10 * std::abs(lhs));
}

TEST(GraphCompute, PoolingOnHandWorkedExamples) {
  auto cx = make_cpu_compute<double>();
  // One 3x3 plane, 2x2 windows, stride 2, pads bottom/right 1: windows {0,1,3,4}, {2,5},
  // {6,7}, {8}. Ties go to the first cell in scan order.
  const std::vector<double> x = {1, 5, 2, 5, 3, 2, -1, -1, -4};
  WindowGeom g;
  g.channels = 1;
  g.height = g.width = 3;
  g.kh = g.kw = 2;
  g.sh = g.sw = 2;
  g.pad_bottom = g.pad_right = 1;
  g.out_h = g.out_w = 2;
  std::vector<double> y(4);
  std::vector<int64_t> am(4);
  cx->maxpool(x.data(), y.data(), am.data(), g, 1);
  EXPECT_EQ(y, (std::vector<double>{5, 2, -1, -4}));
  EXPECT_EQ(am, (std::vector<int64_t>{1, 2, 6, 8}));
  cx->avgpool(x.data(), y.data(), g, false, 1, false);
  EXPECT_EQ(y, (std::vector<double>{14.0 / 4, 4.0 / 2, -2.0 / 2, -4.0}));
  cx->avgpool(x.data(), y.data(), g, true, 1, false);  // padding cells counted
  EXPECT_EQ(y, (std::vector<double>{14.0 / 4, 4.0 / 4, -2.0 / 4, -4.0 / 4}));
}

TEST(GraphCompute, GatherRowsAndScatterAddMatchTheDefinition) {
  auto cx = make_cpu_compute<double>();
  const int64_t rows = 5, width = 3, reps = 2, count = 6;
  const std::vector<int64_t> idx = {4, 0, 2, 2, 4, 1};  // repeats add up in the adjoint
  const auto table = random_values(reps * rows * width, 11);
  const auto base = random_values(reps * count * width, 12);
  for (bool acc : {false, true}) {
    std::vector<double> out = base;
    cx->gather_rows(table.data(), rows * width, idx.data(), count, width, out.data(), reps, acc);
    for (int64_t r = 0; r < reps; ++r)
      for (int64_t i = 0; i < count; ++i)
        for (int64_t c = 0; c < width; ++c) {
          const size_t o = size_t((r * count + i) * width + c);
          const double want =
              table[size_t((r * rows + idx[size_t(i)]) * width + c)] + (acc ? base[o] : 0.0);
          EXPECT_EQ(out[o], want);
        }
  }
  // Shared table (stride 0): every rep reads the same rows.
  std::vector<double> shared(size_t(reps * count * width));
  cx->gather_rows(table.data(), 0, idx.data(), count, width, shared.data(), reps, false);
  for (int64_t i = 0; i < count * width; ++i)
    EXPECT_EQ(shared[size_t(count * width + i)], shared[size_t(i)]);
  // The adjoint: <gather(t), g> = <t, scatter(g)> for every t, checked entrywise.
  std::vector<double> acc_table = table;
  cx->scatter_add_rows(base.data(), idx.data(), count, width, acc_table.data(), rows * width, reps);
  for (int64_t r = 0; r < reps; ++r)
    for (int64_t row = 0; row < rows; ++row)
      for (int64_t c = 0; c < width; ++c) {
        double want = table[size_t((r * rows + row) * width + c)];
        for (int64_t i = 0; i < count; ++i)
          if (idx[size_t(i)] == row) want += base[size_t((r * count + i) * width + c)];
        EXPECT_NEAR(acc_table[size_t((r * rows + row) * width + c)], want, 1e-14);
      }
}

}  // namespace
}  // namespace hspec
