// The CPU implementation of the VectorSpace seam (BLAS on host memory).
#pragma once
#include "hspec/space.hpp"

namespace hspec {

template <class T>
class CpuSpace final : public VectorSpace<T> {
 public:
  Where where() const override { return Where::Host; }
  Matrix<T> allocate(int64_t rows, int64_t cols) override;
  void gram(BlockView<const T> A, BlockView<const T> B, double* G, int64_t ldg) override;
  void update(BlockView<T> Y, BlockView<const T> A, const double* C, int64_t ldc, double alpha,
              double beta) override;
  void norms(BlockView<const T> A, double* out) override;
  void scale_columns(BlockView<T> A, const double* s) override;
  void copy(BlockView<const T> src, BlockView<T> dst) override;
  void fill_random(BlockView<T> A, Distribution dist, uint64_t seed) override;
  void to_host(BlockView<const T> src, T* host, int64_t ldh) override;
  void from_host(const T* host, int64_t ldh, BlockView<T> dst) override;
};

extern template class CpuSpace<float>;
extern template class CpuSpace<double>;

}  // namespace hspec
