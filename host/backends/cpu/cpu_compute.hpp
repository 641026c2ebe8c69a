// The CPU compute backend of the graph engine (declaration shared by its source files).
#pragma once
#include <vector>

#include "hspec/graph/compute.hpp"

namespace hspec {

template <class T>
class CpuCompute final : public Compute<T> {
 public:
  Where where() const override { return Where::Host; }
  const char* name() const override { return "cpu"; }
  std::shared_ptr<void> alloc_bytes(size_t bytes) override;
  void upload(const T* host, T* dev, int64_t n) override;
  void upload_index(const int64_t* host, int64_t* dev, int64_t n) override;
  void download(const T* dev, T* host, int64_t n) override;
  void fill(T* x, int64_t n, T value) override;
  void axpy(int64_t n, T alpha, const T* x, T* y, bool accumulate) override;
  void copy_2d(const T* src, int64_t ld_src, T* dst, int64_t ld_dst, int64_t rows, int64_t cols,
               bool accumulate) override;
  bool all_finite(const T* x, int64_t n) override;
  void gemm_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                    const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb,
                    int64_t stride_b, T beta, T* C, int64_t ldc, int64_t stride_c,
                    int64_t batch) override;
  void swap_axes12(const T* src, T* dst, int64_t a, int64_t b, int64_t c, int64_t d,
                   bool accumulate) override;
  void strided_copy(const T* src, const Shape& src_strides, T* dst, const Shape& dst_strides,
                    const Shape& extents, bool accumulate) override;
  void softmax(const T* x, T* y, int64_t outer, int64_t len, int64_t inner) override;
  void unary(UnaryKind f, const T* x, T* y, int64_t n) override;
  void unary_derivative(UnaryKind f, int order, const T* x, const T* s, const T* r, T* out,
                        int64_t n, int64_t reps, bool accumulate) override;
  void binary(BinaryKind op, const T* a, const Shape& sa, const T* b, const Shape& sb, T* out,
              const Shape& so, T alpha, bool accumulate) override;
  void scaled_sum(const T* a, const T* p, const T* b, const T* q, T* out, int64_t n, int64_t reps,
                  bool accumulate) override;
  void broadcast_to(const T* src, const Shape& ss, T* dst, const Shape& sd, T alpha,
                    bool accumulate) override;
  void reduce_to(const T* src, const Shape& ss, T* dst, const Shape& sd, T alpha,
                 bool accumulate) override;
  void im2col(const T* x, T* cols, const WindowGeom& g, int64_t groups, int64_t per_group) override;
  void col2im(const T* cols, T* x, const WindowGeom& g, int64_t groups, int64_t per_group) override;
  void maxpool(const T* x, T* y, int64_t* argmax, const WindowGeom& g, int64_t batch) override;
  void maxpool_gather(const T* x, T* y, const int64_t* argmax, const WindowGeom& g, int64_t batch,
                      int64_t reps) override;
  void maxpool_scatter(const T* gy, T* gx, const int64_t* argmax, const WindowGeom& g,
                       int64_t batch, int64_t reps) override;
  void avgpool(const T* x, T* y, const WindowGeom& g, bool count_include_pad, int64_t batch,
               bool accumulate) override;
  void avgpool_adjoint(const T* gy, T* gx, const WindowGeom& g, bool count_include_pad,
                       int64_t batch) override;
  void gather_rows(const T* table, int64_t table_stride, const int64_t* idx, int64_t count,
                   int64_t width, T* out, int64_t reps, bool accumulate) override;
  void scatter_add_rows(const T* src, const int64_t* idx, int64_t count, int64_t width, T* table,
                        int64_t table_stride, int64_t reps) override;
  double loss_forward(Loss loss, const T* z, int64_t n, int64_t out, const int64_t* labels,
                      const T* targets, T scale, T* grad, T* curv, int64_t* correct) override;
  void loss_curvature(Loss loss, const T* curv, const T* rz, T* out, int64_t n, int64_t out_dim,
                      int64_t reps, T scale) override;

 private:
  std::vector<double> partial_;  // reduce_to's per-block sums, kept to avoid a heap call each
};

extern template class CpuCompute<float>;
extern template class CpuCompute<double>;

}  // namespace hspec
