// CudaCompute, part 2: elementwise maps and their derivatives (the formulas of
// include/hspec/graph/compute_math.hpp, shared with the CPU backend), numpy-broadcast binary
// ops and broadcasts (one thread per output element), and reductions over axes: a fixed
// assignment of the summed elements to the threads of one block per output and a fixed-shape
// tree, no atomics, so a sum is the same bits on every run. CPU reference:
// host/backends/cpu/cpu_compute.cpp.
#include "cuda_compute.hpp"
#include "hspec/graph/compute_math.hpp"

namespace hspec::cuda {
namespace {

// Reductions of at most this many terms per output run one thread per output.
constexpr int64_t kSerialReduce = 32;

__device__ inline int64_t offset_of(const BroadcastIndex& b, int op, int64_t o) {
  int64_t off = 0;
  for (int ax = b.rank - 1; ax >= 0; --ax) {
    const int64_t e = b.ext[ax];
    const int64_t q = o / e;
    off += (o - q * e) * b.stride[op][ax];
    o = q;
  }
  return off;
}

// Appends axis (extent, strides) to b, merging it into the previous axis when it continues
// that axis contiguously in every operand.
void push_axis(BroadcastIndex& b, int64_t ext, int64_t s0, int64_t s1) {
  if (ext == 1) return;
  const int r = b.rank;
  if (r > 0 && b.stride[0][r - 1] == s0 * ext && b.stride[1][r - 1] == s1 * ext) {
    b.ext[r - 1] *= ext;
    b.stride[0][r - 1] = s0;
    b.stride[1][r - 1] = s1;
    return;
  }
  b.ext[r] = ext;
  b.stride[0][r] = s0;
  b.stride[1][r] = s1;
  b.rank = r + 1;
}

// Row-major strides of s, 0 on the axes where s is broadcast against full.
void broadcast_strides(const Shape& s, const Shape& full, int64_t* st) {
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    if (s[i] != full[i] && s[i] != 1)
      throw Error("graph compute: shape cannot broadcast (extent " + std::to_string(s[i]) +
                  " against " + std::to_string(full[i]) + ")");
    st[i] = (s[i] == 1 && full[i] != 1) ? 0 : acc;
    acc *= s[i];
  }
}

void check_ranks(const Shape& a, const Shape& b) {
  if (a.size() != b.size() || a.size() > size_t(kMaxRank) || a.empty())
    throw Error("graph compute: broadcast shapes of different or unsupported rank");
}

BroadcastIndex broadcast_index(const Shape& full, const Shape& sa, const Shape& sb) {
  int64_t ta[kMaxRank], tb[kMaxRank];
  broadcast_strides(sa, full, ta);
  broadcast_strides(sb, full, tb);
  BroadcastIndex b;
  for (size_t i = 0; i < full.size(); ++i) push_axis(b, full[i], ta[i], tb[i]);
  return b;
}

template <class T>
__global__ void unary_kernel(UnaryKind f, const T* x, T* y, int64_t n) {
  HSPEC_GRID_LOOP(i, n) {
    T v[3];
    unary_values(f, x[i], v);
    y[i] = v[0];
  }
}

// The derivative of x_i once per thread, applied to every repetition.
template <class T>
__global__ void unary_derivative_kernel(UnaryKind f, int order, const T* x, const T* s, const T* r,
                                        T* out, int64_t n, int64_t reps, bool accumulate) {
  HSPEC_GRID_LOOP(i, n) {
    T v[3];
    unary_values(f, x[i], v);
    const T d = v[order] * (s ? s[i] : T(1));
    for (int64_t j = 0; j < reps; ++j) {
      const int64_t q = j * n + i;
      out[q] = accumulate ? out[q] + d * r[q] : d * r[q];
    }
  }
}

template <class T>
__device__ inline T apply_binary(BinaryKind op, T x, T y) {
  switch (op) {
    case BinaryKind::Add:
      return x + y;
    case BinaryKind::Sub:
      return x - y;
    case BinaryKind::Mul:
      return x * y;
    case BinaryKind::Div:
      return x / y;
  }
  return x;
}

// out[o] (+)= alpha (a op b); with `copy`, out[o] (+)= alpha a (a broadcast).
template <class T>
__global__ void binary_kernel(BinaryKind op, bool copy, const T* a, const T* b, T* out,
                              BroadcastIndex ix, int64_t total, T alpha, bool accumulate) {
  HSPEC_GRID_LOOP(o, total) {
    const T x = a[offset_of(ix, 0, o)];
    const T v = alpha * (copy ? x : apply_binary(op, x, b[offset_of(ix, 1, o)]));
    out[o] = accumulate ? out[o] + v : v;
  }
}

// One thread per output: the summed terms in index order.
template <class T>
__global__ void reduce_serial_kernel(const T* src, BroadcastIndex kept, BroadcastIndex summed,
                                     int64_t outputs, int64_t terms, T* dst, T alpha,
                                     bool accumulate) {
  HSPEC_GRID_LOOP(o, outputs) {
    const T* base = src + offset_of(kept, 0, o);
    T sum = T(0);
    for (int64_t t = 0; t < terms; ++t) sum += base[offset_of(summed, 0, t)];
    dst[o] = (accumulate ? dst[o] : T(0)) + alpha * sum;
  }
}

// One block per output: thread x sums terms x, x + blockDim, ..., then a tree of fixed shape.
template <class T>
__global__ void __launch_bounds__(kGraphThreads)
    reduce_block_kernel(const T* src, BroadcastIndex kept, BroadcastIndex summed, int64_t outputs,
                        int64_t terms, T* dst, T alpha, bool accumulate) {
  __shared__ T part[kGraphThreads];
  for (int64_t o = blockIdx.x; o < outputs; o += gridDim.x) {
    const T* base = src + offset_of(kept, 0, o);
    T sum = T(0);
    for (int64_t t = threadIdx.x; t < terms; t += blockDim.x) sum += base[offset_of(summed, 0, t)];
    part[threadIdx.x] = sum;
    __syncthreads();
    for (int w = kGraphThreads / 2; w > 0; w /= 2) {
      if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
      __syncthreads();
    }
    if (threadIdx.x == 0) dst[o] = (accumulate ? dst[o] : T(0)) + alpha * part[0];
    __syncthreads();  // part[0] is read before the next output overwrites it
  }
}

}  // namespace

template <class T>
void CudaCompute<T>::unary(UnaryKind f, const T* x, T* y, int64_t n) {
  if (n <= 0) return;
  DeviceGuard guard(device_);
  unary_kernel<<<grid_for(n, kGraphThreads), kGraphThreads, 0, stream()>>>(f, x, y, n);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void CudaCompute<T>::unary_derivative(UnaryKind f, int order, const T* x, const T* s, const T* r,
                                      T* out, int64_t n, int64_t reps, bool accumulate) {
  if (order < 1 || order > 2) throw Error("graph compute: derivative order must be 1 or 2");
  if (n <= 0 || reps <= 0) return;
  DeviceGuard guard(device_);
  unary_derivative_kernel<<<grid_for(n, kGraphThreads), kGraphThreads, 0, stream()>>>(
      f, order, x, s, r, out, n, reps, accumulate);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void CudaCompute<T>::binary(BinaryKind op, const T* a, const Shape& sa, const T* b, const Shape& sb,
                            T* out, const Shape& so, T alpha, bool accumulate) {
  check_ranks(sa, so);
  check_ranks(sb, so);
  const int64_t total = shape_numel(so);
  const BroadcastIndex ix = broadcast_index(so, sa, sb);
  if (total <= 0) return;
  DeviceGuard guard(device_);
  binary_kernel<<<grid_for(total, kGraphThreads), kGraphThreads, 0, stream()>>>(
      op, false, a, b, out, ix, total, alpha, accumulate);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void CudaCompute<T>::broadcast_to(const T* src, const Shape& ss, T* dst, const Shape& sd, T alpha,
                                  bool accumulate) {
  check_ranks(ss, sd);
  const int64_t total = shape_numel(sd);
  const BroadcastIndex ix = broadcast_index(sd, ss, ss);
  if (total <= 0) return;
  DeviceGuard guard(device_);
  binary_kernel<<<grid_for(total, kGraphThreads), kGraphThreads, 0, stream()>>>(
      BinaryKind::Add, true, src, src, dst, ix, total, alpha, accumulate);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void CudaCompute<T>::reduce_to(const T* src, const Shape& ss, T* dst, const Shape& sd, T alpha,
                               bool accumulate) {
  check_ranks(ss, sd);
  int64_t st[kMaxRank];
  broadcast_strides(sd, ss, st);  // checks that sd is ss with some axes reduced to 1
  // The source strides split into the kept axes (row-major = dst order) and the summed ones.
  BroadcastIndex kept, summed;
  int64_t acc = 1;
  int64_t src_stride[kMaxRank];
  for (size_t i = ss.size(); i-- > 0;) {
    src_stride[i] = acc;
    acc *= ss[i];
  }
  for (size_t i = 0; i < ss.size(); ++i) {
    if (sd[i] == ss[i])
      push_axis(kept, ss[i], src_stride[i], 0);
    else
      push_axis(summed, ss[i], src_stride[i], 0);
  }
  const int64_t outputs = shape_numel(sd), terms = shape_numel(ss) / std::max<int64_t>(outputs, 1);
  if (outputs <= 0) return;
  DeviceGuard guard(device_);
  if (terms == 0) {
    if (!accumulate) fill(dst, outputs, T(0));
    return;
  }
  if (terms <= kSerialReduce) {
    reduce_serial_kernel<<<grid_for(outputs, kGraphThreads), kGraphThreads, 0, stream()>>>(
        src, kept, summed, outputs, terms, dst, alpha, accumulate);
  } else {
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(outputs, 65535));
    reduce_block_kernel<<<blocks, kGraphThreads, 0, stream()>>>(src, kept, summed, outputs, terms,
                                                                dst, alpha, accumulate);
  }
  CUDA_CHECK_LAUNCH();
}

#define HSPEC_ELEMENTWISE_MEMBERS(T)                                                               \
  template void CudaCompute<T>::unary(UnaryKind, const T*, T*, int64_t);                           \
  template void CudaCompute<T>::unary_derivative(UnaryKind, int, const T*, const T*, const T*, T*, \
                                                 int64_t, int64_t, bool);                          \
  template void CudaCompute<T>::binary(BinaryKind, const T*, const Shape&, const T*, const Shape&, \
                                       T*, const Shape&, T, bool);                                 \
  template void CudaCompute<T>::broadcast_to(const T*, const Shape&, T*, const Shape&, T, bool);   \
  template void CudaCompute<T>::reduce_to(const T*, const Shape&, T*, const Shape&, T, bool);
HSPEC_ELEMENTWISE_MEMBERS(float)
HSPEC_ELEMENTWISE_MEMBERS(double)
#undef HSPEC_ELEMENTWISE_MEMBERS

}  // namespace hspec::cuda
