// Launchers of the CUDA curvature operator's elementwise and reduction kernels.
// (The GEMMs are cuBLAS calls in cuda_hvp.cu.) Private to kernels/; all pointers are device
// pointers, all launches asynchronous on `stream` and checked.
//
// Layout, as in host/mlp/cpu_hvp.cpp: a block of activations is features x samples,
// column-major; k directions are stacked along the sample axis, so a tangent buffer is
// rows x (n * k) and direction j's part starts at j * rows * n.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "hspec/mlp/model.hpp"

namespace hspec::cuda {

// dst[o + (j * n + i) * rows] = src[o + j * ld_src] (0 when src is null), for o < rows,
// i < n, j < k: a bias (ld_src = 0, k = 1) or k direction biases broadcast over samples.
template <class T>
void broadcast_columns(T* dst, int64_t rows, int64_t n, int64_t k, const T* src, int64_t ld_src,
                       cudaStream_t stream);

// From pre-activations a: x = phi(a), dphi = phi'(a) and, when d2 is not null, d2 = phi''(a).
template <class T>
void activation_forward(Activation act, const T* a, int64_t count, T* x, T* dphi, T* d2,
                        cudaStream_t stream);

// Output layer of the primal pass for n samples of logits z (out x n): per-sample loss in
// double, g = dL/dz of the mean loss (inv_n = 1 / N of the whole data set) and what the
// output curvature needs (ce: softmax probabilities, out x n; bce: p(1-p), n; mse: unused,
// may be null). labels / targets point at the chunk's first sample.
template <class T>
void output_primal(Loss loss, const T* z, int64_t out, int64_t n, const int64_t* labels,
                   const T* targets, double inv_n, T* g, T* curv, double* sample_loss,
                   cudaStream_t stream);

// Backward step of the primal pass: g = dphi * dx and, when s is not null, s *= dx (s holds
// phi''(A) on entry and phi''(A) * dL/dX on return).
template <class T>
void backward_primal(const T* dphi, const T* dx, int64_t count, T* g, T* s, cudaStream_t stream);

// dst[i] += double(src[i]).
template <class T>
void accumulate_double(double* dst, const T* src, int64_t count, cudaStream_t stream);

// Bias row sums: dst[o + j * ld_dst] += sum_i a[o + (j * n + i) * rows] for o < rows,
// j < k, summed in double in a fixed order (deterministic), the samples split across blocks
// (kernels/row_sum_plan.hpp). `scratch` holds row_sum_scratch(rows, n, k) doubles (Error
// when scratch_size is smaller; may be null when that is 0).
template <class T, class Out>
void bias_row_sums(const T* a, int64_t rows, int64_t n, int64_t k, Out* dst, int64_t ld_dst,
                   double* scratch, int64_t scratch_size, cudaStream_t stream);

// out[p + j * per] = d[p] * in[p + j * per] for p < per, j < k.
template <class T>
void scale_repeated(const T* d, const T* in, int64_t per, int64_t k, T* out, cudaStream_t stream);

// Output curvature RG = (d^2 loss / dz^2) RZ for the n * k columns of rz (out x n k);
// column c belongs to sample c % n. ce: (p * r - p (p . r)) inv_n; bce: p(1-p) r inv_n;
// mse: mse_scale r.
template <class T>
void output_curvature(Loss loss, const T* rz, const T* curv, int64_t out, int64_t n, int64_t k,
                      T inv_n, T mse_scale, T* rg, cudaStream_t stream);

// Second-order backward through an activation:
// rg[q] = dphi[p] * rd[q] (+ s[p] * ra[q] when s is not null), q = p + j * per.
template <class T>
void second_order_input(const T* dphi, const T* s, const T* rd, const T* ra, int64_t per, int64_t k,
                        T* rg, cudaStream_t stream);

// Zeroes a rows x cols block with leading dimension ld.
template <class T>
void zero_block(T* y, int64_t rows, int64_t cols, int64_t ld, cudaStream_t stream);

// *first = min over non-finite y(i, j) of j * rows + i; *first must hold ~0ull before.
template <class T>
void find_nonfinite(const T* y, int64_t rows, int64_t cols, int64_t ld, unsigned long long* first,
                    cudaStream_t stream);

}  // namespace hspec::cuda
