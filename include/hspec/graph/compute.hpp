// The compute seam of the graph engine: the few primitives every operator rule is written
// against (batched GEMM, im2col/col2im, elementwise maps with their derivatives, broadcast
// binary ops and reductions, pooling with a saved argmax, row gathers and their scatter-add,
// fills and copies). The op rules
// never touch tensor memory themselves, so a CUDA implementation slots in beside the CPU one.
//
// Conventions: all tensors are dense row-major; GEMMs are row-major; shapes passed to the
// broadcast primitives have equal rank (at most kMaxRank) and follow numpy broadcasting.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "hspec/block.hpp"
#include "hspec/mlp/model.hpp"

namespace hspec {

constexpr int kMaxRank = 8;
using Shape = std::vector<int64_t>;

inline int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// Elementwise functions whose first and second derivatives the backends know by name.
// Sqrt, Rsqrt (x^-1/2) and Reciprocal (1/x) serve LayerNorm, Pow and Div by a value.
enum class UnaryKind { Relu, Tanh, Sigmoid, Erf, GeluErf, GeluTanh, Sqrt, Rsqrt, Reciprocal };
enum class BinaryKind { Add, Sub, Mul, Div };

// Geometry of a 2-D convolution or pooling window over [B, C, H, W] planes.
struct WindowGeom {
  int64_t channels = 0, height = 0, width = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t out_h = 0, out_w = 0;
  int64_t in_plane() const { return height * width; }
  int64_t out_plane() const { return out_h * out_w; }
};

// Memory owned by a backend: a typed pointer plus the handle that frees it.
template <class U>
struct Buffer {
  U* ptr = nullptr;
  int64_t size = 0;
  std::shared_ptr<void> owner;
  U* data() const { return ptr; }
};

template <class T>
class Compute {
 public:
  virtual ~Compute() = default;
  virtual Where where() const = 0;
  virtual const char* name() const = 0;

  // ---- memory ----
  virtual std::shared_ptr<void> alloc_bytes(size_t bytes) = 0;
  template <class U>
  Buffer<U> alloc(int64_t n) {
    Buffer<U> b;
    b.owner = alloc_bytes(sizeof(U) * static_cast<size_t>(n > 0 ? n : 1));
    b.ptr = static_cast<U*>(b.owner.get());
    b.size = n;
    return b;
  }
  // Grows b to at least n elements (contents then undefined).
  template <class U>
  void ensure(Buffer<U>& b, int64_t n) {
    if (b.size < n || !b.ptr) b = alloc<U>(n);
  }
  virtual void upload(const T* host, T* dev, int64_t n) = 0;
  virtual void upload_index(const int64_t* host, int64_t* dev, int64_t n) = 0;
  virtual void download(const T* dev, T* host, int64_t n) = 0;
  virtual void fill(T* x, int64_t n, T value) = 0;
  // y = x (accumulate false) or y += alpha x.
  virtual void axpy(int64_t n, T alpha, const T* x, T* y, bool accumulate) = 0;
  // cols x rows 2-D copy between strided column blocks (dst = src, or dst += src).
  virtual void copy_2d(const T* src, int64_t ld_src, T* dst, int64_t ld_dst, int64_t rows,
                       int64_t cols, bool accumulate) = 0;
  virtual bool all_finite(const T* x, int64_t n) = 0;

  // ---- dense algebra ----
  // For b in [0, batch): C_b = alpha op(A_b) op(B_b) + beta C_b, row-major, op(X) = X or X^T;
  // A_b = A + b * stride_a (a stride of 0 shares one matrix). C strides must not alias.
  virtual void gemm_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                            const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb,
                            int64_t stride_b, T beta, T* C, int64_t ldc, int64_t stride_c,
                            int64_t batch) = 0;
  // [a, b, c, d] -> [a, c, b, d] (dst = or += src).
  virtual void swap_axes12(const T* src, T* dst, int64_t a, int64_t b, int64_t c, int64_t d,
                           bool accumulate) = 0;
  // For every index i of the box `extents` (rank <= kMaxRank): dst[i . dst_strides] (+)=
  // src[i . src_strides]. Strides are in elements and may be negative (reversed slices) or,
  // for src only, 0 (broadcast); distinct i never reach the same dst element. Transpose,
  // Slice, Split and Concat are all this copy with different strides and offsets.
  virtual void strided_copy(const T* src, const Shape& src_strides, T* dst,
                            const Shape& dst_strides, const Shape& extents, bool accumulate) = 0;
  // Softmax over the middle axis of x [outer, len, inner] (shifted by the row's maximum).
  virtual void softmax(const T* x, T* y, int64_t outer, int64_t len, int64_t inner) = 0;

  // ---- elementwise ----
  virtual void unary(UnaryKind f, const T* x, T* y, int64_t n) = 0;
  // out[j n + i] (+)= f^(order)(x_i) * (s ? s_i : 1) * r[j n + i] for j < reps; order 1 or 2.
  virtual void unary_derivative(UnaryKind f, int order, const T* x, const T* s, const T* r, T* out,
                                int64_t n, int64_t reps, bool accumulate) = 0;
  // out (+)= alpha * (a op b), numpy broadcasting over equal-rank shapes.
  virtual void binary(BinaryKind op, const T* a, const Shape& sa, const T* b, const Shape& sb,
                      T* out, const Shape& so, T alpha, bool accumulate) = 0;
  // out[j n + i] (+)= a_i p[j n + i] + b_i q[j n + i] for j < reps: an activation's two
  // cached derivative terms applied to every direction in one pass (default: two binary
  // passes, which round the same way).
  virtual void scaled_sum(const T* a, const T* p, const T* b, const T* q, T* out, int64_t n,
                          int64_t reps, bool accumulate) {
    binary(BinaryKind::Mul, a, {1, n}, p, {reps, n}, out, {reps, n}, T(1), accumulate);
    binary(BinaryKind::Mul, b, {1, n}, q, {reps, n}, out, {reps, n}, T(1), true);
  }
  // dst (+)= alpha * src broadcast from ss to sd.
  virtual void broadcast_to(const T* src, const Shape& ss, T* dst, const Shape& sd, T alpha,
                            bool accumulate) = 0;
  // dst (+)= alpha * (src summed over the axes where sd is 1 and ss is not).
  virtual void reduce_to(const T* src, const Shape& ss, T* dst, const Shape& sd, T alpha,
                         bool accumulate) = 0;

  // ---- convolution and pooling (planes [B, C, H, W], B = groups * per_group) ----
  // x [groups * per_group, C, H, W] -> cols [groups, C * kh * kw, per_group, out_h * out_w].
  virtual void im2col(const T* x, T* cols, const WindowGeom& g, int64_t groups,
                      int64_t per_group) = 0;
  // The adjoint: x += col2im(cols), same layouts.
  virtual void col2im(const T* cols, T* x, const WindowGeom& g, int64_t groups,
                      int64_t per_group) = 0;
  // Max over each window (padding never wins); argmax = input-plane offset, ties to the first.
  virtual void maxpool(const T* x, T* y, int64_t* argmax, const WindowGeom& g, int64_t batch) = 0;
  // y[r, p, o] (+)= x[r, p, argmax[p, o]] for reps r of `batch` planes-groups (tangents).
  virtual void maxpool_gather(const T* x, T* y, const int64_t* argmax, const WindowGeom& g,
                              int64_t batch, int64_t reps) = 0;
  // The adjoint: gx[r, p, argmax[p, o]] += gy[r, p, o].
  virtual void maxpool_scatter(const T* gy, T* gx, const int64_t* argmax, const WindowGeom& g,
                               int64_t batch, int64_t reps) = 0;
  // Average over windows, counting padding cells when count_include_pad (ONNX semantics).
  virtual void avgpool(const T* x, T* y, const WindowGeom& g, bool count_include_pad, int64_t batch,
                       bool accumulate) = 0;
  virtual void avgpool_adjoint(const T* gy, T* gx, const WindowGeom& g, bool count_include_pad,
                               int64_t batch) = 0;

  // ---- row gather (embeddings, Gather with constant indices) ----
  // For r < reps: out_r[i, :] (+)= table_r[idx[i], :], rows of `width` elements, with
  // table_r = table + r * table_stride and out_r = out + r * count * width. Indices are
  // checked by the caller (the planner, or the data loader for token ids).
  virtual void gather_rows(const T* table, int64_t table_stride, const int64_t* idx, int64_t count,
                           int64_t width, T* out, int64_t reps, bool accumulate) = 0;
  // The adjoint: table_r[idx[i], :] += src_r[i, :] (repeated indices add up), same layouts.
  virtual void scatter_add_rows(const T* src, const int64_t* idx, int64_t count, int64_t width,
                                T* table, int64_t table_stride, int64_t reps) = 0;

  // ---- loss head over z [n, out] ----
  // Per-sample loss terms summed (double, returned), gradient grad = scale * dl/dz, the
  // output curvature data (ce: softmax, bce: p(1-p)) and the count of correct predictions.
  virtual double loss_forward(Loss loss, const T* z, int64_t n, int64_t out, const int64_t* labels,
                              const T* targets, T scale, T* grad, T* curv, int64_t* correct) = 0;
  // out = scale * (d^2 l / dz^2) rz per sample, for reps blocks of n samples.
  virtual void loss_curvature(Loss loss, const T* curv, const T* rz, T* out, int64_t n,
                              int64_t out_dim, int64_t reps, T scale) = 0;
};

// The CPU implementation (BLAS and plain loops).
template <class T>
std::unique_ptr<Compute<T>> make_cpu_compute();

}  // namespace hspec
