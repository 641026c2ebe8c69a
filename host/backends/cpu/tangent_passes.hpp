// The elementwise passes of the MLP reference operator between its GEMMs, each fused into one sweep
// over the memory and threaded with OpenMP: at thousands of samples these buffers are tens
// of MB, so every separate pass (bias, activation derivative, bias-gradient sum) costs a
// full trip through memory that the GEMMs do not hide.
//
// Layout as in reference_operator.cpp: features x columns, column-major; the k directions of a
// block are stacked along the columns (n samples each), so column c belongs to direction c / n and
// to sample c % n, whose per-sample caches (phi'(A), phi''(A) dL/dX) are shared by all directions.
#pragma once
#include <cstdint>
#include <vector>

// A parallel loop when hspec is built with OpenMP and the loop is big enough (cond); a plain
// loop otherwise, without unknown-pragma warnings.
#if defined(_OPENMP)
#define HSPEC_PRAGMA(x) _Pragma(#x)
#define HSPEC_PARALLEL_FOR_IF(cond) HSPEC_PRAGMA(omp parallel for schedule(static) if (cond))
#else
#define HSPEC_PARALLEL_FOR_IF(cond)
#endif

namespace hspec::cpu {

// Tangent forward epilogue of one layer: RA += c_j (bias_of[j], skipped when null) and,
// when rx is not null, RX = phi'(A) * RA.
template <class T>
void forward_epilogue(T* ra, T* rx, const T* dphi, const std::vector<const T*>& bias_of,
                      int64_t rows, int64_t n);

// Second-order backward through an activation: RG = phi'(A) * RD (+ S * RA when s is not
// null), and for each direction j with bias_grad_of[j] not null, bias_grad_of[j] += the sum
// of RG over its n samples (in fixed blocks, so the sum does not depend on the threads).
template <class T>
void backward_epilogue(T* rg, const T* rd, const T* dphi, const T* s, const T* ra,
                       const std::vector<T*>& bias_grad_of, int64_t rows, int64_t n);

// bias_grad_of[j] += the sum over the n columns of direction j of m (rows x n*k); same
// blocking as backward_epilogue.
template <class T>
void add_column_sums(const T* m, const std::vector<T*>& bias_grad_of, int64_t rows, int64_t n);

}  // namespace hspec::cpu
