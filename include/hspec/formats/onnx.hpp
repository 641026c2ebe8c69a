// Importing a model from an ONNX file (as PyTorch's exporters write it) into a Graph, and
// replacing its initializers with a checkpoint's tensors.
#pragma once
#include <string>

#include "hspec/graph/graph.hpp"

namespace hspec {

// Whether this build can read ONNX files (the HSPEC_ONNX build option, on when
// libonnx-dev and libprotobuf-dev are found).
bool built_with_onnx();

// Reads an ONNX model, its initializers and the external data files next to it; checks
// the graph (topological order, known ops, types) and folds its shape subgraphs, so the
// result meets the Graph contract. InputError naming the file and the problem otherwise;
// UsageError("... built without ONNX support") in a build without it.
//
// Parameters: a floating-point initializer is a parameter when it feeds a weight slot,
// directly or through Transpose/Identity/Reshape/Squeeze/Unsqueeze/Cast: Conv inputs 1-2,
// Gemm 1-2, MatMul 0-1, BatchNormalization 1-2 (never the running mean and variance),
// LayerNormalization 1-2, Add 0-1 unless a scalar, Gather 0, Expand 0 unless a scalar (a
// class token broadcast over the batch). Every other initializer is a
// constant. Order: first use by the topologically sorted nodes (PyTorch's parameters()
// order on the exports tested). An initializer in a weight slot that is also used anywhere
// else (an exporter merged equal tensors) is an InputError naming both uses.
// The graph input's dimension 0 is the samples, fixed or named in the file; a folded
// Reshape target that depends on it is rewritten as [-1, per-sample dims...].
Graph load_onnx(const std::string& path);

// Replaces initializers by name with the tensors of a safetensors state_dict (a model
// checkpoint for the same architecture), BatchNorm running statistics included
// (num_batches_tracked, which eval-mode graphs never read, is skipped). A tensor the graph
// lacks, a shape that differs, or integer versus floating point is an InputError naming the
// tensor and both files (and the export that keeps parameters); the graph is then unchanged.
// Built in every configuration (it needs no protobuf).
void apply_params(Graph& g, const std::string& safetensors_path);

}  // namespace hspec
