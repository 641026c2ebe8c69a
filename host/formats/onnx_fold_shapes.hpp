// Shape propagation for constant folding (onnx_fold.cpp): what a run knows of a value, and
// the output shapes of the engine's ops on values of known shape (onnx_fold_shapes.cpp).
// Internal to host/formats/.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "hspec/error.hpp"
#include "onnx_import.hpp"

namespace hspec::onnx_import::fold_shapes {

// What a run knows of a value: its shape (with the run's sample count), whether it carries
// the sample dimension, and its contents when it is a constant.
struct Value {
  std::vector<int64_t> shape;
  bool batched = false;
  // The samples may have left dimension 0 (a Transpose or Reshape of the samples, or a value
  // computed from one): they must then fill one dimension, wherever it is.
  bool moved = false;
  bool is_int = false;
  bool constant = false;
  GraphTensor t;
};

inline std::string label(const GraphNode& n) {
  return "node '" + (n.name.empty() ? n.outputs.empty() ? "?" : n.outputs[0] : n.name) + "' (" +
         n.op + ")";
}

inline int64_t attr_int(const GraphNode& n, const char* key, int64_t def) {
  const GraphAttribute* a = n.attr(key);
  return a ? a->i : def;
}

inline std::vector<int64_t> attr_ints(const GraphNode& n, const char* key,
                                      std::vector<int64_t> def) {
  const GraphAttribute* a = n.attr(key);
  return a ? a->ints : def;
}

inline std::vector<int64_t> broadcast_shapes(const std::vector<int64_t>& a,
                                             const std::vector<int64_t>& b,
                                             const std::string& where) {
  std::vector<int64_t> out(std::max(a.size(), b.size()), 1);
  for (size_t i = 0; i < out.size(); ++i) {
    const size_t oa = out.size() - a.size(), ob = out.size() - b.size();
    const int64_t da = i < oa ? 1 : a[i - oa], db = i < ob ? 1 : b[i - ob];
    if (da != db && da != 1 && db != 1) throw InputError(where + ": shapes do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// The output shapes of Split: sizes from the attribute or the constant second input, else
// equal parts (num_outputs, the last part possibly smaller).
std::vector<std::vector<int64_t>> split_shapes(const GraphNode& n,
                                               const std::vector<const Value*>& in,
                                               const std::string& where);
// The output shape of an engine op on values of known shape (`batch`: this run's sample
// count; `declared_batch`: the graph input's fixed dimension 0, or 0 when symbolic).
std::vector<int64_t> infer_shape(const GraphNode& n, const std::vector<const Value*>& in,
                                 int64_t batch, int64_t declared_batch, const std::string& where);

}  // namespace hspec::onnx_import::fold_shapes
