// CudaCompute<T>: the graph engine's compute seam on a CUDA device (declaration shared by
// the kernel files of kernels/graph/, one per primitive family). Private to kernels/.
//
// Every primitive runs asynchronously on the object's stream; the ones that return data to
// the host (download, all_finite, loss_forward) synchronise it. The CPU backend
// (host/backends/cpu/cpu_compute*.cpp) is the plain reference of each kernel, and the GPU
// tests (tests/gpu/test_gpu_graph_compute.cpp) hold every primitive to it.
#pragma once
#include <cstdint>

#include "../cuda_util.hpp"
#include "hspec/graph/compute.hpp"

namespace hspec::cuda {

// Launch helpers of the graph kernels: a grid-stride loop over [0, count).
constexpr int kGraphThreads = 256;
#define HSPEC_GRID_LOOP(i, count)                                                            \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (count); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// A numpy-broadcast iteration space, its extent-1 axes dropped and axes that are contiguous
// in every operand merged (host side, cuda_compute_elementwise.cu): element o of the full
// shape is at sum_i idx_i * stride[op][i], idx its row-major multi-index over ext.
struct BroadcastIndex {
  int rank = 0;
  int64_t ext[kMaxRank] = {0};
  int64_t stride[2][kMaxRank] = {{0}};
};

template <class T>
class CudaCompute final : public Compute<T> {
 public:
  CudaCompute(int device, bool tf32);
  ~CudaCompute() override;
  Where where() const override { return Where::Device; }
  const char* name() const override { return "cuda"; }
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
  void gather_rows(const T* table, int64_t table_stride, const int64_t* idx, int64_t count,
                   int64_t width, T* out, int64_t reps, bool accumulate) override;
  void scatter_add_rows(const T* src, const int64_t* idx, int64_t count, int64_t width, T* table,
                        int64_t table_stride, int64_t reps) override;
  void unary(UnaryKind f, const T* x, T* y, int64_t n) override;
  void unary_derivative(UnaryKind f, int order, const T* x, const T* s, const T* r, T* out,
                        int64_t n, int64_t reps, bool accumulate) override;
  void binary(BinaryKind op, const T* a, const Shape& sa, const T* b, const Shape& sb, T* out,
              const Shape& so, T alpha, bool accumulate) override;
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
  double loss_forward(Loss loss, const T* z, int64_t n, int64_t out, const int64_t* labels,
                      const T* targets, T scale, T* grad, T* curv, int64_t* correct) override;
  void loss_curvature(Loss loss, const T* curv, const T* rz, T* out, int64_t n, int64_t out_dim,
                      int64_t reps, T scale) override;

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_->get(); }

 private:
  int device_ = 0;
  std::unique_ptr<Stream> stream_;
  std::unique_ptr<CublasHandle> blas_;
  DeviceBuffer<double> sample_loss_;  // loss_forward's per-sample terms
  DeviceBuffer<int> flags_;           // per-sample correct flags; all_finite's flag
};

extern template class CudaCompute<float>;
extern template class CudaCompute<double>;

}  // namespace hspec::cuda
