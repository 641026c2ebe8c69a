// The data set a curvature run is evaluated on, and how to load it from files.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hspec {

// N samples of d features (row-major N x d, i.e. column-major d x N: one column per
// sample). Classification losses use labels; mse uses targets (row-major N x out).
struct Dataset {
  int64_t n = 0;
  int64_t d = 0;
  std::vector<float> inputs;
  std::vector<int64_t> labels;  // size n, or empty
  std::vector<float> targets;   // size n * target_dim, or empty
  int64_t target_dim = 0;
  std::string source;        // the file(s) it came from, for messages
  int64_t first_sample = 0;  // index in the file of sample 0 (a rank's shard), for messages
};

// Loads from a safetensors file (tensors `inputs`, and `labels` or `targets`) or from an
// IDX images file plus an optional IDX labels file; IDX images are scaled by 1/255.
// The format is detected from the file's bytes. Non-finite inputs, negative labels,
// empty data and shape mismatches are InputErrors naming the file.
Dataset load_dataset(const std::string& data_path, const std::string& labels_path = "");

// Keeps the first `samples` samples (when 0 < samples < n).
void truncate_dataset(Dataset& ds, int64_t samples);

}  // namespace hspec
