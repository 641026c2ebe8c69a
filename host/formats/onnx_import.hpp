// The ONNX importer's stages after the protobuf reader: graph checks, the choice of
// parameters, and constant folding with shape propagation. Internal to host/formats/.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "hspec/graph/graph.hpp"

namespace hspec::onnx_import {

// What the reader produces: the file's graph as it is, initializers decoded, `input` and
// `output` chosen, `input_shape` holding the declared dims after dimension 0.
struct RawModel {
  Graph g;
  std::string file;            // for messages
  int64_t declared_batch = 0;  // the input's dimension 0 when the export fixed it, else 0
};

// The largest tensor the importer materialises (a file's tensor must also fit in the file).
constexpr int64_t kMaxElements = int64_t(1) << 28;
// The largest tensor folding may create (ConstantOfShape, Expand, Range).
constexpr int64_t kMaxFoldedElements = int64_t(1) << 22;

// Checks SSA form and sorts nodes topologically (InputError on cycles, undefined values,
// values produced twice, unknown ops).
void check_and_sort(RawModel& m);

// Decides which initializers are parameters and their order (see onnx.hpp); InputError on a
// parameter that feeds two weight slots, is not floating point or holds NaN/Inf.
void choose_parameters(RawModel& m);

// Folds shape subgraphs and constants into initializers, propagating per-sample shapes;
// rewrites data Reshape targets so the sample axis stays -1; checks every remaining node is
// an engine op and the output is [N, k].
void fold_constants(RawModel& m);

// Evaluates a fold op (graph_fold_ops) on constant inputs (nullptr for an omitted optional
// input). `where` names the node for messages; `like_is_int` is CastLike's target kind.
GraphTensor eval_fold_op(const GraphNode& n, const std::vector<const GraphTensor*>& in,
                         bool like_is_int, const std::string& where);

// The data-movement fold ops (Reshape, Squeeze, Unsqueeze, Concat, Gather, Slice,
// Transpose, Expand): false when `n` is none of them. Inputs checked by eval_fold_op.
bool eval_layout_op(const GraphNode& n, const std::vector<const GraphTensor*>& in,
                    const std::string& where, GraphTensor& result);

// The tensor's values as int64 (Int kind), InputError naming `where` otherwise.
std::vector<int64_t> as_ints(const GraphTensor& t, const std::string& where);

// Product of dims with overflow and negativity checks (InputError naming `what`).
int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& what);

}  // namespace hspec::onnx_import
