// CudaCompute, part 3: convolution windows (im2col and its adjoint col2im) and pooling (max
// with a saved argmax, ties to the first; average with ONNX's divisor, from
// include/hspec/graph/compute_math.hpp) with their adjoints. The adjoints gather: one thread
// per input cell sums the windows that hold it, in the order the CPU loops add them, so
// nothing is written by two threads and no float atomics are needed. CPU reference:
// host/backends/cpu/cpu_compute_window.cpp.
#include "cuda_compute.hpp"
#include "hspec/graph/compute_math.hpp"

namespace hspec::cuda {
namespace {

// The output positions o in [lo, hi] whose window tap `tap` (0 <= tap < taps) lands on input
// coordinate i: o * stride - pad + tap * dil == i. Visits them in increasing o.
template <class F>
__device__ inline void for_each_tap(int64_t i, int64_t taps, int64_t stride, int64_t pad,
                                    int64_t dil, int64_t out, F f) {
  for (int64_t tap = taps - 1; tap >= 0; --tap) {  // o grows as tap falls
    const int64_t t = i + pad - tap * dil;
    if (t < 0 || t % stride != 0) continue;
    const int64_t o = t / stride;
    if (o < out) f(o, tap);
  }
}

// cols[gr, row, p, oh, ow] for row = (c, ki, kj); zero where the tap is in the padding.
template <class T>
__global__ void im2col_kernel(const T* x, T* cols, WindowGeom g, int64_t groups,
                              int64_t per_group) {
  const int64_t OP = g.out_h * g.out_w, CK = g.channels * g.kh * g.kw;
  HSPEC_GRID_LOOP(e, groups * CK * per_group * OP) {
    int64_t r = e;
    const int64_t ow = r % g.out_w;
    r /= g.out_w;
    const int64_t oh = r % g.out_h;
    r /= g.out_h;
    const int64_t p = r % per_group;
    r /= per_group;
    const int64_t row = r % CK;
    const int64_t gr = r / CK;
    const int64_t kj = row % g.kw, ki = (row / g.kw) % g.kh, c = row / (g.kw * g.kh);
    const int64_t ih = oh * g.sh - g.pad_top + ki * g.dh, iw = ow * g.sw - g.pad_left + kj * g.dw;
    const bool inside = ih >= 0 && ih < g.height && iw >= 0 && iw < g.width;
    cols[e] =
        inside ? x[(((gr * per_group + p) * g.channels + c) * g.height + ih) * g.width + iw] : T(0);
  }
}

// x[gr, p, c, ih, iw] += the cols entries that im2col read from it, kernel rows then columns.
template <class T>
__global__ void col2im_kernel(const T* cols, T* x, WindowGeom g, int64_t groups,
                              int64_t per_group) {
  const int64_t OP = g.out_h * g.out_w, CK = g.channels * g.kh * g.kw;
  HSPEC_GRID_LOOP(e, groups * per_group * g.channels * g.height * g.width) {
    int64_t r = e;
    const int64_t iw = r % g.width;
    r /= g.width;
    const int64_t ih = r % g.height;
    r /= g.height;
    const int64_t c = r % g.channels;
    r /= g.channels;
    const int64_t p = r % per_group;
    const int64_t gr = r / per_group;
    T acc = x[e];
    // In the CPU's order: kernel rows, then kernel columns, ascending.
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      const int64_t th = ih + g.pad_top - ki * g.dh;
      if (th < 0 || th % g.sh != 0 || th / g.sh >= g.out_h) continue;
      const int64_t oh = th / g.sh;
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        const int64_t tw = iw + g.pad_left - kj * g.dw;
        if (tw < 0 || tw % g.sw != 0 || tw / g.sw >= g.out_w) continue;
        const int64_t row = (c * g.kh + ki) * g.kw + kj;
        acc += cols[((gr * CK + row) * per_group + p) * OP + oh * g.out_w + tw / g.sw];
      }
    }
    x[e] = acc;
  }
}

template <class T>
__global__ void maxpool_kernel(const T* x, T* y, int64_t* argmax, WindowGeom g, int64_t planes) {
  const int64_t OP = g.out_h * g.out_w, IP = g.height * g.width;
  HSPEC_GRID_LOOP(e, planes * OP) {
    const int64_t p = e / OP, o = e - p * OP, oh = o / g.out_w, ow = o - oh * g.out_w;
    const T* xs = x + p * IP;
    int64_t best = -1;
    T v = T(0);
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      const int64_t ih = oh * g.sh - g.pad_top + ki * g.dh;
      if (ih < 0 || ih >= g.height) continue;
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        const int64_t iw = ow * g.sw - g.pad_left + kj * g.dw;
        if (iw < 0 || iw >= g.width) continue;
        const int64_t at = ih * g.width + iw;
        if (best < 0 || xs[at] > v) {  // strict: ties keep the first in scan order
          best = at;
          v = xs[at];
        }
      }
    }
    y[e] = v;
    argmax[e] = best;
  }
}

// y[r, p, o] = x[r, p, argmax[p, o]] (0 for a window entirely in the padding).
template <class T>
__global__ void maxpool_gather_kernel(const T* x, T* y, const int64_t* argmax, int64_t planes,
                                      int64_t IP, int64_t OP, int64_t reps) {
  HSPEC_GRID_LOOP(e, reps * planes * OP) {
    const int64_t rp = e / OP, o = e - rp * OP, p = rp % planes;
    const int64_t a = argmax[p * OP + o];
    y[e] = a >= 0 ? x[rp * IP + a] : T(0);
  }
}

// gx[r, p, cell] += the gy[r, p, o] of the windows whose argmax is that cell, o ascending.
template <class T>
__global__ void maxpool_scatter_kernel(const T* gy, T* gx, const int64_t* argmax, WindowGeom g,
                                       int64_t planes, int64_t reps) {
  const int64_t OP = g.out_h * g.out_w, IP = g.height * g.width;
  HSPEC_GRID_LOOP(e, reps * planes * IP) {
    const int64_t rp = e / IP, cell = e - rp * IP, p = rp % planes;
    const int64_t ih = cell / g.width, iw = cell - ih * g.width;
    const int64_t* am = argmax + p * OP;
    const T* ys = gy + rp * OP;
    T acc = gx[e];
    for_each_tap(ih, g.kh, g.sh, g.pad_top, g.dh, g.out_h, [&](int64_t oh, int64_t) {
      for_each_tap(iw, g.kw, g.sw, g.pad_left, g.dw, g.out_w, [&](int64_t ow, int64_t) {
        const int64_t o = oh * g.out_w + ow;
        if (am[o] == cell) acc += ys[o];
      });
    });
    gx[e] = acc;
  }
}

template <class T>
__global__ void avgpool_kernel(const T* x, T* y, WindowGeom g, bool include_pad, int64_t planes,
                               bool accumulate) {
  const int64_t OP = g.out_h * g.out_w, IP = g.height * g.width;
  HSPEC_GRID_LOOP(e, planes * OP) {
    const int64_t p = e / OP, o = e - p * OP, oh = o / g.out_w, ow = o - oh * g.out_w;
    const AvgWindow r = avg_window(g, oh, ow, include_pad);
    const T inv = r.divisor > 0 ? T(1) / T(r.divisor) : T(0);
    const T* xs = x + p * IP;
    T s = T(0);
    for (int64_t ih = r.h0; ih < r.h1; ++ih)
      for (int64_t iw = r.w0; iw < r.w1; ++iw) s += xs[ih * g.width + iw];
    y[e] = (accumulate ? y[e] : T(0)) + s * inv;
  }
}

// gx[p, cell] += gy[p, o] / divisor(o) over the windows o holding the cell, o ascending.
// Average pooling has no dilation (a window is kh x kw contiguous cells).
template <class T>
__global__ void avgpool_adjoint_kernel(const T* gy, T* gx, WindowGeom g, bool include_pad,
                                       int64_t planes) {
  const int64_t OP = g.out_h * g.out_w, IP = g.height * g.width;
  HSPEC_GRID_LOOP(e, planes * IP) {
    const int64_t p = e / IP, cell = e - p * IP;
    const int64_t ih = cell / g.width, iw = cell - ih * g.width;
    const T* ys = gy + p * OP;
    T acc = gx[e];
    for_each_tap(ih, g.kh, g.sh, g.pad_top, 1, g.out_h, [&](int64_t oh, int64_t) {
      for_each_tap(iw, g.kw, g.sw, g.pad_left, 1, g.out_w, [&](int64_t ow, int64_t) {
        const AvgWindow r = avg_window(g, oh, ow, include_pad);
        const T inv = r.divisor > 0 ? T(1) / T(r.divisor) : T(0);
        acc += ys[oh * g.out_w + ow] * inv;
      });
    });
    gx[e] = acc;
  }
}

}  // namespace

template <class T>
void CudaCompute<T>::im2col(const T* x, T* cols, const WindowGeom& g, int64_t groups,
                            int64_t per_group) {
  const int64_t total = groups * g.channels * g.kh * g.kw * per_group * g.out_plane();
  if (total <= 0) return;
  DeviceGuard guard(device_);
  im2col_kernel<<<grid_for(total, kGraphThreads), kGraphThreads, 0, stream()>>>(x, cols, g, groups,
                                                                                per_group);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void CudaCompute<T>::col2im(const T* cols, T* x, const WindowGeom& g, int64_t groups,
                            int64_t per_group) {
  const int64_t total = groups * per_group * g.channels * g.in_plane();
  if (total <= 0 || g.out_plane() <= 0) return;
  DeviceGuard guard(device_);
  col2im_kernel<<<grid_for(total, kGraphThreads), kGraphThreads, 0, stream()>>>(cols, x, g, groups,
                                                                                per_group);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void CudaCompute<T>::maxpool(const T* x, T* y, int64_t* argmax, const WindowGeom& g,
                             int64_t batch) {
  const int64_t planes = batch * g.channels, total = planes * g.out_plane();
  if (total <= 0) return;
  DeviceGuard guard(device_);
  maxpool_kernel<<<grid_for(total, kGraphThreads), kGraphThreads, 0, stream()>>>(x, y, argmax, g,
                                                                                 planes);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void CudaCompute<T>::maxpool_gather(const T* x, T* y, const int64_t* argmax, const WindowGeom& g,
                                    int64_t batch, int64_t reps) {
  const int64_t planes = batch * g.channels, total = reps * planes * g.out_plane();
  if (total <= 0) return;
  DeviceGuard guard(device_);
  maxpool_gather_kernel<<<grid_for(total, kGraphThreads), kGraphThreads, 0, stream()>>>(
      x, y, argmax, planes, g.in_plane(), g.out_plane(), reps);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void CudaCompute<T>::maxpool_scatter(const T* gy, T* gx, const int64_t* argmax, const WindowGeom& g,
                                     int64_t batch, int64_t reps) {
  const int64_t planes = batch * g.channels, total = reps * planes * g.in_plane();
  if (total <= 0 || g.out_plane() <= 0) return;
  DeviceGuard guard(device_);
  maxpool_scatter_kernel<<<grid_for(total, kGraphThreads), kGraphThreads, 0, stream()>>>(
      gy, gx, argmax, g, planes, reps);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void CudaCompute<T>::avgpool(const T* x, T* y, const WindowGeom& g, bool include_pad, int64_t batch,
                             bool accumulate) {
  const int64_t planes = batch * g.channels, total = planes * g.out_plane();
  if (total <= 0) return;
  DeviceGuard guard(device_);
  avgpool_kernel<<<grid_for(total, kGraphThreads), kGraphThreads, 0, stream()>>>(
      x, y, g, include_pad, planes, accumulate);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void CudaCompute<T>::avgpool_adjoint(const T* gy, T* gx, const WindowGeom& g, bool include_pad,
                                     int64_t batch) {
  const int64_t planes = batch * g.channels, total = planes * g.in_plane();
  if (total <= 0 || g.out_plane() <= 0) return;
  DeviceGuard guard(device_);
  avgpool_adjoint_kernel<<<grid_for(total, kGraphThreads), kGraphThreads, 0, stream()>>>(
      gy, gx, g, include_pad, planes);
  CUDA_CHECK_LAUNCH();
}

#define HSPEC_WINDOW_MEMBERS(T)                                                                  \
  template void CudaCompute<T>::im2col(const T*, T*, const WindowGeom&, int64_t, int64_t);       \
  template void CudaCompute<T>::col2im(const T*, T*, const WindowGeom&, int64_t, int64_t);       \
  template void CudaCompute<T>::maxpool(const T*, T*, int64_t*, const WindowGeom&, int64_t);     \
  template void CudaCompute<T>::maxpool_gather(const T*, T*, const int64_t*, const WindowGeom&,  \
                                               int64_t, int64_t);                                \
  template void CudaCompute<T>::maxpool_scatter(const T*, T*, const int64_t*, const WindowGeom&, \
                                                int64_t, int64_t);                               \
  template void CudaCompute<T>::avgpool(const T*, T*, const WindowGeom&, bool, int64_t, bool);   \
  template void CudaCompute<T>::avgpool_adjoint(const T*, T*, const WindowGeom&, bool, int64_t);
HSPEC_WINDOW_MEMBERS(float)
HSPEC_WINDOW_MEMBERS(double)
#undef HSPEC_WINDOW_MEMBERS

}  // namespace hspec::cuda
