// Seeded synthetic models and data sets (the benchmark workloads, the README's example).
#include "hspec/mlp/workloads.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <thread>

#include "hspec/backends/cpu/blas.hpp"
#include "hspec/error.hpp"
#include "hspec/mlp/activation_math.hpp"
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
  // The teacher's forward pass in double with BLAS, a chunk of samples at a time (the wide
  // benchmark model has 14.7M weights and 8192 samples: 240 GFLOP, minutes with a reference
  // BLAS on one core). Chunks are independent, so threads take them round robin; each
  // sample's label depends only on its own chunk, so the result does not depend on them.
  std::vector<std::vector<double>> w;
  for (const Layer& ly : teacher.layers) w.emplace_back(ly.weight.begin(), ly.weight.end());
  const int64_t chunk = 512, chunks = (n + chunk - 1) / chunk;
  auto label_chunk = [&](int64_t c) {
    const int64_t s0 = c * chunk, m = std::min(chunk, n - s0);
    std::vector<double> x(ds.inputs.begin() + s0 * ds.d, ds.inputs.begin() + (s0 + m) * ds.d);
    for (size_t l = 0; l < teacher.layers.size(); ++l) {
      const Layer& ly = teacher.layers[l];
      std::vector<double> a(static_cast<size_t>(ly.out * m), 0.0);
      for (int64_t i = 0; i < m && ly.has_bias; ++i)
        std::copy(ly.bias.begin(), ly.bias.end(), a.begin() + i * ly.out);
      // weight [out, in] row-major is W^T column-major: A = W X.
      blas::gemm('T', 'N', ly.out, m, ly.in, 1.0, w[l].data(), ly.in, x.data(), ly.in, 1.0,
                 a.data(), ly.out);
      if (l + 1 < teacher.layers.size())
        for (double& v : a) v = activation_values(teacher.activation, v).f;
      x = std::move(a);
    }
    const int64_t out = teacher.output_dim();
    for (int64_t i = 0; i < m; ++i) {
      const double* z = x.data() + i * out;
      int64_t best = 0;
      if (out == 1) {
        best = z[0] > 0 ? 1 : 0;
      } else {
        for (int64_t c2 = 1; c2 < out; ++c2)
          if (z[c2] > z[best]) best = c2;
      }
      ds.labels[s0 + i] = best;
    }
  };
  // Small problems (tests) stay on the calling thread.
  const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(teacher.num_params());
  const int64_t threads =
      flops < 1e9 ? 1
                  : std::min<int64_t>(chunks, std::max(1u, std::thread::hardware_concurrency()));
  if (threads <= 1) {
    for (int64_t c = 0; c < chunks; ++c) label_chunk(c);
    return ds;
  }
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(threads));
  for (int64_t t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      try {
        for (int64_t c = t; c < chunks; c += threads) label_chunk(c);
      } catch (...) {
        errors[static_cast<size_t>(t)] = std::current_exception();
      }
    });
  }
  for (std::thread& th : pool) th.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
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
