// Counter-based random numbers: the value at index i depends only on (seed, stream, i),
// so results do not depend on thread counts or on the order in which blocks are filled.
#pragma once
#include <cmath>
#include <cstdint>

namespace hspec::rng {

// SplitMix64 finaliser: a bijective 64-bit mix with good avalanche.
inline uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline uint64_t bits(uint64_t seed, uint64_t stream, uint64_t i) {
  return mix(mix(seed ^ mix(stream)) + i);
}

// Uniform in (0, 1], never 0 (Box-Muller takes its log).
inline double uniform(uint64_t seed, uint64_t stream, uint64_t i) {
  return (static_cast<double>(bits(seed, stream, i) >> 11) + 1.0) * 0x1.0p-53;
}

// Standard normal by Box-Muller; each index uses its own pair of uniforms.
inline double gaussian(uint64_t seed, uint64_t stream, uint64_t i) {
  const double u1 = uniform(seed, stream, 2 * i);
  const double u2 = uniform(seed, stream, 2 * i + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

inline double rademacher(uint64_t seed, uint64_t stream, uint64_t i) {
  return (bits(seed, stream, i) >> 63) ? 1.0 : -1.0;
}

}  // namespace hspec::rng
