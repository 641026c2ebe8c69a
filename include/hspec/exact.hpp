// Exact mode for small models: the dense curvature matrix from batched products on identity
// blocks, solved by LAPACK in double precision.
#pragma once
#include <cstdint>
#include <vector>

#include "hspec/lanczos.hpp"
#include "hspec/operator.hpp"
#include "hspec/space.hpp"

namespace hspec {

struct ExactResult {
  std::vector<double> eigenvalues;  // all of them, ascending
  std::vector<RitzValue> top;       // descending, residuals ||C u - lambda u|| in double
  std::vector<RitzValue> bottom;    // ascending
  double trace = 0;                 // of the matrix as built (sum of its diagonal)
  double asymmetry = 0;             // max |C_ij - C_ji| / max |C_ij| before symmetrising
  int64_t products = 0;
};

// Bytes exact mode needs for an n-parameter operator (the matrix, its eigenvectors'
// workspace and LAPACK's), so callers can refuse before allocating.
uint64_t exact_bytes(int64_t n);

// Builds C column block by column block (max_block products at a time), symmetrises it,
// and returns the whole spectrum plus the top/bottom values with their residuals. Throws
// UsageError when exact_bytes(n) exceeds max_bytes, naming both numbers. A value is
// converged when its residual <= max(tol, 100 eps_T) max|lambda|, as in BlockLanczos.
template <class T>
ExactResult exact_spectrum(CurvatureOperator<T>& op, VectorSpace<T>& space, int top, int bottom,
                           double tol, uint64_t max_bytes);

}  // namespace hspec
