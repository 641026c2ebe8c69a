// The block Lanczos solver's internals, shared by the two files that implement it:
// host/solvers/lanczos_basis.cpp (the basis: extension, reorthogonalisation, Rayleigh-Ritz,
// restarts, true residuals) and host/solvers/lanczos.cpp (the run: stopping rule, probe
// rounds, progress). Private to host/solvers/.
#pragma once
#include <cstdint>
#include <limits>
#include <vector>

#include "hspec/solvers/lanczos.hpp"

namespace hspec::lanczos_detail {

template <class T>
class Solver {
 public:
  Solver(CurvatureOperator<T>& op, VectorSpace<T>& space, const LanczosOptions& opt)
      : op_(op), space_(space), opt_(opt) {}
  LanczosResult<T> run();

 private:
  double& t(int64_t i, int64_t k) { return T_[i + k * m_max_]; }
  void extend();
  void orth_column(int64_t c, int64_t k, int64_t slots, double orig);
  void random_column(int64_t k, int64_t c);
  void project(BlockView<T> x, int64_t base, double* coef);
  void rayleigh_ritz();
  void restart(int64_t kb, int64_t kt, bool fresh);
  void true_residuals(const Matrix<T>& u, const std::vector<int64_t>& idx);
  void finish(LanczosResult<T>& out, double rel, double scale);

  CurvatureOperator<T>& op_;
  VectorSpace<T>& space_;
  const LanczosOptions& opt_;
  const double eps_ = std::numeric_limits<T>::epsilon();
  int64_t n_ = 0, b_ = 0, m_max_ = 0;
  int64_t top_ = 0, bottom_ = 0;   // values wanted at each end (at most n)
  Matrix<T> V_, W_, S_;            // basis (+ residual block), product block, restart scratch
  std::vector<double> T_, H_, R_;  // projected matrix, block coefficients, W = Q R factor
  int64_t m_ = 0;                  // basis columns whose products are folded into T
  int64_t w_ = 0;                  // width of the residual block V[:, m : m + w)
  int64_t bw_ = 0;                 // width of the last extended block V[:, m - bw : m)
  double norm_c_ = 0;              // running lower bound on ||C||: max ||C v|| seen
  uint64_t replacements_ = 0;
  int64_t applied_ = 0;  // columns we applied: bounds the run even if op never counts
  int64_t repeats_ = 0;
  std::vector<double> theta_, Y_, res_;  // Ritz values (ascending), vectors, residuals
};

#define HSPEC_LANCZOS_SOLVER_MEMBERS(T)                                                   \
  template void Solver<T>::extend();                                                      \
  template void Solver<T>::orth_column(int64_t, int64_t, int64_t, double);                \
  template void Solver<T>::random_column(int64_t, int64_t);                               \
  template void Solver<T>::project(BlockView<T>, int64_t, double*);                       \
  template void Solver<T>::rayleigh_ritz();                                               \
  template void Solver<T>::restart(int64_t, int64_t, bool);                               \
  template void Solver<T>::true_residuals(const Matrix<T>&, const std::vector<int64_t>&); \
  template void Solver<T>::finish(LanczosResult<T>&, double, double);

}  // namespace hspec::lanczos_detail
