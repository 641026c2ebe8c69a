// Helpers for the graph-engine tests: a small Graph builder with seeded parameters, graph
// operators in fp64, and central finite differences of the loss and of the gradient (the
// independent references for the backward and the R-operator rules).
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "hspec/error.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/graph/graph.hpp"
#include "hspec/graph/graph_operator.hpp"
#include "hspec/graph/plan.hpp"
#include "hspec/random.hpp"

namespace hspec::graphtest {

struct Builder {
  Graph g;
  uint64_t seed = 1;
  uint64_t stream = 0;

  Builder(std::vector<int64_t> input_shape, uint64_t s) : seed(s) {
    g.source = "test.onnx";
    g.input = "x";
    g.input_shape = std::move(input_shape);
  }
  // A parameter ~ N(0, scale^2).
  std::string param(const std::string& name, std::vector<int64_t> shape, double scale) {
    GraphTensor t;
    t.shape = std::move(shape);
    for (int64_t i = 0; i < t.numel(); ++i)
      t.values.push_back(scale * rng::gaussian(seed, stream, i));
    ++stream;
    g.initializers[name] = t;
    g.parameters.push_back(name);
    return name;
  }
  std::string constant(const std::string& name, std::vector<int64_t> shape,
                       std::vector<double> values) {
    GraphTensor t;
    t.shape = std::move(shape);
    t.values = std::move(values);
    g.initializers[name] = t;
    return name;
  }
  std::string ints(const std::string& name, std::vector<int64_t> values) {
    GraphTensor t;
    t.kind = GraphTensor::Kind::Int;
    t.shape = {int64_t(values.size())};
    t.ints = std::move(values);
    g.initializers[name] = t;
    return name;
  }
  GraphNode& node(const std::string& op, std::vector<std::string> inputs, const std::string& out) {
    GraphNode n;
    n.op = op;
    n.name = out + "_node";
    n.inputs = std::move(inputs);
    n.outputs = {out};
    g.nodes.push_back(n);
    g.output = out;
    return g.nodes.back();
  }
};

inline GraphAttribute attr_i(int64_t v) {
  GraphAttribute a;
  a.kind = GraphAttribute::Kind::Int;
  a.i = v;
  return a;
}
inline GraphAttribute attr_f(double v) {
  GraphAttribute a;
  a.kind = GraphAttribute::Kind::Float;
  a.f = v;
  return a;
}
inline GraphAttribute attr_s(const std::string& v) {
  GraphAttribute a;
  a.kind = GraphAttribute::Kind::String;
  a.s = v;
  return a;
}
inline GraphAttribute attr_is(std::vector<int64_t> v) {
  GraphAttribute a;
  a.kind = GraphAttribute::Kind::Ints;
  a.ints = std::move(v);
  return a;
}

// n samples of d Gaussian features with labels (ce: classes, bce: 2) or targets (mse).
inline Dataset data(int64_t n, int64_t d, Loss loss, int64_t out, uint64_t seed) {
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

inline GraphOperatorOptions gopt(Loss loss, Curvature c = Curvature::Hessian, int64_t block = 4) {
  GraphOperatorOptions o;
  o.loss = loss;
  o.curvature = c;
  o.max_block = block;
  return o;
}

inline std::vector<double> flat_params(const Graph& g) {
  std::vector<double> t;
  for (const auto& p : g.parameters)
    for (double v : g.initializers.at(p).values) t.push_back(v);
  return t;
}

inline Graph with_params(Graph g, const std::vector<double>& theta) {
  size_t at = 0;
  for (const auto& p : g.parameters)
    for (double& v : g.initializers.at(p).values) v = theta[at++];
  return g;
}

inline double loss_at(const Graph& g, const Dataset& ds, Loss loss) {
  return GraphCurvatureOperator<double>(g, ds, gopt(loss)).loss_value();
}
inline std::vector<double> grad_at(const Graph& g, const Dataset& ds, Loss loss) {
  return GraphCurvatureOperator<double>(g, ds, gopt(loss)).gradient();
}

// Central differences of the loss in every parameter.
inline std::vector<double> fd_gradient(const Graph& g, const Dataset& ds, Loss loss, double h) {
  const std::vector<double> theta = flat_params(g);
  std::vector<double> out(theta.size());
  for (size_t i = 0; i < theta.size(); ++i) {
    std::vector<double> tp = theta, tm = theta;
    tp[i] += h;
    tm[i] -= h;
    out[i] =
        (loss_at(with_params(g, tp), ds, loss) - loss_at(with_params(g, tm), ds, loss)) / (2 * h);
  }
  return out;
}

// (g(theta + h v) - g(theta - h v)) / 2h: the reference for H v.
inline std::vector<double> fd_hvp(const Graph& g, const Dataset& ds, Loss loss,
                                  const std::vector<double>& v, double h) {
  const std::vector<double> theta = flat_params(g);
  std::vector<double> tp = theta, tm = theta;
  for (size_t i = 0; i < theta.size(); ++i) {
    tp[i] += h * v[i];
    tm[i] -= h * v[i];
  }
  const auto gp = grad_at(with_params(g, tp), ds, loss), gm = grad_at(with_params(g, tm), ds, loss);
  std::vector<double> d(theta.size());
  for (size_t i = 0; i < d.size(); ++i) d[i] = (gp[i] - gm[i]) / (2 * h);
  return d;
}

inline std::vector<double> gauss(int64_t n, uint64_t seed, uint64_t stream) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = rng::gaussian(seed, stream, i);
  return v;
}

template <class T>
std::vector<double> apply_block(CurvatureOperator<T>& op, const std::vector<double>& x, int64_t k) {
  const int64_t n = op.dim();
  std::vector<T> xt(x.begin(), x.end()), y(size_t(n * k));
  op.apply(BlockView<const T>(xt.data(), n, k), BlockView<T>(y.data(), n, k));
  return std::vector<double>(y.begin(), y.end());
}

inline double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0, s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d += (a[i] - b[i]) * (a[i] - b[i]);
    s += b[i] * b[i];
  }
  return std::sqrt(d / std::max(s, 1e-300));
}

// x [T, D] -> x W (a parameter) -> ... built by `body` ... -> mean over T -> Gemm -> [3].
template <class Body>
inline Graph sequence_model(int64_t T, int64_t D, uint64_t seed, Body body) {
  Builder b({T, D}, seed);
  b.node("MatMul", {"x", b.param("w_in", {D, D}, 0.6)}, "h");
  const std::string out = body(b, "h");
  b.node("ReduceMean", {out}, "pooled").attrs["axes"] = attr_is({1});
  b.g.nodes.back().attrs["keepdims"] = attr_i(0);
  b.node("Gemm", {"pooled", b.param("w_out", {D, 3}, 0.6), b.param("b_out", {3}, 0.2)}, "y");
  return b.g;
}

// make_plan must refuse `g` with an InputError whose message holds every one of `parts`
// (the node's quoted name, the op, what is wrong); `what` names the case in a failure.
inline void expect_plan_refused(const Graph& g, const std::vector<std::string>& parts,
                                const std::string& what) {
  try {
    make_plan(g);
    ADD_FAILURE() << "accepted: " << what;
  } catch (const InputError& e) {
    const std::string msg = e.what();
    for (const std::string& part : parts) EXPECT_NE(msg.find(part), std::string::npos) << msg;
  }
}

// The full check for one graph: backward against finite differences of the loss, the
// Hessian product against finite differences of the gradient along two directions, the
// symmetry u.Hv = v.Hu, k batched directions against single products, chunked against whole, fp32
// against fp64.
inline void check_graph(const Graph& g, const Dataset& ds, Loss loss, double tol = 1e-6) {
  GraphCurvatureOperator<double> op(g, ds, gopt(loss, Curvature::Hessian, 3));
  const int64_t P = op.dim();
  ASSERT_GT(P, 0);
  const auto fd = fd_gradient(g, ds, loss, 1e-5);
  EXPECT_LT(rel_err(op.gradient(), fd), tol) << "gradient vs finite differences";
  std::vector<double> block;
  for (uint64_t s = 0; s < 3; ++s) {
    const auto v = gauss(P, 77, s);
    block.insert(block.end(), v.begin(), v.end());
  }
  const auto hv = apply_block(op, block, 3);
  for (int64_t j = 0; j < 2; ++j) {
    const std::vector<double> v(block.begin() + j * P, block.begin() + (j + 1) * P);
    const std::vector<double> got(hv.begin() + j * P, hv.begin() + (j + 1) * P);
    EXPECT_LT(rel_err(got, fd_hvp(g, ds, loss, v, 1e-4)), tol)
        << "Hv vs finite differences, direction " << j;
    EXPECT_LT(rel_err(apply_block(op, v, 1), got), 1e-12) << "batched vs single product";
  }
  // Chunks of 2 samples (each with its own cached primal pass) give the same products.
  GraphOperatorOptions chunked = gopt(loss, Curvature::Hessian, 3);
  chunked.chunk = 2;
  GraphCurvatureOperator<double> opc(g, ds, chunked);
  EXPECT_LT(rel_err(apply_block(opc, block, 3), hv), 1e-12) << "chunked vs whole";
  // fp32: the same rules in single precision, close to fp64.
  GraphCurvatureOperator<float> op32(g, ds, gopt(loss, Curvature::Hessian, 3));
  EXPECT_LT(rel_err(apply_block(op32, block, 3), hv), 2e-4) << "fp32 vs fp64 products";
  EXPECT_LT(rel_err(op32.gradient(), op.gradient()), 2e-4) << "fp32 vs fp64 gradient";
  double uhv = 0, vhu = 0, scale = 0;
  for (int64_t i = 0; i < P; ++i) {
    uhv += block[size_t(i)] * hv[size_t(P + i)];
    vhu += block[size_t(P + i)] * hv[size_t(i)];
    scale += std::abs(block[size_t(i)] * hv[size_t(P + i)]);
  }
  EXPECT_LT(std::abs(uhv - vhu), 1e-12 * std::max(scale, 1.0)) << "u.Hv vs v.Hu";
}

}  // namespace hspec::graphtest
