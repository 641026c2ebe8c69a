// The curvature-operator seam: Y = C X for a block of directions X, C symmetric.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "hspec/block.hpp"

namespace hspec {

// The Euclidean norm of a gradient, which every operator keeps in double (flat parameter
// order) and reports as grad_norm().
inline double gradient_norm(const std::vector<double>& g) {
  double s = 0;
  for (double v : g) s += v * v;
  return std::sqrt(s);
}

// A symmetric linear operator applied to blocks of vectors (Spectra's operator concept,
// batched): the solvers touch the Hessian only through apply().
//
// Contract: X and Y are dim() x k views in the memory given by where(), with
// 1 <= k <= max_block(); Y is overwritten with C X. apply() may be called with any
// leading dimension >= dim(). products() counts the columns multiplied so far.
template <class T>
class CurvatureOperator {
 public:
  virtual ~CurvatureOperator() = default;

  virtual int64_t dim() const = 0;
  virtual int64_t max_block() const = 0;
  virtual Where where() const = 0;
  virtual void apply(BlockView<const T> X, BlockView<T> Y) = 0;

  int64_t rows() const { return dim(); }
  int64_t products() const { return products_; }

 protected:
  void count_products(int64_t k) { products_ += k; }

 private:
  int64_t products_ = 0;
};

}  // namespace hspec
