// Helpers shared by the stochastic estimators (trace, density): products in chunks of the
// operator's widest block, per-purpose seeds, and the cancel check.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>

#include "hspec/operator.hpp"
#include "hspec/random.hpp"

namespace hspec {

// Y = C X for any number of columns: the operator takes at most max_block() at a time.
template <class T>
void apply_blocked(CurvatureOperator<T>& op, BlockView<const T> X, BlockView<T> Y) {
  const int64_t b = std::max<int64_t>(1, op.max_block());
  for (int64_t j = 0; j < X.cols; j += b) {
    const int64_t k = std::min(b, X.cols - j);
    op.apply(X.columns(j, k), Y.columns(j, k));
  }
}

// Distinct seeds for each purpose and round, all derived from the user's --seed, so the
// trace probes, the sketch and the density probes are independent of each other and of the
// Lanczos start block (which uses the seed itself).
inline uint64_t derived_seed(uint64_t seed, uint64_t purpose, uint64_t round) {
  return rng::bits(seed, 0x5eed0000ull + purpose, round);
}

inline bool cancelled(const std::atomic<bool>* c) {
  return c != nullptr && c->load();
}

}  // namespace hspec
