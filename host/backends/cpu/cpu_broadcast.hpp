// Iteration over numpy-broadcast operands for the CPU compute backend: the output box cut
// into runs of consecutive elements (adjacent axes with the same broadcast pattern merged),
// visited serially or split over OpenMP threads. The split depends on the shapes only, and
// elementwise maps give the same results however the runs are split.
#pragma once
#include <algorithm>
#include <cstdint>

#include "hspec/graph/compute.hpp"

// A static-schedule parallel loop when built with OpenMP and cond holds; a plain loop otherwise.
#if defined(_OPENMP)
#define HSPEC_OMP_PRAGMA(x) _Pragma(#x)
#define HSPEC_OMP_FOR_IF(cond) HSPEC_OMP_PRAGMA(omp parallel for schedule(static) if (cond))
#else
#define HSPEC_OMP_FOR_IF(cond)
#endif

namespace hspec::cpu_broadcast {

// Below this many elements a pass is not worth waking threads for.
constexpr int64_t kParallelMin = 1 << 15;
// The most pieces one pass is cut into (a few per thread balances a busy machine).
constexpr int64_t kMaxPieces = 64;

// Row-major strides of s, with 0 where the axis is broadcast against `full`.
inline Shape broadcast_strides(const Shape& s, const Shape& full) {
  Shape st(s.size(), 0);
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = (s[i] == 1 && full[i] != 1) ? 0 : acc;
    acc *= s[i];
  }
  return st;
}

// The merged axes of a box `full` with two operands a, b broadcast into it: runs of `run`
// output elements, operand strides ta/tb per axis (the last axis is the run).
struct Runs {
  int rank = 0;
  int64_t ext[kMaxRank] = {0}, ta[kMaxRank] = {0}, tb[kMaxRank] = {0};
  int64_t run = 1, count = 0, total = 0;

  Runs(const Shape& full, const Shape& sa, const Shape& sb) {
    total = shape_numel(full);
    if (total == 0) return;
    const Shape ta0 = broadcast_strides(sa, full), tb0 = broadcast_strides(sb, full);
    for (size_t i = 0; i < full.size(); ++i) {
      if (full[i] == 1) continue;  // extent-1 axes contribute nothing
      if (rank > 0 && ta[rank - 1] == ta0[i] * full[i] && tb[rank - 1] == tb0[i] * full[i]) {
        ext[rank - 1] *= full[i];  // contiguous with the previous axis in both operands
        ta[rank - 1] = ta0[i];
        tb[rank - 1] = tb0[i];
        continue;
      }
      ext[rank] = full[i];
      ta[rank] = ta0[i];
      tb[rank] = tb0[i];
      ++rank;
    }
    run = rank == 0 ? 1 : ext[rank - 1];
    count = total / run;
  }

  // inner(o, ia, ib, len, sta, stb) for the runs q0 <= q < q1, in order.
  template <class Inner>
  void visit(int64_t q0, int64_t q1, Inner& inner) const {
    if (q0 >= q1) return;
    if (rank == 0) {
      inner(int64_t(0), int64_t(0), int64_t(0), int64_t(1), int64_t(0), int64_t(0));
      return;
    }
    int64_t idx[kMaxRank] = {0};
    int64_t oa = 0, ob = 0;
    int64_t q = q0;
    for (int ax = rank - 1; ax-- > 0;) {  // q0 as an index over the outer axes
      idx[ax] = q % ext[ax];
      q /= ext[ax];
      oa += idx[ax] * ta[ax];
      ob += idx[ax] * tb[ax];
    }
    const int64_t sta = ta[rank - 1], stb = tb[rank - 1];
    for (q = q0; q < q1; ++q) {
      inner(q * run, oa, ob, run, sta, stb);
      for (int ax = rank - 1; ax-- > 0;) {  // odometer over the outer axes
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
};

// Calls inner(o, ia, ib, len, sta, stb) over all of `full` as in Runs::visit, threaded when
// the box is big: many runs are dealt out in contiguous groups, a few long runs are cut.
// inner must touch only output elements [o, o + len), so pieces are independent.
template <class Inner>
void for_each_broadcast(const Shape& full, const Shape& sa, const Shape& sb, Inner inner) {
  const Runs r(full, sa, sb);
  if (r.total == 0) return;
  const bool parallel = r.total >= kParallelMin;
  if (!parallel) {
    r.visit(0, r.count, inner);
    return;
  }
  if (r.count >= kMaxPieces / 4) {
    const int64_t groups = std::min(r.count, kMaxPieces);
    HSPEC_OMP_FOR_IF(parallel)
    for (int64_t g = 0; g < groups; ++g) {
      Inner local = inner;
      r.visit(r.count * g / groups, r.count * (g + 1) / groups, local);
    }
    return;
  }
  // Few long runs: cut each into pieces of consecutive elements.
  const int64_t pieces = std::max<int64_t>(1, std::min(kMaxPieces / r.count, r.run / 4096));
  HSPEC_OMP_FOR_IF(parallel)
  for (int64_t g = 0; g < r.count * pieces; ++g) {
    const int64_t q = g / pieces, part = g % pieces;
    const int64_t lo = r.run * part / pieces, hi = r.run * (part + 1) / pieces;
    int64_t base_a = 0, base_b = 0;
    auto locate = [&](int64_t, int64_t ia, int64_t ib, int64_t, int64_t, int64_t) {
      base_a = ia;
      base_b = ib;
    };
    r.visit(q, q + 1, locate);
    const int64_t sta = r.rank ? r.ta[r.rank - 1] : 0, stb = r.rank ? r.tb[r.rank - 1] : 0;
    Inner local = inner;
    local(q * r.run + lo, base_a + lo * sta, base_b + lo * stb, hi - lo, sta, stb);
  }
}

}  // namespace hspec::cpu_broadcast
