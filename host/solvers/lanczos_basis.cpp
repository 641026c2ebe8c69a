// Block Lanczos, part 1: the basis. Extending it by one block (products, two passes of
// classical Gram-Schmidt, a random replacement for a column that vanishes), the Rayleigh-Ritz
// step on the projected matrix, thick restarts, and the true residuals checked at the end.
// The run around it (stopping rule, probe rounds) is in lanczos.cpp.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "hspec/backends/cpu/blas.hpp"
#include "hspec/error.hpp"
#include "hspec/random.hpp"
#include "lanczos_solver.hpp"

namespace hspec::lanczos_detail {
namespace {

bool finite(const double* x, int64_t k) {
  for (int64_t i = 0; i < k; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}

}  // namespace

// x -= V[:, 0:base] (V[:, 0:base]^T x); coef receives the coefficients (base entries).
template <class T>
void Solver<T>::project(BlockView<T> x, int64_t base, double* coef) {
  if (base == 0) return;
  const BlockView<const T> basis = V_.columns(0, base);
  space_.gram(basis, x, coef, base);
  space_.update(x, basis, coef, base, -1.0, 1.0);
}

// Column k + c of the basis becomes a random unit vector orthogonal to V[:, 0 : k + c]:
// the Krylov space is exhausted or rank-deficient there, so we keep exploring elsewhere.
template <class T>
void Solver<T>::random_column(int64_t k, int64_t c) {
  const BlockView<T> x = V_.columns(k + c, 1);
  std::vector<double> coef(static_cast<size_t>(k + c));
  for (int attempt = 0; attempt < 8; ++attempt) {
    const uint64_t seed = rng::mix(opt_.seed ^ rng::mix(0xB10Cull + ++replacements_));
    space_.fill_random(x, Distribution::Gaussian, seed);
    double norms[3] = {0, 0, 0};
    space_.norms(x, &norms[0]);
    for (int pass = 1; pass <= 2; ++pass) {
      project(x, k + c, coef.data());
      space_.norms(x, &norms[pass]);
    }
    // Same acceptance rule as orth_column: the second pass must keep most of the norm.
    if (norms[2] > eps_ * norms[0] && norms[2] >= norms[1] / std::sqrt(2.0)) {
      const double s = 1.0 / norms[2];
      space_.scale_columns(x, &s);
      return;
    }
  }
  throw NumericalError("BlockLanczos: could not extend the basis with a random direction");
}

// Orthonormalises column c of W against V[:, 0 : k + c] (classical Gram-Schmidt, twice)
// into basis column k + c. Coefficients on the old basis V[:, 0:k] are corrections to the
// projection H; those on the new columns form R(:, c). Beyond `slots` the whole space is
// spanned: the column's remainder is rounding noise and is dropped.
template <class T>
void Solver<T>::orth_column(int64_t c, int64_t k, int64_t slots, double orig) {
  const BlockView<T> x = W_.columns(c, 1);
  const int64_t base = k + std::min(c, slots);
  std::vector<double> coef(static_cast<size_t>(base));
  double norms[2] = {0, 0};
  for (int pass = 0; pass < 2; ++pass) {
    project(x, base, coef.data());
    for (int64_t i = 0; i < base; ++i) {
      if (i < k)
        H_[i + c * m_max_] += coef[i];
      else
        R_[(i - k) + c * b_] += coef[i];
    }
    if (c < slots) space_.norms(x, &norms[pass]);
  }
  if (c >= slots) return;
  // Breakdown only when the second pass still removed most of the norm: the remainder is
  // then at the level of the first pass's rounding and would not stay orthogonal. A fixed
  // threshold such as 1e3 eps ||C|| would drop real remainders in fp32 (about 1e-4 ||C||)
  // and let Ritz values claim residuals they do not have.
  const double norm = norms[1];
  const double noise = eps_ * std::max(orig, norm_c_);
  if (std::isfinite(norm) && norm > noise && norm >= norms[0] / std::sqrt(2.0)) {
    const double s = 1.0 / norm;
    space_.scale_columns(x, &s);
    space_.copy(x, V_.columns(k + c, 1));
    R_[c + c * b_] = norm;
  } else {
    random_column(k, c);  // deflation: R(c, c) stays 0
  }
}

// Applies C to the residual block V[:, m : m + w), projects the product against the whole
// basis (no tridiagonal assumption, so the arrowhead left by a thick restart fills itself
// in) and orthonormalises the rest into the next residual block.
template <class T>
void Solver<T>::extend() {
  const int64_t j = m_, bj = w_, k = j + bj;
  const BlockView<T> w = W_.columns(0, bj);
  op_.apply(V_.columns(j, bj), w);
  applied_ += bj;
  std::vector<double> before(static_cast<size_t>(bj)), after(static_cast<size_t>(bj));
  space_.norms(w, before.data());
  if (!finite(before.data(), bj))
    throw NumericalError("BlockLanczos: the operator returned NaN/Inf");
  for (double v : before) norm_c_ = std::max(norm_c_, v);

  const BlockView<const T> basis = V_.columns(0, k);
  std::fill(H_.begin(), H_.end(), 0.0);
  space_.gram(basis, w, H_.data(), m_max_);
  space_.update(w, basis, H_.data(), m_max_, -1.0, 1.0);
  space_.norms(w, after.data());
  bool again = false;
  for (int64_t c = 0; c < bj; ++c) again |= after[c] < before[c] / std::sqrt(2.0);
  if (again) {  // DGKS: the product lost most of its norm, so the projection is inexact
    ++repeats_;
    std::vector<double> h2(static_cast<size_t>(k * bj));
    space_.gram(basis, w, h2.data(), k);
    space_.update(w, basis, h2.data(), k, -1.0, 1.0);
    for (int64_t c = 0; c < bj; ++c)
      for (int64_t i = 0; i < k; ++i) H_[i + c * m_max_] += h2[i + c * k];
  }

  const int64_t slots = std::min(b_, n_ - k);
  std::fill(R_.begin(), R_.end(), 0.0);
  for (int64_t c = 0; c < bj; ++c) orth_column(c, k, slots, before[c]);
  // A block narrowed near the end of the space (n - k < b) grows back with random columns.
  for (int64_t c = bj; c < slots; ++c) random_column(k, c);
  if (!finite(H_.data(), static_cast<int64_t>(H_.size())) ||
      !finite(R_.data(), static_cast<int64_t>(R_.size())))
    throw NumericalError("BlockLanczos: NaN/Inf in the projected matrix");

  // Column block j of T is V^T C V_j; rows above it are mirrored, the diagonal block is
  // symmetrised so syev sees an exactly symmetric matrix.
  for (int64_t c = 0; c < bj; ++c) {
    for (int64_t i = 0; i < j; ++i) t(i, j + c) = t(j + c, i) = H_[i + c * m_max_];
    for (int64_t d = 0; d < bj; ++d)
      t(j + d, j + c) = 0.5 * (H_[j + d + c * m_max_] + H_[j + c + d * m_max_]);
  }
  m_ = k;
  bw_ = bj;
  w_ = slots;
}

// Ritz pairs of T[0:m, 0:m]; the residual of pair i is ||R Y[m - bw : m, i]||, since
// C V = V T + V_res R E^T with E selecting the last extended block.
template <class T>
void Solver<T>::rayleigh_ritz() {
  const int64_t m = m_;
  Y_.assign(static_cast<size_t>(m * m), 0.0);
  for (int64_t k = 0; k < m; ++k)
    for (int64_t i = 0; i < m; ++i) Y_[i + k * m] = t(i, k);
  theta_.assign(static_cast<size_t>(m), 0.0);
  blas::syev(m, Y_.data(), m, theta_.data());
  if (!finite(theta_.data(), m)) throw NumericalError("BlockLanczos: NaN/Inf Ritz values");
  res_.assign(static_cast<size_t>(m), 0.0);
  for (int64_t i = 0; i < m; ++i) {
    double ss = 0;
    for (int64_t r = 0; r < w_; ++r) {
      double z = 0;
      for (int64_t c = 0; c < bw_; ++c) z += R_[r + c * b_] * Y_[(m - bw_ + c) + i * m];
      ss += z * z;
    }
    res_[i] = std::sqrt(ss);
  }
}

// Keeps the kb smallest and kt largest Ritz vectors as the new basis start, followed by the
// residual block; T becomes diag(theta) there and the coupling rows come back through the
// projection when the residual block is extended.
template <class T>
void Solver<T>::restart(int64_t kb, int64_t kt, bool fresh) {
  const int64_t m = m_, r = kb + kt;
  std::vector<double> yk(static_cast<size_t>(m * r));
  std::vector<double> kept;
  for (int64_t q = 0; q < r; ++q) {
    const int64_t idx = q < kb ? q : m - kt + (q - kb);
    std::copy_n(&Y_[idx * m], m, &yk[q * m]);
    kept.push_back(theta_[idx]);
  }
  if (!S_) S_ = space_.allocate(n_, m_max_ - b_);
  space_.update(S_.columns(0, r), V_.columns(0, m), yk.data(), m, 1.0, 0.0);
  space_.copy(S_.columns(0, r), V_.columns(0, r));
  if (fresh) {
    // A probe round: a random block orthogonal to the kept vectors replaces the residual
    // block, so the new Krylov space reaches eigenvectors the old one could not hold. The
    // kept vectors' small residuals outside the new basis are why the final residuals are
    // recomputed from scratch.
    w_ = std::min(b_, n_ - r);
    for (int64_t c = 0; c < w_; ++c) random_column(r, c);
  } else {
    // Through W: the residual block may overlap its destination.
    space_.copy(V_.columns(m, w_), W_.columns(0, w_));
    space_.copy(W_.columns(0, w_), V_.columns(r, w_));
  }
  std::fill(T_.begin(), T_.end(), 0.0);
  for (int64_t q = 0; q < r; ++q) t(q, q) = kept[q];
  m_ = r;
}

// res_[idx[c]] = ||C u_c - theta u_c||, applying C in blocks of at most b columns (W_).
template <class T>
void Solver<T>::true_residuals(const Matrix<T>& u, const std::vector<int64_t>& idx) {
  const int64_t q = static_cast<int64_t>(idx.size());
  for (int64_t c0 = 0; c0 < q; c0 += b_) {
    const int64_t w = std::min(b_, q - c0);
    const BlockView<T> cu = W_.columns(0, w);
    op_.apply(u.columns(c0, w), cu);
    applied_ += w;
    std::vector<double> d(static_cast<size_t>(w * w), 0.0), nr(static_cast<size_t>(w));
    for (int64_t c = 0; c < w; ++c) d[c + c * w] = theta_[idx[c0 + c]];
    space_.update(cu, u.columns(c0, w), d.data(), w, -1.0, 1.0);
    space_.norms(cu, nr.data());
    if (!finite(nr.data(), w))
      throw NumericalError("BlockLanczos: NaN/Inf in the final residual check");
    for (int64_t c = 0; c < w; ++c) res_[idx[c0 + c]] = nr[c];
  }
}

// The reported values: the wanted Ritz pairs of the current basis with their true residuals,
// gaps, converged flags and (when asked) vectors. Costs one product per value unless the run
// was interrupted or the basis spans the whole space.
template <class T>
void Solver<T>::finish(LanczosResult<T>& out, double rel, double scale) {
  const int64_t m = m_, kt = std::min(top_, m), kb = std::min(bottom_, m);
  std::vector<int64_t> top_idx, bottom_idx;
  for (int64_t i = 0; i < kt; ++i) top_idx.push_back(m - 1 - i);
  for (int64_t i = 0; i < kb; ++i) bottom_idx.push_back(i);
  auto vectors = [&](const std::vector<int64_t>& idx) {
    const int64_t q = static_cast<int64_t>(idx.size());
    std::vector<double> y(static_cast<size_t>(m * q));
    for (int64_t c = 0; c < q; ++c) std::copy_n(&Y_[idx[c] * m], m, &y[c * m]);
    Matrix<T> u = space_.allocate(n_, q);
    space_.update(u.view(), V_.columns(0, m), y.data(), m, 1.0, 0.0);
    return u;
  };
  Matrix<T> top_u, bottom_u;
  // Interrupted: report the recurrence's estimates rather than spend more products.
  const bool check = w_ > 0 && !out.interrupted;
  if (opt_.want_vectors || check) {
    top_u = vectors(top_idx);
    bottom_u = vectors(bottom_idx);
  }
  // Unless the whole space is spanned (Ritz pairs exact), replace the recurrence's residual
  // estimates by true residuals ||C u - theta u||: at rounding level the estimate can fall
  // far below the truth, and the converged flags must not rest on it.
  if (check) {
    true_residuals(top_u, top_idx);
    true_residuals(bottom_u, bottom_idx);
  }
  // An estimate is not a proof, so an interrupted run claims no converged value.
  auto conv = [&](int64_t i) { return !out.interrupted && res_[i] <= rel * scale; };
  // The distance to the rest of the spectrum as far as the other Ritz values bound it (each
  // has an eigenvalue within its residual); RitzValue::gap says what it is worth.
  auto gap = [&](int64_t i) {
    double g = std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < m; ++j)
      if (j != i) g = std::min(g, std::abs(theta_[i] - theta_[j]) - res_[j]);
    return !out.interrupted && std::isfinite(g) && g > res_[i] ? g : 0.0;
  };
  out.top.clear();
  out.bottom.clear();
  for (int64_t i : top_idx) out.top.push_back({theta_[i], res_[i], conv(i), gap(i)});
  for (int64_t i : bottom_idx) out.bottom.push_back({theta_[i], res_[i], conv(i), gap(i)});
  if (opt_.want_vectors) {
    out.top_vectors = top_u;
    out.bottom_vectors = bottom_u;
  }
  out.converged = true;
  for (const auto& v : out.top) out.converged &= v.converged;
  for (const auto& v : out.bottom) out.converged &= v.converged;
}

HSPEC_LANCZOS_SOLVER_MEMBERS(float)
HSPEC_LANCZOS_SOLVER_MEMBERS(double)

}  // namespace hspec::lanczos_detail
