// Seeded test models and data shared by the GPU test files, and the device check every GPU
// test starts with.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "hspec/backends/cuda/cuda_compute.hpp"
#include "hspec/device.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/graph/graph_operator.hpp"
#include "hspec/mlp/model.hpp"
#include "hspec/mlp/reference_operator.hpp"
#include "hspec/random.hpp"

// Skips the test without a usable CUDA device, saying why; with HSPEC_REQUIRE_GPU set in the
// environment (scripts/gpu-check.sh) fails it instead, so a machine whose driver is missing
// or too old cannot pass the GPU suite by skipping all of it.
#define HSPEC_REQUIRE_DEVICE()                                            \
  do {                                                                    \
    if (::hspec::cuda_device_count() == 0) {                              \
      if (std::getenv("HSPEC_REQUIRE_GPU"))                               \
        FAIL() << "no CUDA device: " << ::hspec::cuda_probe_reason();     \
      GTEST_SKIP() << "no CUDA device: " << ::hspec::cuda_probe_reason(); \
    }                                                                     \
  } while (0)

namespace hspec::gputest {

// An MLP's curvature operator on a card, as `hspec analyze --device cuda` builds it: the
// model as a graph (graph_from_mlp) on the graph operator with the CUDA compute backend.
// `base` holds the CPU MLP engine's options (the reference the tests compare with).
struct CudaMlpOptions {
  MlpReferenceOptions base;  // curvature, loss, max_block, chunk
  int device = 0;
  bool tf32 = false;        // fp32 GEMMs on TF32 tensor cores (T = float only)
  uint64_t max_memory = 0;  // the operator's byte budget; 0 = its default
};

template <class T>
std::unique_ptr<GraphCurvatureOperator<T>> cuda_mlp_operator(const Model& m, const Dataset& ds,
                                                             const CudaMlpOptions& o) {
  GraphOperatorOptions g;
  g.curvature = o.base.curvature;
  g.loss = o.base.loss;
  g.max_block = o.base.max_block;
  g.chunk = o.base.chunk;
  if (o.max_memory > 0) g.memory_budget = o.max_memory;
  return std::make_unique<GraphCurvatureOperator<T>>(graph_from_mlp(m), ds, g,
                                                     make_cuda_compute<T>(o.device, o.tf32));
}

// A seeded MLP with weights N(0, 1.5^2 / fan_in) and small biases; layer 1 (when there is
// one) has no bias, so both layouts are exercised.
inline Model test_mlp(const std::vector<int64_t>& sizes, Activation act, uint64_t seed) {
  Model m;
  m.activation = act;
  for (size_t l = 0; l + 1 < sizes.size(); ++l) {
    Layer ly;
    ly.name = std::to_string(2 * l);
    ly.in = sizes[l];
    ly.out = sizes[l + 1];
    ly.has_bias = l != 1;
    const double scale = 1.5 / std::sqrt(static_cast<double>(ly.in));
    for (int64_t i = 0; i < ly.in * ly.out; ++i)
      ly.weight.push_back(scale * rng::gaussian(seed, 2 * l, i));
    for (int64_t o = 0; ly.has_bias && o < ly.out; ++o)
      ly.bias.push_back(0.3 * rng::gaussian(seed, 2 * l + 1, o));
    m.layers.push_back(ly);
  }
  return m;
}

// n standard-normal samples; labels uniform over the classes of the loss, or normal targets.
inline Dataset test_data(const Model& m, Loss loss, int64_t n, uint64_t seed) {
  Dataset ds;
  ds.n = n;
  ds.d = m.input_dim();
  ds.source = "synthetic";
  for (int64_t i = 0; i < n * ds.d; ++i)
    ds.inputs.push_back(static_cast<float>(rng::gaussian(seed, 100, i)));
  const int64_t out = m.output_dim();
  if (loss == Loss::MSE) {
    ds.target_dim = out;
    for (int64_t i = 0; i < n * out; ++i)
      ds.targets.push_back(static_cast<float>(rng::gaussian(seed, 101, i)));
  } else {
    const uint64_t classes = loss == Loss::BCE ? 2 : static_cast<uint64_t>(out);
    for (int64_t i = 0; i < n; ++i)
      ds.labels.push_back(static_cast<int64_t>(rng::bits(seed, 102, i) % classes));
  }
  return ds;
}

}  // namespace hspec::gputest
