// Exact mode for small models: the dense curvature matrix from batched products on identity
// blocks, solved in double precision by LAPACK (CPU) or cuSOLVER (CUDA backend).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "hspec/operator.hpp"
#include "hspec/solvers/lanczos.hpp"
#include "hspec/space.hpp"

namespace hspec {

struct ExactResult {
  std::vector<double> eigenvalues;  // all of them, ascending
  std::vector<RitzValue> top;       // descending, residuals ||C u - lambda u|| in double
  std::vector<RitzValue> bottom;    // ascending
  double trace = 0;                 // of the matrix as built (sum of its diagonal)
  double asymmetry = 0;             // max |C_ij - C_ji| / max |C_ij| before symmetrising
  int64_t products = 0;
  std::string solver;  // which eigensolver ran, e.g. "LAPACK dsyevd"
};

// The dense symmetric eigensolver: on entry the n x n symmetric matrix a (host, column-major,
// leading dimension lda), on exit its eigenvectors, with the eigenvalues ascending in w.
struct SymmetricEigensolver {
  std::string name;
  std::function<void(int64_t n, double* a, int64_t lda, double* w)> solve;
};

// LAPACK dsyevd on the host.
SymmetricEigensolver lapack_eigensolver();

// Bytes exact mode needs for an n-parameter operator (the matrix, its eigenvectors'
// workspace and LAPACK's), so callers can refuse before allocating.
uint64_t exact_bytes(int64_t n);

// Builds C column block by column block (max_block products at a time), symmetrises it,
// and returns the whole spectrum plus the top/bottom values with their residuals. Throws
// UsageError when exact_bytes(n) exceeds max_bytes, naming both numbers. A value is
// converged when its residual <= max(tol, 100 eps_T) max|lambda|, as in BlockLanczos.
// The matrix is assembled on the host either way (it is small); `solver` picks where the
// O(n^3) solve runs.
template <class T>
ExactResult exact_spectrum(CurvatureOperator<T>& op, VectorSpace<T>& space, int top, int bottom,
                           double tol, uint64_t max_bytes,
                           const SymmetricEigensolver& solver = lapack_eigensolver());

}  // namespace hspec
