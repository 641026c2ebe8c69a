// CPU compute backend, part 2: im2col/col2im, max and average pooling, and the loss head
// (plain loops; the reference semantics a device backend must reproduce).
#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu_compute.hpp"
#include "hspec/graph/compute_math.hpp"

namespace hspec {

namespace {
// The output columns [lo, hi) whose input column ow * sw - pad_left + kj * dw is inside the
// input; computed once per kernel column so the copy loops need no bounds checks.
void valid_columns(const WindowGeom& g, int64_t kj, int64_t* lo, int64_t* hi) {
  const int64_t off = kj * g.dw - g.pad_left;  // iw = ow * sw + off
  int64_t a = off >= 0 ? 0 : (-off + g.sw - 1) / g.sw;
  int64_t b = g.width - off <= 0 ? 0 : (g.width - off + g.sw - 1) / g.sw;
  *lo = std::min(a, g.out_w);
  *hi = std::max(*lo, std::min(b, g.out_w));
}
}  // namespace

template <class T>
void CpuCompute<T>::im2col(const T* x, T* cols, const WindowGeom& g, int64_t groups,
                           int64_t per_group) {
  const int64_t C = g.channels, H = g.height, W = g.width, OP = g.out_plane();
  const int64_t CK = C * g.kh * g.kw;
  for (int64_t gr = 0; gr < groups; ++gr)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t ki = 0; ki < g.kh; ++ki)
        for (int64_t kj = 0; kj < g.kw; ++kj) {
          const int64_t row = (c * g.kh + ki) * g.kw + kj;
          int64_t lo, hi;
          valid_columns(g, kj, &lo, &hi);
          const int64_t off = kj * g.dw - g.pad_left;
          for (int64_t p = 0; p < per_group; ++p) {
            const T* xs = x + ((gr * per_group + p) * C + c) * H * W;
            T* dst = cols + ((gr * CK + row) * per_group + p) * OP;
            for (int64_t oh = 0; oh < g.out_h; ++oh) {
              const int64_t ih = oh * g.sh - g.pad_top + ki * g.dh;
              T* d = dst + oh * g.out_w;
              if (ih < 0 || ih >= H) {
                std::fill(d, d + g.out_w, T(0));
                continue;
              }
              const T* src = xs + ih * W + off;
              std::fill(d, d + lo, T(0));
              if (g.sw == 1)
                std::copy(src + lo, src + hi, d + lo);
              else
                for (int64_t ow = lo; ow < hi; ++ow) d[ow] = src[ow * g.sw];
              std::fill(d + hi, d + g.out_w, T(0));
            }
          }
        }
}

template <class T>
void CpuCompute<T>::col2im(const T* cols, T* x, const WindowGeom& g, int64_t groups,
                           int64_t per_group) {
  const int64_t C = g.channels, H = g.height, W = g.width, OP = g.out_plane();
  const int64_t CK = C * g.kh * g.kw;
  for (int64_t gr = 0; gr < groups; ++gr)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t ki = 0; ki < g.kh; ++ki)
        for (int64_t kj = 0; kj < g.kw; ++kj) {
          const int64_t row = (c * g.kh + ki) * g.kw + kj;
          int64_t lo, hi;
          valid_columns(g, kj, &lo, &hi);
          const int64_t off = kj * g.dw - g.pad_left;
          for (int64_t p = 0; p < per_group; ++p) {
            T* xs = x + ((gr * per_group + p) * C + c) * H * W;
            const T* src = cols + ((gr * CK + row) * per_group + p) * OP;
            for (int64_t oh = 0; oh < g.out_h; ++oh) {
              const int64_t ih = oh * g.sh - g.pad_top + ki * g.dh;
              if (ih < 0 || ih >= H) continue;
              T* d = xs + ih * W + off;
              const T* s = src + oh * g.out_w;
              if (g.sw == 1)
                for (int64_t ow = lo; ow < hi; ++ow) d[ow] += s[ow];
              else
                for (int64_t ow = lo; ow < hi; ++ow) d[ow * g.sw] += s[ow];
            }
          }
        }
}

template <class T>
void CpuCompute<T>::maxpool(const T* x, T* y, int64_t* argmax, const WindowGeom& g, int64_t batch) {
  const int64_t planes = batch * g.channels, IP = g.in_plane(), OP = g.out_plane();
  for (int64_t p = 0; p < planes; ++p) {
    const T* xs = x + p * IP;
    for (int64_t oh = 0; oh < g.out_h; ++oh)
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
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
        y[p * OP + oh * g.out_w + ow] = v;
        argmax[p * OP + oh * g.out_w + ow] = best;
      }
  }
}

template <class T>
void CpuCompute<T>::maxpool_gather(const T* x, T* y, const int64_t* argmax, const WindowGeom& g,
                                   int64_t batch, int64_t reps) {
  const int64_t planes = batch * g.channels, IP = g.in_plane(), OP = g.out_plane();
  for (int64_t r = 0; r < reps; ++r)
    for (int64_t p = 0; p < planes; ++p) {
      const T* xs = x + (r * planes + p) * IP;
      T* ys = y + (r * planes + p) * OP;
      const int64_t* am = argmax + p * OP;
      for (int64_t o = 0; o < OP; ++o) ys[o] = am[o] >= 0 ? xs[am[o]] : T(0);
    }
}

template <class T>
void CpuCompute<T>::maxpool_scatter(const T* gy, T* gx, const int64_t* argmax, const WindowGeom& g,
                                    int64_t batch, int64_t reps) {
  const int64_t planes = batch * g.channels, IP = g.in_plane(), OP = g.out_plane();
  for (int64_t r = 0; r < reps; ++r)
    for (int64_t p = 0; p < planes; ++p) {
      T* xs = gx + (r * planes + p) * IP;
      const T* ys = gy + (r * planes + p) * OP;
      const int64_t* am = argmax + p * OP;
      for (int64_t o = 0; o < OP; ++o)
        if (am[o] >= 0) xs[am[o]] += ys[o];
    }
}

template <class T>
void CpuCompute<T>::avgpool(const T* x, T* y, const WindowGeom& g, bool include_pad, int64_t batch,
                            bool accumulate) {
  const int64_t planes = batch * g.channels, IP = g.in_plane(), OP = g.out_plane();
  for (int64_t oh = 0; oh < g.out_h; ++oh)
    for (int64_t ow = 0; ow < g.out_w; ++ow) {
      const AvgWindow r = avg_window(g, oh, ow, include_pad);
      const T inv = r.divisor > 0 ? T(1) / T(r.divisor) : T(0);
      for (int64_t p = 0; p < planes; ++p) {
        const T* xs = x + p * IP;
        T s = T(0);
        for (int64_t ih = r.h0; ih < r.h1; ++ih)
          for (int64_t iw = r.w0; iw < r.w1; ++iw) s += xs[ih * g.width + iw];
        T& dst = y[p * OP + oh * g.out_w + ow];
        dst = (accumulate ? dst : T(0)) + s * inv;
      }
    }
}

template <class T>
void CpuCompute<T>::avgpool_adjoint(const T* gy, T* gx, const WindowGeom& g, bool include_pad,
                                    int64_t batch) {
  const int64_t planes = batch * g.channels, IP = g.in_plane(), OP = g.out_plane();
  for (int64_t oh = 0; oh < g.out_h; ++oh)
    for (int64_t ow = 0; ow < g.out_w; ++ow) {
      const AvgWindow r = avg_window(g, oh, ow, include_pad);
      const T inv = r.divisor > 0 ? T(1) / T(r.divisor) : T(0);
      for (int64_t p = 0; p < planes; ++p) {
        T* xs = gx + p * IP;
        const T v = gy[p * OP + oh * g.out_w + ow] * inv;
        for (int64_t ih = r.h0; ih < r.h1; ++ih)
          for (int64_t iw = r.w0; iw < r.w1; ++iw) xs[ih * g.width + iw] += v;
      }
    }
}

template <class T>
double CpuCompute<T>::loss_forward(Loss loss, const T* z, int64_t n, int64_t out,
                                   const int64_t* labels, const T* targets, T scale, T* grad,
                                   T* curv, int64_t* correct) {
  double sum = 0;
  int64_t right = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T* zi = z + i * out;
    T* gi = grad + i * out;
    if (loss == Loss::CE) {
      const int64_t y = labels[i];
      double zmax = zi[0];
      for (int64_t o = 1; o < out; ++o) zmax = std::max(zmax, double(zi[o]));
      double s = 0;
      for (int64_t o = 0; o < out; ++o) s += std::exp(double(zi[o]) - zmax);
      sum += zmax + std::log(s) - double(zi[y]);
      right += std::max_element(zi, zi + out) - zi == y ? 1 : 0;
      for (int64_t o = 0; o < out; ++o) {
        const double p = std::exp(double(zi[o]) - zmax) / s;
        curv[i * out + o] = T(p);
        gi[o] = T((p - (o == y ? 1.0 : 0.0)) * double(scale));
      }
    } else if (loss == Loss::BCE) {
      const double zz = zi[0], y = double(labels[i]);
      sum += std::max(zz, 0.0) - zz * y + std::log1p(std::exp(-std::fabs(zz)));
      right += (zz > 0) == (y > 0.5) ? 1 : 0;
      const double p = zz >= 0 ? 1.0 / (1.0 + std::exp(-zz)) : std::exp(zz) / (1.0 + std::exp(zz));
      curv[i] = T(p * (1.0 - p));
      gi[0] = T((p - y) * double(scale));
    } else {
      for (int64_t o = 0; o < out; ++o) {
        const double r = double(zi[o]) - double(targets[i * out + o]);
        sum += r * r / double(out);
        gi[o] = T(2.0 * r * double(scale) / double(out));
      }
    }
  }
  *correct = right;
  return sum;
}

template <class T>
void CpuCompute<T>::loss_curvature(Loss loss, const T* curv, const T* rz, T* out, int64_t n,
                                   int64_t out_dim, int64_t reps, T scale) {
  for (int64_t r = 0; r < reps; ++r)
    for (int64_t i = 0; i < n; ++i) {
      const T* x = rz + (r * n + i) * out_dim;
      T* dst = out + (r * n + i) * out_dim;
      if (loss == Loss::CE) {
        const T* p = curv + i * out_dim;
        T pr = 0;
        for (int64_t o = 0; o < out_dim; ++o) pr += p[o] * x[o];
        for (int64_t o = 0; o < out_dim; ++o) dst[o] = (p[o] * x[o] - p[o] * pr) * scale;
      } else if (loss == Loss::BCE) {
        dst[0] = curv[i] * x[0] * scale;
      } else {
        for (int64_t o = 0; o < out_dim; ++o) dst[o] = T(2) * x[o] * scale / T(out_dim);
      }
    }
}

// The members defined here (the class itself is instantiated in cpu_compute.cpp).
#define HSPEC_WINDOW_MEMBERS(T)                                                                 \
  template void CpuCompute<T>::im2col(const T*, T*, const WindowGeom&, int64_t, int64_t);       \
  template void CpuCompute<T>::col2im(const T*, T*, const WindowGeom&, int64_t, int64_t);       \
  template void CpuCompute<T>::maxpool(const T*, T*, int64_t*, const WindowGeom&, int64_t);     \
  template void CpuCompute<T>::maxpool_gather(const T*, T*, const int64_t*, const WindowGeom&,  \
                                              int64_t, int64_t);                                \
  template void CpuCompute<T>::maxpool_scatter(const T*, T*, const int64_t*, const WindowGeom&, \
                                               int64_t, int64_t);                               \
  template void CpuCompute<T>::avgpool(const T*, T*, const WindowGeom&, bool, int64_t, bool);   \
  template void CpuCompute<T>::avgpool_adjoint(const T*, T*, const WindowGeom&, bool, int64_t); \
  template double CpuCompute<T>::loss_forward(Loss, const T*, int64_t, int64_t, const int64_t*, \
                                              const T*, T, T*, T*, int64_t*);                   \
  template void CpuCompute<T>::loss_curvature(Loss, const T*, const T*, T*, int64_t, int64_t,   \
                                              int64_t, T);
HSPEC_WINDOW_MEMBERS(float)
HSPEC_WINDOW_MEMBERS(double)

}  // namespace hspec
