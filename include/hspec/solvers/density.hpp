// Spectral density by stochastic Lanczos quadrature (SLQ), its Gaussian-broadened curve and
// the Wasserstein-1 distance between discrete spectral measures.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "hspec/analysis/progress.hpp"
#include "hspec/operator.hpp"
#include "hspec/space.hpp"

namespace hspec {

struct DensityOptions {
  int probes = 8;  // independent Rademacher starts, run in lockstep as one block
  int steps = 80;  // Lanczos steps per probe (capped at the dimension)
  uint64_t seed = 0;
  const std::atomic<bool>* cancel = nullptr;  // stop between steps when it becomes true
  ProgressSink* progress = nullptr;           // told after every step (phase "density")
};

// A discrete spectral measure: nodes (ascending) with weights summing to 1, approximating
// (1/n) sum_i delta(lambda_i), plus its broadened curve on a grid.
struct Density {
  std::vector<double> nodes, weights;
  std::vector<double> grid, values;  // values[i] = sum_j w_j N(grid[i]; node_j, sigma^2)
  double sigma = 0;                  // width of the Gaussian broadening
  int64_t products = 0;              // operator columns used
  int probes = 0;
  int steps = 0;  // longest recurrence run (shorter ones broke down: exact invariant space)
  bool interrupted = false;
  // Bracket of the fraction of negative eigenvalues that the quadratures prove (Chebyshev-
  // Markov-Stieltjes: for Gauss nodes x_1 < ... < x_m, sum_{k<i} w_k <= F(x_i) <= sum_{k<=i}
  // w_k), averaged over probes: the node nearest zero on either side is undecided. A
  // spectrum with a huge cluster at zero leaves a wide bracket; exact mode: lo = hi.
  double negative_lo = 0, negative_hi = 0;
};

// Bytes slq_density allocates in the vector space: the probes' bases and one product block.
inline double density_bytes(int64_t n, int probes, int steps, size_t elem) {
  const double s = static_cast<double>(std::min<int64_t>(steps, n));
  return static_cast<double>(elem) * static_cast<double>(n) * probes * (s + 2);
}

// SLQ (Ubaru, Chen, Saad 2017; the "density" of PyHessian): `probes` Lanczos recurrences
// from normalised Rademacher vectors, each step one batched product of all of them, with
// full reorthogonalisation of each recurrence against its own basis. Each tridiagonal
// T = U diag(theta) U^T gives nodes theta and weights U(0, :)^2 / probes.
template <class T>
Density slq_density(CurvatureOperator<T>& op, VectorSpace<T>& space, const DensityOptions& opt);

// The measure with unit weights 1/n on the given eigenvalues (exact mode).
Density density_from_eigenvalues(const std::vector<double>& eigenvalues);

// Fills grid/values/sigma: sigma = rel_width * (max node - min node) (an absolute floor of
// 1e-12 for a single point), `points` grid points over [min - 5 sigma, max + 5 sigma].
void broaden(Density& d, double rel_width = 0.01, int points = 512);

// Fraction of the measure's mass on negative nodes.
double negative_mass(const Density& d);

// W1 = integral |F_a(x) - F_b(x)| dx between two discrete measures (nodes in any order,
// weights each summing to 1, normalised here).
double wasserstein1(const std::vector<double>& na, const std::vector<double>& wa,
                    const std::vector<double>& nb, const std::vector<double>& wb);

}  // namespace hspec
