// Elementwise and reduction kernels of the CUDA curvature operator.
// Bias broadcasts and row sums, activations, loss and output curvature, the second-order
// backward step, NaN checks.
// Each one is the device twin of a loop in host/mlp/cpu_hvp.cpp.
#include <cmath>

#include "cuda_util.hpp"
#include "hspec/backends/cuda/cuda_check.hpp"
#include "hspec/mlp/activation_math.hpp"
#include "hvp_kernels.hpp"
#include "row_sum_plan.hpp"

namespace hspec::cuda {
namespace {

constexpr int kThreads = 256;

__device__ inline int64_t thread_start() {
  return blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
}
__device__ inline int64_t grid_step() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

template <class T>
__global__ void broadcast_columns_kernel(T* dst, int64_t rows, int64_t n, int64_t k, const T* src,
                                         int64_t ld_src) {
  const int64_t per = rows * n;
  for (int64_t p = thread_start(); p < per; p += grid_step()) {
    const int64_t o = p % rows;
    for (int64_t j = 0; j < k; ++j) dst[p + j * per] = src ? src[o + j * ld_src] : T(0);
  }
}

template <class T>
__global__ void activation_forward_kernel(Activation act, const T* a, int64_t count, T* x, T* dphi,
                                          T* d2) {
  for (int64_t i = thread_start(); i < count; i += grid_step()) {
    const ActValues<T> v = activation_values(act, a[i]);
    x[i] = v.f;
    dphi[i] = v.d1;
    if (d2) d2[i] = v.d2;
  }
}

// One thread per sample; the arithmetic is host/mlp/cpu_hvp.cpp's, in double.
template <class T>
__global__ void output_primal_kernel(Loss loss, const T* z_all, int64_t out, int64_t n,
                                     const int64_t* labels, const T* targets, double inv_n,
                                     T* g_all, T* curv, double* sample_loss) {
  for (int64_t i = thread_start(); i < n; i += grid_step()) {
    const T* z = z_all + i * out;
    T* g = g_all + i * out;
    double l = 0;
    if (loss == Loss::CE) {
      const int64_t y = labels[i];
      double zmax = z[0];
      for (int64_t o = 1; o < out; ++o) zmax = fmax(zmax, static_cast<double>(z[o]));
      double sum = 0;
      for (int64_t o = 0; o < out; ++o) sum += exp(static_cast<double>(z[o]) - zmax);
      l = zmax + log(sum) - static_cast<double>(z[y]);
      for (int64_t o = 0; o < out; ++o) {
        const double p = exp(static_cast<double>(z[o]) - zmax) / sum;
        curv[i * out + o] = static_cast<T>(p);
        g[o] = static_cast<T>((p - (o == y ? 1.0 : 0.0)) * inv_n);
      }
    } else if (loss == Loss::BCE) {
      const double zz = z[0], y = static_cast<double>(labels[i]);
      l = fmax(zz, 0.0) - zz * y + log1p(exp(-fabs(zz)));
      const double p = zz >= 0 ? 1.0 / (1.0 + exp(-zz)) : exp(zz) / (1.0 + exp(zz));
      curv[i] = static_cast<T>(p * (1.0 - p));
      g[0] = static_cast<T>((p - y) * inv_n);
    } else {
      const double scale = 2.0 * inv_n / static_cast<double>(out);
      for (int64_t o = 0; o < out; ++o) {
        const double r = static_cast<double>(z[o]) - static_cast<double>(targets[i * out + o]);
        l += r * r / static_cast<double>(out);
        g[o] = static_cast<T>(scale * r);
      }
    }
    sample_loss[i] = l;
  }
}

template <class T>
__global__ void backward_primal_kernel(const T* dphi, const T* dx, int64_t count, T* g, T* s) {
  for (int64_t i = thread_start(); i < count; i += grid_step()) {
    g[i] = dphi[i] * dx[i];
    if (s) s[i] = s[i] * dx[i];
  }
}

template <class T>
__global__ void accumulate_double_kernel(double* dst, const T* src, int64_t count) {
  for (int64_t i = thread_start(); i < count; i += grid_step())
    dst[i] += static_cast<double>(src[i]);
}

// Pass 1 of the bias row sums (kernels/row_sum_plan.hpp): block (32, 32) of grid
// (row blocks, slices, k); lane x owns row o = 32 * blockIdx.x + x, lane y sums samples
// y, y + 32, ... of slice blockIdx.y, and the 32 lane sums of a row are added in a fixed
// order. With one slice the sum goes straight into dst, otherwise into the scratch for pass 2.
template <class T, class Out>
__global__ void __launch_bounds__(kSumRows* kSumLanes)
    bias_row_sums_kernel(const T* a, int64_t rows, int64_t n, int64_t k, int64_t slice,
                         int64_t slices, Out* dst, int64_t ld_dst, double* scratch) {
  __shared__ double partial[kSumLanes][kSumRows + 1];
  const int64_t o = blockIdx.x * static_cast<int64_t>(kSumRows) + threadIdx.x;
  const int64_t first = blockIdx.y * slice;
  const int64_t end = first + slice < n ? first + slice : n;
  for (int64_t j = blockIdx.z; j < k; j += gridDim.z) {
    double acc = 0;
    if (o < rows) {
      const T* col = a + j * rows * n + o;
      for (int64_t i = first + threadIdx.y; i < end; i += kSumLanes)
        acc += static_cast<double>(col[i * rows]);
    }
    partial[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && o < rows) {
      double sum = 0;
      for (int t = 0; t < kSumLanes; ++t) sum += partial[t][threadIdx.x];
      if (slices == 1)
        dst[o + j * ld_dst] += static_cast<Out>(sum);
      else
        scratch[(j * slices + blockIdx.y) * rows + o] = sum;
    }
    __syncthreads();
  }
}

// Pass 2: one thread per (row, direction) adds its slice sums in slice order.
template <class Out>
__global__ void bias_row_sums_finish_kernel(const double* scratch, int64_t rows, int64_t k,
                                            int64_t slices, Out* dst, int64_t ld_dst) {
  for (int64_t q = thread_start(); q < rows * k; q += grid_step()) {
    const int64_t o = q % rows, j = q / rows;
    double sum = 0;
    for (int64_t c = 0; c < slices; ++c) sum += scratch[(j * slices + c) * rows + o];
    dst[o + j * ld_dst] += static_cast<Out>(sum);
  }
}

template <class T>
__global__ void scale_repeated_kernel(const T* d, const T* in, int64_t per, int64_t k, T* out) {
  for (int64_t p = thread_start(); p < per; p += grid_step()) {
    const T f = d[p];
    for (int64_t j = 0; j < k; ++j) out[p + j * per] = f * in[p + j * per];
  }
}

// One thread per column (a sample of one direction).
template <class T>
__global__ void output_curvature_kernel(Loss loss, const T* rz, const T* curv, int64_t out,
                                        int64_t n, int64_t k, T inv_n, T mse_scale, T* rg) {
  const int64_t cols = n * k;
  for (int64_t c = thread_start(); c < cols; c += grid_step()) {
    const int64_t i = c % n;
    const T* r = rz + c * out;
    T* dst = rg + c * out;
    if (loss == Loss::CE) {
      const T* p = curv + i * out;
      T pr = 0;
      for (int64_t o = 0; o < out; ++o) pr += p[o] * r[o];
      for (int64_t o = 0; o < out; ++o) dst[o] = (p[o] * r[o] - p[o] * pr) * inv_n;
    } else if (loss == Loss::BCE) {
      dst[0] = curv[i] * r[0] * inv_n;
    } else {
      for (int64_t o = 0; o < out; ++o) dst[o] = mse_scale * r[o];
    }
  }
}

template <class T>
__global__ void second_order_input_kernel(const T* dphi, const T* s, const T* rd, const T* ra,
                                          int64_t per, int64_t k, T* rg) {
  for (int64_t p = thread_start(); p < per; p += grid_step()) {
    const T d = dphi[p];
    const T sp = s ? s[p] : T(0);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t q = p + j * per;
      T v = d * rd[q];
      if (s) v += sp * ra[q];
      rg[q] = v;
    }
  }
}

// 2-D grid (grid_2d): x strides over rows, y over columns.
template <class T>
__global__ void zero_block_kernel(T* y, int64_t rows, int64_t cols, int64_t ld) {
  for (int64_t j = blockIdx.y; j < cols; j += gridDim.y)
    for (int64_t i = thread_start(); i < rows; i += grid_step()) y[i + j * ld] = T(0);
}

// 2-D grid (grid_2d); the key of entry (i, j) is j * rows + i.
template <class T>
__global__ void find_nonfinite_kernel(const T* y, int64_t rows, int64_t cols, int64_t ld,
                                      unsigned long long* first) {
  for (int64_t j = blockIdx.y; j < cols; j += gridDim.y)
    for (int64_t i = thread_start(); i < rows; i += grid_step())
      if (!isfinite(y[i + j * ld])) atomicMin(first, static_cast<unsigned long long>(j * rows + i));
}

}  // namespace

template <class T>
void broadcast_columns(T* dst, int64_t rows, int64_t n, int64_t k, const T* src, int64_t ld_src,
                       cudaStream_t stream) {
  if (rows * n * k == 0) return;
  broadcast_columns_kernel<T>
      <<<grid_for(rows * n, kThreads), kThreads, 0, stream>>>(dst, rows, n, k, src, ld_src);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void activation_forward(Activation act, const T* a, int64_t count, T* x, T* dphi, T* d2,
                        cudaStream_t stream) {
  if (count == 0) return;
  activation_forward_kernel<T>
      <<<grid_for(count, kThreads), kThreads, 0, stream>>>(act, a, count, x, dphi, d2);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void output_primal(Loss loss, const T* z, int64_t out, int64_t n, const int64_t* labels,
                   const T* targets, double inv_n, T* g, T* curv, double* sample_loss,
                   cudaStream_t stream) {
  if (n == 0) return;
  output_primal_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(
      loss, z, out, n, labels, targets, inv_n, g, curv, sample_loss);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void backward_primal(const T* dphi, const T* dx, int64_t count, T* g, T* s, cudaStream_t stream) {
  if (count == 0) return;
  backward_primal_kernel<T>
      <<<grid_for(count, kThreads), kThreads, 0, stream>>>(dphi, dx, count, g, s);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void accumulate_double(double* dst, const T* src, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  accumulate_double_kernel<T><<<grid_for(count, kThreads), kThreads, 0, stream>>>(dst, src, count);
  CUDA_CHECK_LAUNCH();
}

template <class T, class Out>
void bias_row_sums(const T* a, int64_t rows, int64_t n, int64_t k, Out* dst, int64_t ld_dst,
                   double* scratch, int64_t scratch_size, cudaStream_t stream) {
  if (rows == 0 || k == 0) return;
  const RowSumSplit split = row_sum_split(rows, n, k);
  if (split.slices > 1 && scratch_size < rows * split.slices * k)
    throw Error("bias_row_sums: scratch of " + std::to_string(scratch_size) + " doubles, " +
                std::to_string(rows * split.slices * k) + " needed");
  const dim3 block(kSumRows, kSumLanes);
  const dim3 grid(static_cast<unsigned>(split.row_blocks), static_cast<unsigned>(split.slices),
                  static_cast<unsigned>(std::min<int64_t>(k, 65535)));
  bias_row_sums_kernel<T, Out>
      <<<grid, block, 0, stream>>>(a, rows, n, k, split.slice, split.slices, dst, ld_dst, scratch);
  CUDA_CHECK_LAUNCH();
  if (split.slices == 1) return;
  bias_row_sums_finish_kernel<Out><<<grid_for(rows * k, kThreads), kThreads, 0, stream>>>(
      scratch, rows, k, split.slices, dst, ld_dst);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void scale_repeated(const T* d, const T* in, int64_t per, int64_t k, T* out, cudaStream_t stream) {
  if (per == 0 || k == 0) return;
  scale_repeated_kernel<T><<<grid_for(per, kThreads), kThreads, 0, stream>>>(d, in, per, k, out);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void output_curvature(Loss loss, const T* rz, const T* curv, int64_t out, int64_t n, int64_t k,
                      T inv_n, T mse_scale, T* rg, cudaStream_t stream) {
  if (n * k == 0) return;
  output_curvature_kernel<T><<<grid_for(n * k, kThreads), kThreads, 0, stream>>>(
      loss, rz, curv, out, n, k, inv_n, mse_scale, rg);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void second_order_input(const T* dphi, const T* s, const T* rd, const T* ra, int64_t per, int64_t k,
                        T* rg, cudaStream_t stream) {
  if (per == 0 || k == 0) return;
  second_order_input_kernel<T>
      <<<grid_for(per, kThreads), kThreads, 0, stream>>>(dphi, s, rd, ra, per, k, rg);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void zero_block(T* y, int64_t rows, int64_t cols, int64_t ld, cudaStream_t stream) {
  if (rows * cols == 0) return;
  zero_block_kernel<T><<<grid_2d(rows, cols, kThreads), kThreads, 0, stream>>>(y, rows, cols, ld);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void find_nonfinite(const T* y, int64_t rows, int64_t cols, int64_t ld, unsigned long long* first,
                    cudaStream_t stream) {
  if (rows * cols == 0) return;
  find_nonfinite_kernel<T>
      <<<grid_2d(rows, cols, kThreads), kThreads, 0, stream>>>(y, rows, cols, ld, first);
  CUDA_CHECK_LAUNCH();
}

#define HSPEC_INSTANTIATE(T)                                                                       \
  template void broadcast_columns<T>(T*, int64_t, int64_t, int64_t, const T*, int64_t,             \
                                     cudaStream_t);                                                \
  template void activation_forward<T>(Activation, const T*, int64_t, T*, T*, T*, cudaStream_t);    \
  template void output_primal<T>(Loss, const T*, int64_t, int64_t, const int64_t*, const T*,       \
                                 double, T*, T*, double*, cudaStream_t);                           \
  template void backward_primal<T>(const T*, const T*, int64_t, T*, T*, cudaStream_t);             \
  template void accumulate_double<T>(double*, const T*, int64_t, cudaStream_t);                    \
  template void bias_row_sums<T, T>(const T*, int64_t, int64_t, int64_t, T*, int64_t, double*,     \
                                    int64_t, cudaStream_t);                                        \
  template void scale_repeated<T>(const T*, const T*, int64_t, int64_t, T*, cudaStream_t);         \
  template void output_curvature<T>(Loss, const T*, const T*, int64_t, int64_t, int64_t, T, T, T*, \
                                    cudaStream_t);                                                 \
  template void second_order_input<T>(const T*, const T*, const T*, const T*, int64_t, int64_t,    \
                                      T*, cudaStream_t);                                           \
  template void zero_block<T>(T*, int64_t, int64_t, int64_t, cudaStream_t);                        \
  template void find_nonfinite<T>(const T*, int64_t, int64_t, int64_t, unsigned long long*,        \
                                  cudaStream_t);

HSPEC_INSTANTIATE(float)
HSPEC_INSTANTIATE(double)
#undef HSPEC_INSTANTIATE

template void bias_row_sums<float, double>(const float*, int64_t, int64_t, int64_t, double*,
                                           int64_t, double*, int64_t, cudaStream_t);

}  // namespace hspec::cuda
