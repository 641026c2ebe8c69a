// Thick-restart block Lanczos for both ends of a symmetric spectrum, written once against
// the CurvatureOperator and VectorSpace seams.
#pragma once
#include <atomic>
#include <cstdint>
#include <vector>

#include "hspec/analysis/progress.hpp"
#include "hspec/operator.hpp"
#include "hspec/space.hpp"

namespace hspec {

struct LanczosOptions {
  int top = 5;                // number of largest eigenvalues wanted (algebraic)
  int bottom = 1;             // number of smallest eigenvalues wanted (algebraic)
  int block = 1;              // block size b >= 1 (>= multiplicity to resolve repeated values)
  int64_t max_basis = 0;      // basis columns kept between restarts; 0 = automatic
  int64_t max_products = 0;   // budget of operator columns (HVPs); 0 = automatic
  double tol = 1e-6;          // residual tolerance relative to ||C|| (see RitzValue)
  uint64_t seed = 0;          // seed of the random start block
  bool want_vectors = false;  // keep the Ritz vectors of the reported values
  // After the wanted values converge, restart from the converged vectors plus a fresh random
  // block and iterate until one more value per end converges; repeat while that changes
  // the answer (at most this many rounds; 0 = off). A Krylov space grown from one start
  // holds only b vectors of any eigenspace, so without this an eigenvalue of multiplicity
  // above the block size (the zero eigenvalues of a Gauss-Newton matrix) shows up once.
  int probe_rounds = 16;
  // When set and it becomes true (e.g. from a SIGINT handler), the solver stops at the next
  // block extension and returns the Ritz values it has, with the recurrence's residual
  // estimates (no final check) and every converged flag false; LanczosResult::interrupted.
  const std::atomic<bool>* cancel = nullptr;
  // When set, told after every block of products (phase "eigenvalues"): products so far of
  // the budget, the extreme Ritz values and how many wanted values have converged.
  ProgressSink* progress = nullptr;
};

// One reported eigenvalue. residual = ||C u - value u|| for the unit Ritz vector u.
// The residual is the true one, recomputed with one product per value at the end (unless
// the basis spans the whole space, where Ritz pairs are exact). converged is true only when
// residual <= max(tol, 100 eps) ||C||, eps being the machine epsilon of the
// compute precision and ||C|| estimated by the extreme Ritz values.
//
// gap: the distance from value to the rest of the spectrum, estimated from the neighbouring
// Ritz values as min_j (|value - theta_j| - residual_j) over the other Ritz values theta_j of
// the final basis (each of which has an eigenvalue within residual_j of it); 0 when unknown
// (a neighbour too unconverged to bound, or the estimate not above the residual). When it is
// known, |value - lambda| <= residual^2 / gap (Kato-Temple), under the assumption that no
// eigenvalue lies between value and its neighbours that the Krylov space has not seen.
struct RitzValue {
  double value = 0;
  double residual = 0;
  bool converged = false;
  double gap = 0;
};

template <class T>
struct LanczosResult {
  std::vector<RitzValue> top;     // descending
  std::vector<RitzValue> bottom;  // ascending
  Matrix<T> top_vectors;          // dim x top.size(), when want_vectors
  Matrix<T> bottom_vectors;       // dim x bottom.size(), when want_vectors
  int64_t products = 0;           // operator columns used
  int64_t restarts = 0;
  int64_t reorth_repeats = 0;  // times the DGKS rule asked for a second pass
  int64_t probes = 0;          // random-restart rounds looking for missed copies
  bool converged = false;      // every reported value converged
  bool interrupted = false;    // stopped by LanczosOptions::cancel: residuals are estimates
};

// Basis columns the solver keeps for these options on an operator of dimension n with the
// given widest block (the automatic m_max rule), so callers can size memory up front. The
// solver holds about n * (2 m + 2 b + top + bottom) elements of T in the vector space.
int64_t lanczos_basis_columns(const LanczosOptions& opt, int64_t n, int64_t max_block);

// Solver object in the Spectra style: construct with the operator and space, then
// compute(). The operator and space must live in the same memory (where()).
template <class T>
class BlockLanczos {
 public:
  BlockLanczos(CurvatureOperator<T>& op, VectorSpace<T>& space);
  LanczosResult<T> compute(const LanczosOptions& opt);

 private:
  CurvatureOperator<T>& op_;
  VectorSpace<T>& space_;
};

extern template class BlockLanczos<float>;
extern template class BlockLanczos<double>;

}  // namespace hspec
