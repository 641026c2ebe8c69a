// The data set a curvature run is evaluated on, and how to load it from files.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hspec {

// N samples of d features (row-major N x d, i.e. column-major d x N: one column per
// sample), or N sequences of d integer token ids. Classification losses use labels;
// mse uses targets (row-major N x out).
struct Dataset {
  int64_t n = 0;
  int64_t d = 0;
  std::vector<float> inputs;    // n * d features, or empty when the data are token ids
  std::vector<int64_t> ids;     // n * d token ids (integer `inputs`), or empty
  std::vector<int64_t> labels;  // n (labels [N]) or n * label_dim (labels [N, T]), or empty
  int64_t label_dim = 0;        // 0: one label per sample; T: per-position labels [N, T]
  std::vector<float> targets;   // size n * target_dim, or empty
  int64_t target_dim = 0;
  std::string source;        // the file(s) it came from, for messages
  int64_t first_sample = 0;  // index in the file of sample 0 (a rank's shard), for messages
};

// Loads from a safetensors file (tensors `inputs`, and `labels` or `targets`) or from an
// IDX images file plus an optional IDX labels file; IDX images are scaled by 1/255.
// The format is detected from the file's bytes. Non-finite inputs, negative labels,
// empty data and shape mismatches are InputErrors naming the file.
struct DatasetOptions {
  // An integer safetensors `inputs` is read as token ids (ds.ids, never converted to
  // float); a float one stays features (the graph operator then refuses it).
  bool token_ids = false;
  // `labels` may be [N, T] (one label per position: sequence cross-entropy).
  bool position_labels = false;
};
Dataset load_dataset(const std::string& data_path, const std::string& labels_path = "",
                     const DatasetOptions& options = {});

// Keeps the first `samples` samples (when 0 < samples < n).
void truncate_dataset(Dataset& ds, int64_t samples);

}  // namespace hspec
