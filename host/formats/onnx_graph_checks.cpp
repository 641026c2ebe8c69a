// The importer's graph checks: SSA form and topological order, and the choice of parameters
// (which initializers are differentiated, in which order; tied initializers refused).
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "hspec/error.hpp"
#include "hspec/graph/graph_ops.hpp"
#include "onnx_import.hpp"

namespace hspec::onnx_import {
namespace {

std::string node_label(const GraphNode& n, size_t index) {
  return "node '" + (n.name.empty() ? "#" + std::to_string(index) : n.name) + "' (" + n.op + ")";
}

// Weight slots: the inputs of these ops that hold a model's learned tensors.
bool is_weight_slot(const std::string& op, size_t slot) {
  if (op == "Conv" || op == "ConvTranspose" || op == "Gemm") return slot == 1 || slot == 2;
  if (op == "BatchNormalization" || op == "LayerNormalization") return slot == 1 || slot == 2;
  if (op == "MatMul" || op == "Add") return slot <= 1;
  if (op == "Gather") return slot == 0;
  // A learned token broadcast over the batch (a ViT's class token: Expand(cls_token, [N, 1, D])
  // before the Concat with the patch embeddings).
  if (op == "Expand") return slot == 0;
  return false;
}

// Ops through which a weight reaches its slot unchanged in value (a transposed Linear weight,
// a reshaped bias): their initializer input is still the model's parameter.
bool is_weight_passthrough(const std::string& op, size_t slot) {
  return slot == 0 && (op == "Transpose" || op == "Identity" || op == "Reshape" ||
                       op == "Unsqueeze" || op == "Squeeze" || op == "Cast");
}

// Uses that read only a tensor's shape or type, never its values.
bool reads_shape_only(const std::string& op, size_t slot) {
  return op == "Shape" || op == "Size" || (op == "CastLike" && slot == 1);
}

struct Use {
  std::string where;  // "Conv input 1 of node 'x'"
  bool weight = false;
};

}  // namespace

int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& what) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw InputError(what + ": negative dimension " + std::to_string(d));
    if (d != 0 && n > INT64_MAX / d)
      throw InputError(what + ": the product of its dimensions overflows");
    n *= d;
  }
  return n;
}

void check_and_sort(RawModel& m) {
  Graph& g = m.g;
  // Who defines each value; a value defined twice is an error wherever it is.
  std::map<std::string, size_t> producer;
  std::set<std::string> defined = {g.input};
  for (const auto& [name, t] : g.initializers) {
    if (name == g.input)
      throw InputError(m.file + ": '" + name + "' is both the input and an initializer");
    defined.insert(name);
  }
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const GraphNode& n = g.nodes[i];
    if (!is_graph_engine_op(n.op) && !is_graph_fold_op(n.op))
      throw InputError(m.file + ": " + node_label(n, i) + ": operator '" + n.op +
                       "' is not supported by hspec");
    if (n.outputs.empty() || n.outputs[0].empty())
      throw InputError(m.file + ": " + node_label(n, i) + " has no output");
    for (const auto& out : n.outputs) {
      if (out.empty()) continue;
      if (defined.count(out) || producer.count(out))
        throw InputError(m.file + ": " + node_label(n, i) + " produces '" + out +
                         "', which is already defined");
      producer[out] = i;
    }
  }
  // Kahn's algorithm, taking ready nodes in file order, so a sorted file keeps its order.
  const size_t count = g.nodes.size();
  std::vector<int> pending(count, 0);
  std::map<std::string, std::vector<size_t>> consumers;
  for (size_t i = 0; i < count; ++i) {
    for (const auto& in : g.nodes[i].inputs) {
      if (in.empty() || defined.count(in)) continue;
      if (!producer.count(in))
        throw InputError(m.file + ": " + node_label(g.nodes[i], i) + " reads '" + in +
                         "', which nothing defines");
      ++pending[i];
      consumers[in].push_back(i);
    }
  }
  std::set<size_t> ready;
  for (size_t i = 0; i < count; ++i)
    if (pending[i] == 0) ready.insert(i);
  std::vector<GraphNode> sorted;
  sorted.reserve(count);
  while (!ready.empty()) {
    const size_t i = *ready.begin();
    ready.erase(ready.begin());
    for (const auto& out : g.nodes[i].outputs)
      for (size_t c : consumers[out])
        if (--pending[c] == 0) ready.insert(c);
    sorted.push_back(std::move(g.nodes[i]));
  }
  if (sorted.size() != count) {
    for (size_t i = 0; i < count; ++i)
      if (pending[i] > 0)
        throw InputError(m.file + ": the graph has a cycle through " + node_label(g.nodes[i], i));
  }
  g.nodes = std::move(sorted);
  if (!defined.count(g.output) && !producer.count(g.output))
    throw InputError(m.file + ": the graph output '" + g.output + "' is never computed");
}

void choose_parameters(RawModel& m) {
  Graph& g = m.g;
  // Where each initializer is used; values produced by pass-through ops of an initializer
  // count as that initializer.
  std::map<std::string, std::string> origin;  // value -> initializer it carries
  for (const auto& [name, t] : g.initializers) origin[name] = name;
  std::map<std::string, std::vector<Use>> uses;
  std::vector<std::string> first_use;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const GraphNode& n = g.nodes[i];
    for (size_t s = 0; s < n.inputs.size(); ++s) {
      auto it = origin.find(n.inputs[s]);
      if (it == origin.end() || reads_shape_only(n.op, s)) continue;
      const std::string& init = it->second;
      if (is_weight_passthrough(n.op, s) && n.outputs.size() == 1) {
        origin[n.outputs[0]] = init;
        continue;
      }
      Use u{n.op + " input " + std::to_string(s) + " of " + node_label(n, i),
            is_weight_slot(n.op, s)};
      if (u.weight && !g.initializers.at(init).is_float() &&
          (n.op == "Conv" || n.op == "Gemm" || n.op == "MatMul" || n.op == "BatchNormalization"))
        throw InputError(m.file + ": initializer '" + init + "' (" + u.where +
                         ") is not floating point");
      // A scalar added is a constant of a decomposed formula (GELU's 1), not a bias; a scalar
      // expanded is a fill value (a zero bias), not a class token.
      if ((n.op == "Add" || n.op == "Expand") && g.initializers.at(init).numel() <= 1)
        u.weight = false;
      if (u.weight && g.initializers.at(init).is_float() &&
          std::find(first_use.begin(), first_use.end(), init) == first_use.end())
        first_use.push_back(init);
      uses[init].push_back(u);
    }
  }
  g.parameters.clear();
  for (const auto& name : first_use) {
    const auto& us = uses[name];
    if (us.size() > 1)
      throw InputError(
          m.file + ": initializer '" + name + "' is used twice, as " + us[0].where + " and as " +
          us[1].where +
          " (the exporter merged tensors holding equal values; the legacy exporter does so even "
          "with do_constant_folding=False, e.g. a fresh BatchNorm's weight and running_var), so "
          "differentiating it would tie them and the Hessian would not be the model's. Export "
          "with torch.onnx.export(model, (x,), path, dynamo=True, optimize=False)");
    const GraphTensor& t = g.initializers.at(name);
    for (size_t k = 0; k < t.values.size(); ++k)
      if (!std::isfinite(t.values[k]))
        throw InputError(m.file + ": parameter '" + name + "' holds a non-finite value at " +
                         std::to_string(k));
    g.parameters.push_back(name);
  }
}

}  // namespace hspec::onnx_import
