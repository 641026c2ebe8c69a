// Stochastic Lanczos quadrature: the probes' Lanczos recurrences advance in lockstep so that
// each step costs one batched product, each with full reorthogonalisation against its own
// basis (the basis of probe j is every probes-th column of one shared block, a strided view).
#include "hspec/solvers/density.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

#include "hspec/backends/cpu/blas.hpp"
#include "hspec/error.hpp"
#include "hspec/solvers/estimator_util.hpp"

namespace hspec {

template <class T>
Density slq_density(CurvatureOperator<T>& op, VectorSpace<T>& space, const DensityOptions& opt) {
  if (opt.probes < 1 || opt.probes > 4096) throw UsageError("--probes must be in [1, 4096]");
  if (opt.steps < 1 || opt.steps > 100000) throw UsageError("--steps must be in [1, 100000]");
  const int64_t n = op.dim(), k = opt.probes;
  const int64_t steps = std::min<int64_t>(opt.steps, n);
  const int64_t p0 = op.products();

  // Column t*k + j holds the t-th Lanczos vector of probe j.
  Matrix<T> basis = space.allocate(n, k * (steps + 1));
  Matrix<T> w = space.allocate(n, k);
  space.fill_random(basis.columns(0, k), Distribution::Rademacher, derived_seed(opt.seed, 3, 0));
  std::vector<double> nrm(k), inv(k);
  space.norms(basis.columns(0, k), nrm.data());
  for (int64_t j = 0; j < k; ++j) inv[j] = 1.0 / nrm[j];
  space.scale_columns(basis.columns(0, k), inv.data());

  std::vector<std::vector<double>> alpha(k), beta(k);
  std::vector<double> scale(k, 0.0);
  std::vector<bool> active(k, true);
  std::vector<double> c(steps + 1), c2(steps + 1);
  // A recurrence whose next beta is this small relative to the entries so far has found an
  // invariant subspace: its quadrature is exact and it stops (its column then stays zero).
  const double breakdown = 1e3 * std::numeric_limits<T>::epsilon();
  Density d;
  for (int64_t t = 0; t < steps; ++t) {
    if (cancelled(opt.cancel)) {
      d.interrupted = true;
      break;
    }
    apply_blocked<T>(op, basis.columns(t * k, k), w.view());
    if (opt.progress) {
      Progress p;
      p.phase = "density";
      p.products = op.products() - p0;
      p.budget = steps * k;
      opt.progress->report(p);
    }
    bool any = false;
    for (int64_t j = 0; j < k; ++j) {
      if (!active[j]) continue;
      const BlockView<T> vj(basis.data() + j * n, n, t + 1, k * n);
      const BlockView<T> wj = w.columns(j, 1);
      // Two passes of classical Gram-Schmidt against all of probe j's basis: the three-term
      // recurrence is the first pass's last two coefficients.
      space.gram(vj, wj, c.data(), t + 1);
      space.update(wj, vj, c.data(), t + 1, -1.0, 1.0);
      space.gram(vj, wj, c2.data(), t + 1);
      space.update(wj, vj, c2.data(), t + 1, -1.0, 1.0);
      const double a = c[t] + c2[t];
      double b = 0;
      space.norms(wj, &b);
      if (!std::isfinite(a) || !std::isfinite(b))
        throw NumericalError("density: non-finite value in a product");
      alpha[j].push_back(a);
      scale[j] = std::max({scale[j], std::fabs(a), b});
      if (t + 1 == steps) continue;
      if (b <= breakdown * scale[j]) {
        active[j] = false;
        continue;
      }
      beta[j].push_back(b);
      const double ib = 1.0 / b;
      space.scale_columns(wj, &ib);
      space.copy(wj, basis.columns((t + 1) * k + j, 1));
      any = true;
    }
    d.steps = static_cast<int>(t + 1);
    if (!any) break;
  }

  // Nodes and weights from each recurrence's tridiagonal matrix.
  std::vector<std::pair<double, double>> nw;
  int used_probes = 0;
  for (int64_t j = 0; j < k; ++j) {
    const int64_t len = static_cast<int64_t>(alpha[j].size());
    if (len == 0) continue;
    ++used_probes;
    std::vector<double> tm(len * len, 0.0), theta(len);
    for (int64_t i = 0; i < len; ++i) {
      tm[i + i * len] = alpha[j][i];
      if (i + 1 < len) tm[i + 1 + i * len] = tm[i + (i + 1) * len] = beta[j][i];
    }
    blas::syev(len, tm.data(), len, theta.data());
    int64_t neg = 0;
    double below = 0;
    for (int64_t i = 0; i < len; ++i) {
      const double wi = tm[i * len] * tm[i * len];
      nw.emplace_back(theta[i], wi);
      if (theta[i] < 0) ++neg, below += wi;
    }
    // 0 lies between nodes neg-1 and neg: F(x_{neg-1}) >= below - w_{neg-1}, and
    // F(x_neg) <= below + w_neg.
    d.negative_lo += below - (neg > 0 ? tm[(neg - 1) * len] * tm[(neg - 1) * len] : 0.0);
    d.negative_hi += below + (neg < len ? tm[neg * len] * tm[neg * len] : 0.0);
  }
  std::sort(nw.begin(), nw.end());
  for (const auto& p : nw) {
    d.nodes.push_back(p.first);
    d.weights.push_back(p.second / std::max(used_probes, 1));
  }
  d.products = op.products() - p0;
  d.probes = used_probes;
  d.negative_lo /= std::max(used_probes, 1);
  d.negative_hi /= std::max(used_probes, 1);
  broaden(d);
  return d;
}

Density density_from_eigenvalues(const std::vector<double>& eigenvalues) {
  Density d;
  d.nodes = eigenvalues;
  std::sort(d.nodes.begin(), d.nodes.end());
  d.weights.assign(d.nodes.size(), d.nodes.empty() ? 0.0 : 1.0 / d.nodes.size());
  d.probes = 0;
  d.negative_lo = d.negative_hi = negative_mass(d);
  broaden(d);
  return d;
}

void broaden(Density& d, double rel_width, int points) {
  d.grid.clear();
  d.values.clear();
  if (d.nodes.empty() || points < 2) return;
  const auto [lo_it, hi_it] = std::minmax_element(d.nodes.begin(), d.nodes.end());
  const double lo = *lo_it, hi = *hi_it;
  double sigma = rel_width * (hi - lo);
  if (!(sigma > 0)) sigma = std::max(1e-12, rel_width * std::fabs(hi));
  d.sigma = sigma;
  const double a = lo - 5 * sigma, b = hi + 5 * sigma;
  const double norm = 1.0 / (sigma * std::sqrt(2 * 3.14159265358979323846));
  for (int i = 0; i < points; ++i) {
    const double x = a + (b - a) * i / (points - 1);
    double v = 0;
    for (size_t j = 0; j < d.nodes.size(); ++j) {
      const double z = (x - d.nodes[j]) / sigma;
      if (std::fabs(z) < 40) v += d.weights[j] * norm * std::exp(-0.5 * z * z);
    }
    d.grid.push_back(x);
    d.values.push_back(v);
  }
}

double negative_mass(const Density& d) {
  double neg = 0, all = 0;
  for (size_t i = 0; i < d.nodes.size(); ++i) {
    all += d.weights[i];
    if (d.nodes[i] < 0) neg += d.weights[i];
  }
  return all > 0 ? neg / all : 0.0;
}

double wasserstein1(const std::vector<double>& na, const std::vector<double>& wa,
                    const std::vector<double>& nb, const std::vector<double>& wb) {
  if (na.size() != wa.size() || nb.size() != wb.size())
    throw Error("wasserstein1: nodes and weights differ in length");
  const double sa = std::accumulate(wa.begin(), wa.end(), 0.0);
  const double sb = std::accumulate(wb.begin(), wb.end(), 0.0);
  if (!(sa > 0) || !(sb > 0)) throw Error("wasserstein1: empty measure");
  // Signed events: +w/sa from a, -w/sb from b; W1 is the integral of |running sum|.
  std::vector<std::pair<double, double>> ev;
  for (size_t i = 0; i < na.size(); ++i) ev.emplace_back(na[i], wa[i] / sa);
  for (size_t i = 0; i < nb.size(); ++i) ev.emplace_back(nb[i], -wb[i] / sb);
  std::sort(ev.begin(), ev.end());
  double cdf = 0, w1 = 0;
  for (size_t i = 0; i + 1 < ev.size(); ++i) {
    cdf += ev[i].second;
    w1 += std::fabs(cdf) * (ev[i + 1].first - ev[i].first);
  }
  return w1;
}

template Density slq_density<float>(CurvatureOperator<float>&, VectorSpace<float>&,
                                    const DensityOptions&);
template Density slq_density<double>(CurvatureOperator<double>&, VectorSpace<double>&,
                                     const DensityOptions&);

}  // namespace hspec
