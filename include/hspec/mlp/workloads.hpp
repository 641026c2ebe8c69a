// Seeded synthetic problems: PyTorch-style random MLPs, standard-normal inputs and labels
// from a teacher network. The benchmark workloads (mlp_small, mlp_wide) are built from these.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "hspec/formats/dataset.hpp"
#include "hspec/mlp/model.hpp"

namespace hspec {

// Weights and biases uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), as nn.Linear initialises.
Model random_mlp(const std::vector<int64_t>& sizes, Activation act, uint64_t seed);

// n standard-normal samples of the model's input width, labelled by argmax of `teacher`
// (a single output is thresholded at 0 for bce).
Dataset teacher_dataset(const Model& teacher, int64_t n, uint64_t seed);

struct Workload {
  std::string name;
  std::vector<int64_t> sizes;
  Activation activation;
  Loss loss;
  int64_t samples;
};

// mlp_small (784-512-512-10 tanh ce, 8192) and mlp_wide (3072-2048-2048-2048-10 tanh ce, 8192).
const std::vector<Workload>& benchmark_workloads();

}  // namespace hspec
