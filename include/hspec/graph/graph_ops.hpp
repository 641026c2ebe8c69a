// The ONNX operators hspec accepts, kept in one place: those the graph engine evaluates and
// differentiates, and those the ONNX importer evaluates on constants at load (shape
// subgraphs) and removes.
#pragma once
#include <algorithm>
#include <string>
#include <vector>

namespace hspec {

// Operators the graph engine runs on data (a loaded Graph holds only these).
inline const std::vector<std::string>& graph_engine_ops() {
  static const std::vector<std::string> ops = {"Add",
                                               "AveragePool",
                                               "BatchNormalization",
                                               "Cast",
                                               "Concat",
                                               "Conv",
                                               "Div",
                                               "Erf",
                                               "Expand",
                                               "Flatten",
                                               "Gather",
                                               "Gelu",
                                               "Gemm",
                                               "GlobalAveragePool",
                                               "Identity",
                                               "LayerNormalization",
                                               "MatMul",
                                               "MaxPool",
                                               "Mul",
                                               "Neg",
                                               "Pow",
                                               "ReduceMean",
                                               "Relu",
                                               "Reshape",
                                               "Sigmoid",
                                               "Slice",
                                               "Softmax",
                                               "Split",
                                               "Sqrt",
                                               "Squeeze",
                                               "Sub",
                                               "Tanh",
                                               "Transpose",
                                               "Unsqueeze",
                                               "Where"};
  return ops;
}

// Operators the importer evaluates when all their inputs are constants (or, for Shape, when
// the shape of its input is known); any left on data is refused.
inline const std::vector<std::string>& graph_fold_ops() {
  static const std::vector<std::string> ops = {
      "Abs",       "Add",      "And",      "Cast",
      "CastLike",  "Concat",   "Constant", "ConstantOfShape",
      "Div",       "Equal",    "Expand",   "Gather",
      "Greater",   "Identity", "Less",     "Max",
      "Min",       "Mod",      "Mul",      "Neg",
      "Not",       "Or",       "Pow",      "Range",
      "Reshape",   "Shape",    "Size",     "Slice",
      "Squeeze",   "Sqrt",     "Sub",      "Transpose",
      "Unsqueeze", "Where"};
  return ops;
}

inline bool is_graph_engine_op(const std::string& op) {
  const auto& v = graph_engine_ops();
  return std::find(v.begin(), v.end(), op) != v.end();
}

inline bool is_graph_fold_op(const std::string& op) {
  const auto& v = graph_fold_ops();
  return std::find(v.begin(), v.end(), op) != v.end();
}

}  // namespace hspec
