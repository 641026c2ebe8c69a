// exact_spectrum: dense curvature matrix from products with identity blocks, then a dense
// symmetric eigensolver (LAPACK dsyevd here, cuSOLVER syevd from the CUDA backend).
#include "hspec/solvers/exact.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "hspec/backends/cpu/blas.hpp"
#include "hspec/error.hpp"

namespace hspec {

uint64_t exact_bytes(int64_t n) {
  // The matrix (overwritten by eigenvectors), a copy kept for the residuals, and dsyevd's
  // workspace of about 2n^2 doubles.
  const uint64_t nn = static_cast<uint64_t>(n) * static_cast<uint64_t>(n);
  return 4 * nn * sizeof(double);
}

SymmetricEigensolver lapack_eigensolver() {
  return {"LAPACK dsyevd",
          [](int64_t n, double* a, int64_t lda, double* w) { blas::syev(n, a, lda, w); }};
}

template <class T>
ExactResult exact_spectrum(CurvatureOperator<T>& op, VectorSpace<T>& space, int top, int bottom,
                           double tol, uint64_t max_bytes, const SymmetricEigensolver& solver) {
  const int64_t n = op.dim();
  if (n <= 0) throw Error("exact mode: the operator has dimension 0");
  if (exact_bytes(n) > max_bytes) {
    throw UsageError("exact mode needs about " + std::to_string(exact_bytes(n) >> 20) +
                     " MiB for " + std::to_string(n) + " parameters, more than the " +
                     std::to_string(max_bytes >> 20) +
                     " MiB allowed (--max-memory); use Lanczos instead of --exact");
  }
  const int64_t b = std::max<int64_t>(1, std::min(op.max_block(), n));
  const int64_t p0 = op.products();
  std::vector<double> c(static_cast<size_t>(n * n));
  std::vector<T> host(static_cast<size_t>(n * b));
  Matrix<T> e = space.allocate(n, b), y = space.allocate(n, b);
  for (int64_t j0 = 0; j0 < n; j0 += b) {
    const int64_t k = std::min(b, n - j0);
    std::fill(host.begin(), host.end(), T(0));
    for (int64_t j = 0; j < k; ++j) host[(j0 + j) + j * n] = T(1);
    space.from_host(host.data(), n, e.columns(0, k));
    op.apply(e.columns(0, k), y.columns(0, k));
    space.to_host(y.columns(0, k), host.data(), n);
    for (int64_t i = 0; i < n * k; ++i) {
      if (!std::isfinite(static_cast<double>(host[i])))
        throw NumericalError("exact mode: a product returned NaN/Inf");
      c[j0 * n + i] = static_cast<double>(host[i]);
    }
  }
  ExactResult r;
  r.products = op.products() - p0;
  double amax = 0, asym = 0;
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < n; ++i) {
      amax = std::max(amax, std::fabs(c[i + j * n]));
      if (i < j) asym = std::max(asym, std::fabs(c[i + j * n] - c[j + i * n]));
    }
  r.asymmetry = amax > 0 ? asym / amax : 0;
  for (int64_t j = 0; j < n; ++j) {
    r.trace += c[j + j * n];
    for (int64_t i = j + 1; i < n; ++i)
      c[i + j * n] = c[j + i * n] = 0.5 * (c[i + j * n] + c[j + i * n]);
  }
  std::vector<double> a = c;
  r.eigenvalues.resize(static_cast<size_t>(n));
  solver.solve(n, a.data(), n, r.eigenvalues.data());
  r.solver = solver.name;
  for (double x : r.eigenvalues)
    if (!std::isfinite(x)) throw NumericalError("exact mode: " + solver.name + " returned NaN/Inf");

  // Residuals of the reported pairs against the symmetrised matrix, in double.
  const double scale = std::max(std::fabs(r.eigenvalues.front()), std::fabs(r.eigenvalues.back()));
  const double rel = std::max(tol, 100.0 * std::numeric_limits<T>::epsilon());
  std::vector<double> cu(static_cast<size_t>(n));
  auto pair = [&](int64_t idx) {
    const double* u = a.data() + idx * n;
    blas::gemm('N', 'N', n, 1, n, 1.0, c.data(), n, u, n, 0.0, cu.data(), n);
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double d = cu[i] - r.eigenvalues[idx] * u[i];
      ss += d * d;
    }
    const double res = std::sqrt(ss);
    return RitzValue{r.eigenvalues[idx], res, res <= rel * scale};
  };
  for (int64_t i = 0; i < std::min<int64_t>(top, n); ++i) r.top.push_back(pair(n - 1 - i));
  for (int64_t i = 0; i < std::min<int64_t>(bottom, n); ++i) r.bottom.push_back(pair(i));
  return r;
}

template ExactResult exact_spectrum<float>(CurvatureOperator<float>&, VectorSpace<float>&, int, int,
                                           double, uint64_t, const SymmetricEigensolver&);
template ExactResult exact_spectrum<double>(CurvatureOperator<double>&, VectorSpace<double>&, int,
                                            int, double, uint64_t, const SymmetricEigensolver&);

}  // namespace hspec
