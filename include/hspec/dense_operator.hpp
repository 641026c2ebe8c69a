// Small host operators with known spectra, used to test the solvers: a dense symmetric
// matrix and a diagonal. Not for production; the curvature operators live elsewhere.
#pragma once
#include <vector>

#include "hspec/backends/cpu/blas.hpp"
#include "hspec/error.hpp"
#include "hspec/operator.hpp"

namespace hspec {

// Y = A X for a dense symmetric n x n column-major matrix held in double.
template <class T>
class DenseOperator final : public CurvatureOperator<T> {
 public:
  DenseOperator(std::vector<double> a, int64_t n, int64_t max_block = 1 << 20)
      : a_(std::move(a)), n_(n), max_block_(max_block) {
    if (static_cast<int64_t>(a_.size()) != n * n) throw Error("DenseOperator: size mismatch");
    at_.assign(a_.begin(), a_.end());
  }
  int64_t dim() const override { return n_; }
  int64_t max_block() const override { return max_block_; }
  Where where() const override { return Where::Host; }
  void apply(BlockView<const T> X, BlockView<T> Y) override {
    blas::gemm('N', 'N', n_, X.cols, n_, T(1), at_.data(), n_, X.data, X.ld, T(0), Y.data, Y.ld);
    this->count_products(X.cols);
  }

 private:
  std::vector<double> a_;
  std::vector<T> at_;  // the matrix in the compute precision
  int64_t n_, max_block_;
};

// Y = diag(d) X.
template <class T>
class DiagonalOperator final : public CurvatureOperator<T> {
 public:
  explicit DiagonalOperator(std::vector<double> d, int64_t max_block = 1 << 20)
      : d_(std::move(d)), max_block_(max_block) {}
  int64_t dim() const override { return static_cast<int64_t>(d_.size()); }
  int64_t max_block() const override { return max_block_; }
  Where where() const override { return Where::Host; }
  void apply(BlockView<const T> X, BlockView<T> Y) override {
    for (int64_t j = 0; j < X.cols; ++j)
      for (int64_t i = 0; i < dim(); ++i)
        Y.col(j)[i] = static_cast<T>(d_[i] * static_cast<double>(X.col(j)[i]));
    this->count_products(X.cols);
  }

 private:
  std::vector<double> d_;
  int64_t max_block_;
};

}  // namespace hspec
