// The vector-space seam: the block algebra a solver needs, wherever the vectors live.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>

#include "hspec/block.hpp"

namespace hspec {

enum class Distribution { Gaussian, Rademacher };

// An owning column-major n x k matrix whose storage comes from a VectorSpace.
template <class T>
class Matrix {
 public:
  Matrix() = default;
  Matrix(std::shared_ptr<T> storage, int64_t rows, int64_t cols)
      : storage_(std::move(storage)), rows_(rows), cols_(cols) {}

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  T* data() const { return storage_.get(); }
  BlockView<T> view() const { return BlockView<T>(storage_.get(), rows_, cols_, rows_); }
  BlockView<T> columns(int64_t j0, int64_t n) const { return view().columns(j0, n); }
  explicit operator bool() const { return static_cast<bool>(storage_); }

 private:
  std::shared_ptr<T> storage_;
  int64_t rows_ = 0;
  int64_t cols_ = 0;
};

// What a solver needs of its vectors. Small results (Gram matrices, norms) always come
// back to the host in double precision; coefficient matrices always go in from the host.
// Host matrices (G, C) are column-major with the given leading dimension.
template <class T>
class VectorSpace {
 public:
  virtual ~VectorSpace() = default;

  virtual Where where() const = 0;

  // A new rows x cols matrix, zero-filled.
  virtual Matrix<T> allocate(int64_t rows, int64_t cols) = 0;

  // G (p x q, host, leading dimension ldg) = A^T B for A: n x p, B: n x q.
  virtual void gram(BlockView<const T> A, BlockView<const T> B, double* G, int64_t ldg) = 0;

  // Y = beta Y + alpha A C for A: n x p, C: p x q (host, leading dimension ldc), Y: n x q.
  virtual void update(BlockView<T> Y, BlockView<const T> A, const double* C, int64_t ldc,
                      double alpha, double beta) = 0;

  // out[j] = ||A(:, j)||_2.
  virtual void norms(BlockView<const T> A, double* out) = 0;

  // A(:, j) *= s[j].
  virtual void scale_columns(BlockView<T> A, const double* s) = 0;

  // dst = src (same shape).
  virtual void copy(BlockView<const T> src, BlockView<T> dst) = 0;

  // Fill A with independent samples; the values depend only on (seed, A's shape) for a
  // given backend, so the same seed gives the same run.
  virtual void fill_random(BlockView<T> A, Distribution dist, uint64_t seed) = 0;

  // Transfers between this space and host memory (column-major, leading dimension ldh).
  virtual void to_host(BlockView<const T> src, T* host, int64_t ldh) = 0;
  virtual void from_host(const T* host, int64_t ldh, BlockView<T> dst) = 0;
};

}  // namespace hspec
