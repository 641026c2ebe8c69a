// Seeded synthetic models and data sets (the benchmark workloads, the README's example).
#include "hspec/workloads.hpp"

#include <cmath>

#include "hspec/activation_math.hpp"
#include "hspec/error.hpp"
#include "hspec/random.hpp"

namespace hspec {

Model random_mlp(const std::vector<int64_t>& sizes, Activation act, uint64_t seed) {
  if (sizes.size() < 2) throw Error("random_mlp: need at least an input and an output size");
  Model m;
  m.activation = act;
  for (size_t l = 0; l + 1 < sizes.size(); ++l) {
    Layer ly;
    ly.name = std::to_string(2 * l);
    ly.in = sizes[l];
    ly.out = sizes[l + 1];
    const double bound = 1.0 / std::sqrt(static_cast<double>(ly.in));
    ly.weight.resize(static_cast<size_t>(ly.out * ly.in));
    for (size_t i = 0; i < ly.weight.size(); ++i)
      ly.weight[i] = bound * (2 * rng::uniform(seed, 2 * l, i) - 1);
    ly.bias.resize(static_cast<size_t>(ly.out));
    for (size_t i = 0; i < ly.bias.size(); ++i)
      ly.bias[i] = bound * (2 * rng::uniform(seed, 2 * l + 1, i) - 1);
    m.layers.push_back(std::move(ly));
  }
  return m;
}

Dataset teacher_dataset(const Model& teacher, int64_t n, uint64_t seed) {
  Dataset ds;
  ds.n = n;
  ds.d = teacher.input_dim();
  ds.source = "synthetic";
  ds.inputs.resize(static_cast<size_t>(n * ds.d));
  for (size_t i = 0; i < ds.inputs.size(); ++i)
    ds.inputs[i] = static_cast<float>(rng::gaussian(seed, 0, i));
  ds.labels.assign(static_cast<size_t>(n), 0);
  // A plain loop forward pass: this runs once per problem and stays independent of the
  // operators under test.
  for (int64_t s = 0; s < n; ++s) {
    std::vector<double> x(ds.inputs.begin() + s * ds.d, ds.inputs.begin() + (s + 1) * ds.d);
    for (size_t l = 0; l < teacher.layers.size(); ++l) {
      const Layer& ly = teacher.layers[l];
      std::vector<double> a(static_cast<size_t>(ly.out));
      for (int64_t o = 0; o < ly.out; ++o) {
        double v = ly.has_bias ? ly.bias[o] : 0.0;
        for (int64_t i = 0; i < ly.in; ++i) v += ly.weight[o * ly.in + i] * x[i];
        const bool hidden = l + 1 < teacher.layers.size();
        a[o] = hidden ? activation_values(teacher.activation, v).f : v;
      }
      x = std::move(a);
    }
    int64_t best = 0;
    if (x.size() == 1) {
      best = x[0] > 0 ? 1 : 0;
    } else {
      for (size_t c = 1; c < x.size(); ++c)
        if (x[c] > x[best]) best = static_cast<int64_t>(c);
    }
    ds.labels[s] = best;
  }
  return ds;
}

const std::vector<Workload>& benchmark_workloads() {
  static const std::vector<Workload> w = {
      {"mlp_small", {784, 512, 512, 10}, Activation::Tanh, Loss::CE, 8192},
      {"mlp_wide", {3072, 2048, 2048, 2048, 10}, Activation::Tanh, Loss::CE, 8192},
  };
  return w;
}

}  // namespace hspec
