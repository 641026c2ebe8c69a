// Activation functions and their first and second derivatives, shared by the CPU backend
// and (through HSPEC_HD) the CUDA kernels so both compute the same formulas.
#pragma once
#include <cmath>

#include "hspec/mlp/model.hpp"

#if defined(__CUDACC__)
#define HSPEC_HD __host__ __device__
#else
#define HSPEC_HD
#endif

namespace hspec {

// phi(a), phi'(a), phi''(a) for one activation, computed together since they share work.
template <class T>
struct ActValues {
  T f, d1, d2;
};

template <class T>
HSPEC_HD inline ActValues<T> activation_values(Activation act, T a) {
  switch (act) {
    case Activation::Identity:
      return {a, T(1), T(0)};
    case Activation::Relu:
      // PyTorch's relu has derivative 0 at 0; the second derivative is 0 almost everywhere.
      return {a > T(0) ? a : T(0), a > T(0) ? T(1) : T(0), T(0)};
    case Activation::Tanh: {
      const T t = tanh(a);
      const T d1 = T(1) - t * t;
      return {t, d1, T(-2) * t * d1};
    }
    case Activation::Sigmoid: {
      // Written so neither branch overflows exp for large |a|.
      const T s = a >= T(0) ? T(1) / (T(1) + exp(-a)) : exp(a) / (T(1) + exp(a));
      const T d1 = s * (T(1) - s);
      return {s, d1, d1 * (T(1) - T(2) * s)};
    }
    case Activation::Gelu: {
      // PyTorch's default nn.GELU: a * Phi(a) with the exact erf.
      const T inv_sqrt2 = T(0.70710678118654752440);
      const T inv_sqrt2pi = T(0.39894228040143267794);
      const T cdf = T(0.5) * (T(1) + erf(a * inv_sqrt2));
      const T pdf = inv_sqrt2pi * exp(T(-0.5) * a * a);
      return {a * cdf, cdf + a * pdf, pdf * (T(2) - a * a)};
    }
  }
  return {a, T(1), T(0)};
}

}  // namespace hspec
