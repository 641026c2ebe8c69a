// The scalar formulas of the graph engine's compute seam that every backend must evaluate
// identically: the named elementwise functions with their first and second derivatives, and
// the window of an average-pooling output with ONNX's divisor. Written once for the CPU
// backend (host/backends/cpu/) and the CUDA kernels (kernels/graph/), which compile them as
// __host__ __device__ through HSPEC_HD.
#pragma once
#include <cmath>
#include <cstdint>

#include "hspec/graph/compute.hpp"

#ifndef HSPEC_HD
#if defined(__CUDACC__)
#define HSPEC_HD __host__ __device__
#else
#define HSPEC_HD
#endif
#endif

namespace hspec {

// v[0..2] = phi(x), phi'(x), phi''(x) of the named elementwise function.
template <class T>
HSPEC_HD inline void unary_values(UnaryKind f, T x, T* v) {
#if !defined(__CUDA_ARCH__)
  // On the host the std:: overloads (float stays float); on the device CUDA's own.
  using std::erf;
  using std::exp;
  using std::sqrt;
  using std::tanh;
#endif
  switch (f) {
    case UnaryKind::Relu:  // derivative 0 at 0, as PyTorch
      v[0] = x > T(0) ? x : T(0);
      v[1] = x > T(0) ? T(1) : T(0);
      v[2] = T(0);
      return;
    case UnaryKind::Tanh: {
      const T t = tanh(x);
      v[0] = t;
      v[1] = T(1) - t * t;
      v[2] = T(-2) * t * v[1];
      return;
    }
    case UnaryKind::Sigmoid: {
      // Written so neither branch overflows exp for large |x|.
      const T s = x >= T(0) ? T(1) / (T(1) + exp(-x)) : exp(x) / (T(1) + exp(x));
      v[0] = s;
      v[1] = s * (T(1) - s);
      v[2] = v[1] * (T(1) - T(2) * s);
      return;
    }
    case UnaryKind::Erf: {
      const T d = T(1.12837916709551257390) * exp(-x * x);  // 2/sqrt(pi) e^{-x^2}
      v[0] = erf(x);
      v[1] = d;
      v[2] = T(-2) * x * d;
      return;
    }
    case UnaryKind::GeluErf: {
      const T cdf = T(0.5) * (T(1) + erf(x * T(0.70710678118654752440)));
      const T pdf = T(0.39894228040143267794) * exp(T(-0.5) * x * x);
      v[0] = x * cdf;
      v[1] = cdf + x * pdf;
      v[2] = pdf * (T(2) - x * x);
      return;
    }
    case UnaryKind::GeluTanh: {
      // 0.5 x (1 + tanh(u)), u = c (x + 0.044715 x^3).
      const T c = T(0.79788456080286535588), a = T(0.044715);
      const T u = c * (x + a * x * x * x), du = c * (T(1) + T(3) * a * x * x),
              ddu = c * T(6) * a * x;
      const T t = tanh(u), s = T(1) - t * t;
      v[0] = T(0.5) * x * (T(1) + t);
      v[1] = T(0.5) * (T(1) + t) + T(0.5) * x * s * du;
      v[2] = s * du - x * t * s * du * du + T(0.5) * x * s * ddu;
      return;
    }
    case UnaryKind::Sqrt: {  // undefined below 0 (NaN, caught by the finiteness checks)
      const T r = sqrt(x);
      v[0] = r;
      v[1] = T(0.5) / r;
      v[2] = T(-0.25) / (r * x);
      return;
    }
    case UnaryKind::Rsqrt: {
      const T r = T(1) / sqrt(x);
      v[0] = r;
      v[1] = T(-0.5) * r / x;
      v[2] = T(0.75) * r / (x * x);
      return;
    }
    case UnaryKind::Reciprocal: {
      const T r = T(1) / x;
      v[0] = r;
      v[1] = -r * r;
      v[2] = T(2) * r * r * r;
      return;
    }
  }
}

// The input cells [h0, h1) x [w0, w1) of average-pooling output (oh, ow), and ONNX's divisor.
struct AvgWindow {
  int64_t h0, h1, w0, w1, divisor;
};

HSPEC_HD inline AvgWindow avg_window(const WindowGeom& g, int64_t oh, int64_t ow,
                                     bool include_pad) {
  const int64_t hs = oh * g.sh - g.pad_top, ws = ow * g.sw - g.pad_left;
  const int64_t he = hs + g.kh, we = ws + g.kw;
  AvgWindow r{hs > 0 ? hs : 0, he < g.height ? he : g.height, ws > 0 ? ws : 0,
              we < g.width ? we : g.width, 0};
  if (include_pad) {
    // Padding cells count; cells beyond the padded extent do not.
    const int64_t hp = g.height + g.pad_bottom, wp = g.width + g.pad_right;
    r.divisor = ((he < hp ? he : hp) - hs) * ((we < wp ? we : wp) - ws);
  } else {
    const int64_t dh = r.h1 - r.h0, dw = r.w1 - r.w0;
    r.divisor = (dh > 0 ? dh : 0) * (dw > 0 ? dw : 0);
  }
  return r;
}

}  // namespace hspec
