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
// Error("hspec was built without ONNX support") in a build without it.
Graph load_onnx(const std::string& path);

// Replaces initializers by name with the tensors of a safetensors state_dict (a model
// checkpoint for the same architecture). A tensor the graph lacks, or a shape or dtype
// that differs, is an InputError naming the tensor and both files.
void apply_params(Graph& g, const std::string& safetensors_path);

}  // namespace hspec
