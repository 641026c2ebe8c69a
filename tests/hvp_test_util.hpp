// Shared helpers for the curvature-operator tests: seeded models and data, dense matrices
// from operator products, and an independent loop-based double-precision forward pass.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hspec/backends/cpu/blas.hpp"
#include "hspec/backends/cpu/cpu_space.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/graph/graph_operator.hpp"
#include "hspec/mlp/model.hpp"
#include "hspec/mlp/reference_operator.hpp"
#include "hspec/random.hpp"
#include "hspec/solvers/lanczos.hpp"

namespace hspec::hvptest {

using Dense = std::vector<double>;  // column-major n x n

// An MLP with the given widths {in, h1, ..., out}; weights ~ N(0, scale^2 / in) and biases
// ~ N(0, 0.25), all from counter-based streams so every run sees the same model.
inline Model make_mlp(const std::vector<int64_t>& widths, Activation act, uint64_t seed,
                      bool bias = true, double scale = 1.0) {
  Model m;
  m.activation = act;
  for (size_t l = 0; l + 1 < widths.size(); ++l) {
    Layer ly;
    ly.name = std::to_string(2 * l);
    ly.in = widths[l];
    ly.out = widths[l + 1];
    ly.has_bias = bias;
    for (int64_t i = 0; i < ly.in * ly.out; ++i)
      ly.weight.push_back(scale * rng::gaussian(seed, 2 * l, i) / std::sqrt(double(ly.in)));
    if (bias)
      for (int64_t i = 0; i < ly.out; ++i)
        ly.bias.push_back(0.5 * rng::gaussian(seed, 2 * l + 1, i));
    m.layers.push_back(ly);
  }
  return m;
}

// n samples of d Gaussian features; labels in [0, classes) for ce, {0, 1} for bce,
// Gaussian targets [n, out] for mse.
inline Dataset make_data(int64_t n, int64_t d, Loss loss, int64_t out, uint64_t seed) {
  Dataset ds;
  ds.n = n;
  ds.d = d;
  ds.source = "synthetic";
  for (int64_t i = 0; i < n * d; ++i) ds.inputs.push_back(float(rng::gaussian(seed, 100, i)));
  if (loss == Loss::MSE) {
    ds.target_dim = out;
    for (int64_t i = 0; i < n * out; ++i) ds.targets.push_back(float(rng::gaussian(seed, 101, i)));
  } else {
    const uint64_t classes = loss == Loss::BCE ? 2 : uint64_t(out);
    for (int64_t i = 0; i < n; ++i) ds.labels.push_back(int64_t(rng::bits(seed, 102, i) % classes));
  }
  return ds;
}

inline MlpReferenceOptions options(Loss loss, Curvature c = Curvature::Hessian,
                                   int64_t max_block = 8) {
  MlpReferenceOptions o;
  o.loss = loss;
  o.curvature = c;
  o.max_block = max_block;
  return o;
}

// The two implementations of an MLP's products: the graph operator on the MLP as a graph
// (what `analyze` runs) and the MLP reference operator. Tests against closed forms and
// finite differences run on both.
enum class Engine { Graph, Reference };
constexpr Engine kEngines[] = {Engine::Graph, Engine::Reference};
inline std::string engine_name(Engine e) {
  return e == Engine::Graph ? "graph" : "reference";
}
inline GraphOperatorOptions graph_options(const MlpReferenceOptions& o) {
  GraphOperatorOptions g;
  g.curvature = o.curvature;
  g.loss = o.loss;
  g.max_block = o.max_block;
  g.chunk = o.chunk;
  g.memory_budget = o.memory_budget;
  return g;
}
template <class T = double>
std::unique_ptr<CurvatureOperator<T>> make_operator(Engine e, const Model& m, const Dataset& ds,
                                                    const MlpReferenceOptions& o) {
  if (e == Engine::Reference) return std::make_unique<MlpReferenceOperator<T>>(m, ds, o);
  return std::make_unique<GraphCurvatureOperator<T>>(graph_from_mlp(m), ds, graph_options(o));
}
// Calls f(op) with each engine's operator as its own type (for loss_value(), gradient()).
template <class T = double, class F>
void for_each_engine(const Model& m, const Dataset& ds, const MlpReferenceOptions& o, F&& f) {
  {
    SCOPED_TRACE("graph engine");
    GraphCurvatureOperator<T> op(graph_from_mlp(m), ds, graph_options(o));
    f(op);
  }
  {
    SCOPED_TRACE("MLP reference operator");
    MlpReferenceOperator<T> op(m, ds, o);
    f(op);
  }
}

// The dense matrix of an operator, column by column from products with identity blocks of
// max_block() columns, in double.
template <class T>
Dense dense_from_operator(CurvatureOperator<T>& op) {
  const int64_t n = op.dim(), kmax = op.max_block();
  Dense a(static_cast<size_t>(n * n), 0.0);
  for (int64_t j0 = 0; j0 < n; j0 += kmax) {
    const int64_t k = std::min(kmax, n - j0);
    std::vector<T> x(static_cast<size_t>(n * k), T(0)), y(static_cast<size_t>(n * k), T(0));
    for (int64_t c = 0; c < k; ++c) x[(j0 + c) + c * n] = T(1);
    op.apply(BlockView<const T>(x.data(), n, k), BlockView<T>(y.data(), n, k));
    for (int64_t i = 0; i < n * k; ++i) a[j0 * n + i] = double(y[i]);
  }
  return a;
}

inline Dense symmetrised(const Dense& a, int64_t n) {
  Dense s(a.size());
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < n; ++i) s[i + j * n] = 0.5 * (a[i + j * n] + a[j + i * n]);
  return s;
}

// Ascending eigenvalues by LAPACK.
inline std::vector<double> eigenvalues(Dense a, int64_t n) {
  std::vector<double> w(static_cast<size_t>(n));
  blas::syev(n, a.data(), n, w.data());
  return w;
}

inline double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

inline double norm(const std::vector<double>& a) {
  return std::sqrt(dot(a, a));
}

// ||a - b|| / ||b||.
inline double rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return norm(d) / norm(b);
}

inline std::vector<double> gaussian_vector(int64_t n, uint64_t seed, uint64_t stream) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = rng::gaussian(seed, stream, i);
  return v;
}

// C v for one direction.
inline std::vector<double> apply_one(CurvatureOperator<double>& op, const std::vector<double>& v) {
  const int64_t n = op.dim();
  std::vector<double> y(static_cast<size_t>(n));
  op.apply(BlockView<const double>(v.data(), n, 1), BlockView<double>(y.data(), n, 1));
  return y;
}

// The model with flat parameters theta.
inline Model with_params(Model m, const std::vector<double>& theta) {
  m.unflatten(theta);
  return m;
}

// The library's gradient at theta, from a fresh operator (used for finite differences of
// the gradient, which the product must match, never for the product itself).
inline std::vector<double> gradient_at(const Model& m, const std::vector<double>& theta,
                                       const Dataset& ds, Loss loss) {
  MlpReferenceOperator<double> op(with_params(m, theta), ds, options(loss));
  return op.gradient();
}

// (g(theta + h v) - g(theta - h v)) / 2h from two fresh operators: the reference for C v.
inline std::vector<double> gradient_difference(const Model& m, const Dataset& ds, Loss loss,
                                               const std::vector<double>& v, double h) {
  const std::vector<double> theta = m.flatten();
  std::vector<double> tp = theta, tm = theta;
  for (size_t i = 0; i < theta.size(); ++i) {
    tp[i] += h * v[i];
    tm[i] -= h * v[i];
  }
  const auto gp = gradient_at(m, tp, ds, loss), gm = gradient_at(m, tm, ds, loss);
  std::vector<double> d(theta.size());
  for (size_t i = 0; i < d.size(); ++i) d[i] = (gp[i] - gm[i]) / (2 * h);
  return d;
}

// ---- the independent reference: a scalar forward pass, loops only, double throughout ----

inline double ref_activation(Activation a, double x) {
  switch (a) {
    case Activation::Identity:
      return x;
    case Activation::Relu:
      return x > 0 ? x : 0.0;
    case Activation::Tanh:
      return std::tanh(x);
    case Activation::Sigmoid:
      return 1.0 / (1.0 + std::exp(-x));
    case Activation::Gelu:
      return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
  }
  return x;
}

// The network's outputs for one sample; min_abs_pre tracks the smallest |pre-activation| of
// the hidden layers (relu finite differences must stay away from the kink).
inline std::vector<double> ref_forward(const Model& m, const float* x, double* min_abs_pre) {
  std::vector<double> h(x, x + m.input_dim());
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const Layer& ly = m.layers[l];
    std::vector<double> a(static_cast<size_t>(ly.out));
    for (int64_t o = 0; o < ly.out; ++o) {
      double s = ly.has_bias ? ly.bias[o] : 0.0;
      for (int64_t i = 0; i < ly.in; ++i) s += ly.weight[o * ly.in + i] * h[i];
      a[o] = s;
    }
    if (l + 1 < m.layers.size()) {
      for (double& v : a) {
        if (min_abs_pre) *min_abs_pre = std::min(*min_abs_pre, std::abs(v));
        v = ref_activation(m.activation, v);
      }
    }
    h = a;
  }
  return h;
}

// Per-sample loss from the outputs z (PyTorch's per-sample terms before the mean).
inline double ref_sample_loss(const std::vector<double>& z, Loss loss, const Dataset& ds,
                              int64_t s) {
  const int64_t out = int64_t(z.size());
  if (loss == Loss::CE) {
    const double zmax = *std::max_element(z.begin(), z.end());
    double sum = 0;
    for (double v : z) sum += std::exp(v - zmax);
    return std::log(sum) + zmax - z[ds.labels[s]];
  }
  if (loss == Loss::BCE) {
    // -log sigmoid(z) for y = 1 and -log(1 - sigmoid(z)) for y = 0, i.e. softplus(-z) and
    // softplus(z); softplus(t) = t + log(1 + e^-t) for t > 0 so that e^t cannot overflow.
    auto softplus = [](double t) {
      return t > 0 ? t + std::log1p(std::exp(-t)) : std::log1p(std::exp(t));
    };
    return ds.labels[s] == 1 ? softplus(-z[0]) : softplus(z[0]);
  }
  double sum = 0;
  for (int64_t o = 0; o < out; ++o) {
    const double r = z[o] - double(ds.targets[s * out + o]);
    sum += r * r;
  }
  return sum / double(out);
}

inline double ref_loss(const Model& m, const Dataset& ds, Loss loss,
                       double* min_abs_pre = nullptr) {
  double total = 0;
  for (int64_t s = 0; s < ds.n; ++s)
    total += ref_sample_loss(ref_forward(m, ds.inputs.data() + s * ds.d, min_abs_pre), loss, ds, s);
  return total / double(ds.n);
}

// Central differences of ref_loss in every parameter.
inline std::vector<double> ref_gradient_fd(const Model& m, const Dataset& ds, Loss loss, double h) {
  const std::vector<double> theta = m.flatten();
  std::vector<double> g(theta.size());
  for (size_t p = 0; p < theta.size(); ++p) {
    std::vector<double> tp = theta, tm = theta;
    tp[p] += h;
    tm[p] -= h;
    g[p] =
        (ref_loss(with_params(m, tp), ds, loss) - ref_loss(with_params(m, tm), ds, loss)) / (2 * h);
  }
  return g;
}

template <class T>
LanczosResult<T> lanczos(CurvatureOperator<T>& op, const LanczosOptions& opt) {
  CpuSpace<T> space;
  return BlockLanczos<T>(op, space).compute(opt);
}

}  // namespace hspec::hvptest
