// graph_from_mlp: an MLP checkpoint as a Graph (Gemm transB=1 per Linear layer, the
// activation as its ONNX op between layers), so the graph engine can run the MLP models; and
// set_parameters, which moves a lowered plan to new parameter values (a training step's).
#include <algorithm>
#include <string>
#include <vector>

#include "hspec/error.hpp"
#include "hspec/graph/graph.hpp"
#include "hspec/graph/plan.hpp"
#include "hspec/mlp/model.hpp"

namespace hspec {

Graph graph_from_mlp(const Model& m) {
  if (m.layers.empty()) throw InputError("model has no layers");
  Graph g;
  g.source = "mlp";
  g.input = "input";
  g.input_shape = {m.input_dim()};
  std::string x = g.input;
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const Layer& ly = m.layers[l];
    const std::string w = ly.name + ".weight", b = ly.name + ".bias";
    GraphTensor tw;
    tw.shape = {ly.out, ly.in};
    tw.values = ly.weight;
    g.initializers[w] = tw;
    g.parameters.push_back(w);
    GraphNode gemm;
    gemm.op = "Gemm";
    gemm.name = "linear" + std::to_string(l);
    gemm.inputs = {x, w};
    if (ly.has_bias) {
      GraphTensor tb;
      tb.shape = {ly.out};
      tb.values = ly.bias;
      g.initializers[b] = tb;
      g.parameters.push_back(b);
      gemm.inputs.push_back(b);
    }
    GraphAttribute tr;
    tr.kind = GraphAttribute::Kind::Int;
    tr.i = 1;
    gemm.attrs["transB"] = tr;
    x = "z" + std::to_string(l);
    gemm.outputs = {x};
    g.nodes.push_back(gemm);
    if (l + 1 == m.layers.size() || m.activation == Activation::Identity) continue;
    GraphNode act;
    act.name = "act" + std::to_string(l);
    switch (m.activation) {
      case Activation::Relu:
        act.op = "Relu";
        break;
      case Activation::Tanh:
        act.op = "Tanh";
        break;
      case Activation::Sigmoid:
        act.op = "Sigmoid";
        break;
      case Activation::Gelu:
        act.op = "Gelu";
        break;
      case Activation::Identity:
        break;
    }
    act.inputs = {x};
    x = "h" + std::to_string(l);
    act.outputs = {x};
    g.nodes.push_back(act);
  }
  g.output = x;
  return g;
}

void set_parameters(Plan& plan, const std::vector<double>& theta) {
  if (int64_t(theta.size()) != plan.num_params)
    throw InputError(plan.source + ": " + std::to_string(theta.size()) +
                     " parameter values for a model of " + std::to_string(plan.num_params));
  for (size_t i = 0; i < plan.params.size(); ++i) {
    std::vector<double>& host = plan.values[size_t(plan.params[i])].host;
    const auto first = theta.begin() + plan.param_offset[i];
    std::copy(first, first + ptrdiff_t(host.size()), host.begin());
  }
}

}  // namespace hspec
