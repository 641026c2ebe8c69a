// BlockLanczos, part 2: the run (part 1, the basis, is lanczos_basis.cpp). Thick-restart
// block Lanczos with full reorthogonalisation, both spectrum ends at once. Vectors are touched only through VectorSpace (they may live on a device); the
// projected matrix, Gram results and coefficients are small host matrices in double.
//
// Defaults: basis m_max = max(5(top+bottom) + 2b, top+bottom + 4b, 40), clamped to
// [top+bottom+b, n]; budget = 100 m_max + 1000 operator columns. The first block is always
// applied, so at least b products are spent even under a smaller budget. The basis is
// generous because memory is cheap next to products: with 2(top+bottom) + 2b columns the
// near-zero cluster at the bottom of a Fashion-MNIST MLP's Gauss-Newton matrix (12,730
// parameters) was still unconverged after 3200 products; with 60 it converged.
//
// Stopping: convergence is checked after every block, so a loose tolerance stops as soon as
// it is met; the wanted values' true residuals are checked once, before the one probe round
// that looks for missed copies, and are what is reported unless the probe changes them.
#include "hspec/solvers/lanczos.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "hspec/error.hpp"
#include "lanczos_solver.hpp"

namespace hspec {
namespace lanczos_detail {

template <class T>
LanczosResult<T> Solver<T>::run() {
  if (op_.where() != space_.where())
    throw Error("BlockLanczos: the operator and the vector space live in different memory");
  n_ = op_.dim();
  if (n_ <= 0) throw Error("BlockLanczos: the operator has dimension 0");
  if (opt_.top < 0 || opt_.bottom < 0 || opt_.top + opt_.bottom == 0)
    throw Error("BlockLanczos: ask for at least one eigenvalue (top + bottom >= 1)");
  if (opt_.max_basis < 0 || opt_.max_products < 0 || !(opt_.tol >= 0))
    throw Error("BlockLanczos: max_basis, max_products and tol must be >= 0");
  const int64_t top = top_ = std::min<int64_t>(opt_.top, n_);
  const int64_t bottom = bottom_ = std::min<int64_t>(opt_.bottom, n_);
  b_ = std::max<int64_t>(1, std::min<int64_t>({opt_.block, n_, op_.max_block()}));
  const int64_t want = top + bottom;
  m_max_ = lanczos_basis_columns(opt_, n_, op_.max_block());
  const int64_t total_budget = opt_.max_products > 0 ? opt_.max_products : 100 * m_max_ + 1000;
  // The final check of the reported values' true residuals costs one product each.
  const int64_t budget = std::max(b_, total_budget - want);

  V_ = space_.allocate(n_, m_max_ + b_);
  W_ = space_.allocate(n_, b_);
  T_.assign(static_cast<size_t>(m_max_ * m_max_), 0.0);
  H_.assign(static_cast<size_t>(m_max_ * b_), 0.0);
  R_.assign(static_cast<size_t>(b_ * b_), 0.0);
  const int64_t p0 = op_.products();
  auto used = [&] { return std::max(op_.products() - p0, applied_); };

  // Random start block, orthonormalised by the same column routine (no old basis).
  space_.fill_random(W_.view(), Distribution::Gaussian, opt_.seed);
  std::vector<double> start(static_cast<size_t>(b_));
  space_.norms(W_.view(), start.data());
  for (int64_t c = 0; c < b_; ++c) orth_column(c, 0, b_, start[c]);
  m_ = 0;
  w_ = b_;

  // Spectra's rule res <= tol * max(eps^(2/3), |theta|), with both scales taken as the
  // spectral scale ||C|| (estimated by the extreme Ritz values) and tol floored at 100 eps:
  // a Hessian's small eigenvalues (zeros, clusters near zero) cannot reach a residual
  // relative to themselves, while |theta - lambda| <= res <= tol ||C|| is the accuracy users
  // compare against (e.g. "to 1e-6 of lambda_max").
  const double rel = std::max(opt_.tol, 100.0 * eps_);
  auto scale = [&] { return std::max(std::abs(theta_.front()), std::abs(theta_.back())); };
  auto converged = [&](int64_t i) { return res_[i] <= rel * scale(); };
  LanczosResult<T> out;
  int64_t extra = 0;              // 1 in probe rounds: one more value per end must converge
  std::vector<double> confirmed;  // the wanted values when they last converged
  auto cancelled = [&] { return opt_.cancel && opt_.cancel->load(std::memory_order_relaxed); };
  // Converged values among the bottom + extra smallest and top + extra largest Ritz values of
  // the last Rayleigh-Ritz step; true when that is all of them.
  int64_t conv_b = 0, conv_t = 0;
  auto all_converged = [&] {
    const int64_t m = static_cast<int64_t>(theta_.size());
    const int64_t xt = std::min(top + extra, m), xb = std::min(bottom + extra, m);
    conv_b = conv_t = 0;
    for (int64_t i = 0; i < xb; ++i) conv_b += converged(i);
    for (int64_t i = m - xt; i < m; ++i) conv_t += converged(i);
    return conv_b == xb && conv_t == xt;
  };
  auto report = [&](bool ritz) {
    if (!opt_.progress) return;
    Progress p;
    p.phase = "eigenvalues";
    p.products = used();
    p.budget = total_budget;
    if (ritz && !theta_.empty()) {
      const int64_t m = static_cast<int64_t>(theta_.size());
      const int64_t kt = std::min(top, m), kb = std::min(bottom, m);
      p.has_ritz = true;
      p.lowest = theta_.front();
      p.highest = theta_.back();
      p.wanted = kt + kb;
      for (int64_t i = 0; i < kb; ++i) p.converged += converged(i);
      for (int64_t i = m - kt; i < m; ++i) p.converged += converged(i);
    }
    opt_.progress->report(p);
  };
  report(false);
  bool have_ritz = false;
  for (;;) {
    bool out_of_budget = false, done = false;
    // Cancellation is honoured only after at least one extension since the last (re)start:
    // rayleigh_ritz needs the residual block R of the current basis to estimate residuals.
    int64_t extended = 0;
    // Convergence is checked as the basis grows, not only when it is full: the Rayleigh-Ritz
    // step costs O(m^3) host flops, nothing next to a product, and a loose tolerance is
    // often met long before the basis fills. Checks thin out (every m/32 columns) only for
    // bases large enough that the m^3 would start to count.
    int64_t next_check = std::min(n_, top + bottom + 2 * extra);
    int64_t ritz_at = -1;  // basis size of the last Rayleigh-Ritz step in this cycle
    while (w_ > 0 && m_ + w_ <= m_max_) {
      if (m_ > 0 && used() + w_ > budget) {
        out_of_budget = true;
        break;
      }
      if (extended > 0 && cancelled()) break;
      extend();
      ++extended;
      if (m_ >= next_check) {
        rayleigh_ritz();
        ritz_at = m_;
        have_ritz = true;
        done = all_converged();
        next_check = m_ + std::max<int64_t>(1, m_ / 32);
      }
      report(have_ritz);
      if (done) break;
    }
    if (ritz_at != m_) {
      rayleigh_ritz();
      have_ritz = true;
      done = all_converged();
    }
    if (extended > 0 && cancelled()) {
      out.interrupted = true;
      break;
    }
    const int64_t m = m_, kt = std::min(top, m), kb = std::min(bottom, m);
    std::vector<double> wanted(theta_.begin(), theta_.begin() + kb);
    wanted.insert(wanted.end(), theta_.end() - kt, theta_.end());
    bool same = confirmed.size() == wanted.size();
    for (size_t i = 0; same && i < wanted.size(); ++i)
      same = std::abs(wanted[i] - confirmed[i]) <= 2 * rel * scale();
    if (done && same) break;  // the probe found nothing new: the values checked before stand
    // A probe round needs room for a fresh block and, in the budget, for a full basis and
    // another check of the values.
    if (done && opt_.probe_rounds > 0 && w_ > 0 && kb + kt + b_ <= m_max_ &&
        used() + m_max_ + want <= budget) {
      // Check these values now, before the probe: restarting from a fresh block drops the
      // kept vectors' residual directions from the recurrence, so their residuals after
      // the probe would be estimates that can fall below the truth by up to the tolerance.
      finish(out, rel, scale());
      if (!out.converged || out.probes >= opt_.probe_rounds) break;
      confirmed = wanted;
      extra = 1;
      restart(kb, kt, true);
      ++out.probes;
      continue;
    }
    if (done || w_ == 0 || out_of_budget || used() + w_ > budget) {
      // A probe cut short by the budget changes nothing: the values checked before stand.
      if (done || confirmed.empty()) finish(out, rel, scale());
      break;
    }

    // Thick restart: keep the wanted vectors plus 2/3 of the spare room (all of it once as
    // many values have converged, as in Spectra), split between the ends. Keeping most of
    // the basis beat Spectra's nev + min(nconv, spare / 2) by about 2x in products on
    // clustered spectra (1-D Laplacian, random dense, Clement; block sizes 1 to 8).
    const int64_t spare = m_max_ - want - b_;
    const int64_t more = std::max(spare * 2 / 3, std::min(conv_b + conv_t, spare));
    const int64_t eb = more / 2;
    restart(kb + eb, kt + (more - eb), false);
    ++out.restarts;
  }
  if (out.interrupted) finish(out, rel, scale());
  out.products = op_.products() - p0;
  out.reorth_repeats = repeats_;
  return out;
}

template LanczosResult<float> Solver<float>::run();
template LanczosResult<double> Solver<double>::run();

}  // namespace lanczos_detail

using lanczos_detail::Solver;

int64_t lanczos_basis_columns(const LanczosOptions& opt, int64_t n, int64_t max_block) {
  if (n <= 0) return 0;
  const int64_t b = std::max<int64_t>(1, std::min<int64_t>({opt.block, n, max_block}));
  const int64_t want =
      std::min<int64_t>(std::max(opt.top, 0), n) + std::min<int64_t>(std::max(opt.bottom, 0), n);
  const int64_t m =
      opt.max_basis > 0 ? opt.max_basis : std::max<int64_t>({5 * want + 2 * b, want + 4 * b, 40});
  return std::min(n, std::max(m, want + b));
}

template <class T>
BlockLanczos<T>::BlockLanczos(CurvatureOperator<T>& op, VectorSpace<T>& space)
    : op_(op), space_(space) {}

template <class T>
LanczosResult<T> BlockLanczos<T>::compute(const LanczosOptions& opt) {
  return Solver<T>(op_, space_, opt).run();
}

template class BlockLanczos<float>;
template class BlockLanczos<double>;

}  // namespace hspec
