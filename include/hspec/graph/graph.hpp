// A model as a graph of ONNX-style operators: the form every model loader produces (the
// ONNX importer, the safetensors MLP) and the graph engine differentiates.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace hspec {

// A tensor whose values are known on the host: a parameter, a constant initializer, or a
// value folded at load time (shape subgraphs). Row-major (C order), as ONNX stores it.
struct GraphTensor {
  enum class Kind { Float, Int };
  Kind kind = Kind::Float;
  std::vector<int64_t> shape;  // {} is a scalar
  std::vector<double> values;  // Kind::Float: numel() values (any float dtype, widened)
  std::vector<int64_t> ints;   // Kind::Int: numel() values (any integer or bool dtype)

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  bool is_float() const { return kind == Kind::Float; }
};

// One attribute of a node, with ONNX's kinds (graphs and sparse tensors are not accepted).
struct GraphAttribute {
  enum class Kind { Int, Float, String, Ints, Floats, Tensor };
  Kind kind = Kind::Int;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  GraphTensor t;
};

// One operator application. Value names are unique in the graph (SSA, as in ONNX).
struct GraphNode {
  std::string op;    // ONNX op_type, e.g. "Conv"
  std::string name;  // the node's name in the file ("" when it has none), for messages
  std::vector<std::string> inputs;  // value names; "" for an omitted optional input
  std::vector<std::string> outputs;
  std::map<std::string, GraphAttribute> attrs;

  const GraphAttribute* attr(const std::string& key) const {
    auto it = attrs.find(key);
    return it == attrs.end() ? nullptr : &it->second;
  }
};

// A loaded model, after the loader's checks (the contract the engine relies on):
// - nodes are in topological order; every node input is `input`, a key of `initializers`
//   or an output of an earlier node; no value is produced twice;
// - shape subgraphs are folded: no node remains whose inputs are all initializers that
//   are not parameters (their results are initializers now);
// - `parameters` names the initializers that are differentiated (floating point), in the
//   order of the flat parameter vector; every other initializer is a constant;
// - dimension 0 of the graph input is the sample dimension and is not in input_shape.
struct Graph {
  std::string source;                // the file(s) it came from, for messages
  std::string input;                 // the data input's name
  std::vector<int64_t> input_shape;  // the shape of one sample, e.g. {1, 28, 28}
  bool input_is_int = false;         // integer inputs (token ids) rather than features
  std::string output;                // the value the loss is applied to: [N, outputs...]
  std::vector<GraphNode> nodes;
  std::map<std::string, GraphTensor> initializers;  // parameters and constants by name
  std::vector<std::string> parameters;              // differentiated initializers, in order

  int64_t num_params() const {
    int64_t n = 0;
    for (const auto& p : parameters) n += initializers.at(p).numel();
    return n;
  }
};

}  // namespace hspec
