// Constant folding with shape propagation. The graph is evaluated twice, with two different
// sample counts standing for the symbolic dimension 0: a folded value that differs between
// the runs depends on the number of samples, which is allowed only as a Reshape or Expand
// target (rewritten with -1 on the sample axis); every other folded value becomes a constant.
#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "hspec/error.hpp"
#include "hspec/graph/graph_ops.hpp"
#include "onnx_fold_shapes.hpp"
#include "onnx_import.hpp"

namespace hspec::onnx_import {
namespace {

using fold_shapes::attr_int;
using fold_shapes::infer_shape;
using fold_shapes::label;
using fold_shapes::split_shapes;
using fold_shapes::Value;

// The two sample counts of the runs, which no model dimension is likely to equal by accident.
constexpr int64_t kSamplesA = 7, kSamplesB = 11;

struct Run {
  std::map<std::string, Value> values;
  std::vector<bool> folded;  // per node
};

Run evaluate(const RawModel& m, int64_t batch) {
  const Graph& g = m.g;
  const std::set<std::string> params(g.parameters.begin(), g.parameters.end());
  Run r;
  Value in;
  in.shape = g.input_shape;
  in.shape.insert(in.shape.begin(), batch);
  in.batched = true;
  in.is_int = g.input_is_int;
  r.values[g.input] = in;
  for (const auto& [name, t] : g.initializers) {
    Value v;
    v.shape = t.shape;
    v.is_int = !t.is_float();
    v.constant = !params.count(name);
    if (v.constant) v.t = t;
    r.values[name] = std::move(v);
  }
  r.folded.assign(g.nodes.size(), false);
  int64_t folded_elements = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const GraphNode& n = g.nodes[i];
    const std::string where = m.file + ": " + label(n);
    std::vector<const Value*> in_v;
    bool all_const = true, batched = false, moved = false;
    for (const auto& name : n.inputs) {
      if (name.empty()) {
        in_v.push_back(nullptr);
        continue;
      }
      const Value& v = r.values.at(name);
      in_v.push_back(&v);
      all_const = all_const && v.constant;
      batched = batched || v.batched;
      moved = moved || v.moved;
    }
    const bool shape_only = (n.op == "Shape" || n.op == "Size") && !in_v.empty() && in_v[0];
    const bool castlike = n.op == "CastLike" && in_v.size() == 2 && in_v[0] && in_v[0]->constant;
    if (is_graph_fold_op(n.op) && (all_const || shape_only || castlike)) {
      std::vector<const GraphTensor*> cin;
      GraphTensor shape_probe;
      for (size_t k = 0; k < in_v.size(); ++k) cin.push_back(in_v[k] ? &in_v[k]->t : nullptr);
      if (shape_only && !in_v[0]->constant) {
        shape_probe.shape = in_v[0]->shape;  // Shape/Size read only the shape
        cin[0] = &shape_probe;
        shape_probe.kind = GraphTensor::Kind::Int;  // Shape and Size read no values
      }
      const bool like_int = castlike && in_v[1] && in_v[1]->is_int;
      if (n.outputs.size() != 1) throw InputError(where + ": expected one output");
      Value v;
      v.t = eval_fold_op(n, cin, like_int, where);
      folded_elements += v.t.numel();
      if (folded_elements > 4 * kMaxFoldedElements)
        throw InputError(where + ": folding the graph's constants needs too much memory");
      v.shape = v.t.shape;
      v.is_int = !v.t.is_float();
      v.constant = true;
      r.values[n.outputs[0]] = std::move(v);
      r.folded[i] = true;
      continue;
    }
    if (all_const)
      throw InputError(where + ": computes on constants only, which hspec does not fold for '" +
                       n.op + "'");
    if (!is_graph_engine_op(n.op))
      throw InputError(where + ": operator '" + n.op +
                       "' on data or parameters is not supported by the graph engine (hspec "
                       "folds it only on constants)");
    Value v;
    v.shape = infer_shape(n, in_v, batch, m.declared_batch, where);
    v.batched = batched;
    v.is_int = false;
    // The ops that may move the samples off dimension 0 (the planner tracks where they go);
    // every other op keeps them where its inputs hold them.
    const bool moving =
        n.op == "Transpose" || n.op == "Reshape" || n.op == "Squeeze" || n.op == "Unsqueeze";
    v.moved = batched && (moved || (moving && (v.shape.empty() || v.shape[0] % batch != 0)));
    if (batched && !v.moved && (v.shape.empty() || v.shape[0] % batch != 0))
      throw InputError(where + ": its output does not keep the samples on dimension 0");
    if (v.moved && std::none_of(v.shape.begin(), v.shape.end(),
                                [&](int64_t d) { return d > 0 && d % batch == 0; }))
      throw InputError(where + ": its output does not keep the samples on one dimension");
    const Value first = v;
    r.values[n.outputs[0]] = std::move(v);
    for (size_t k = 1; k < n.outputs.size(); ++k) {
      if (n.outputs[k].empty()) continue;
      Value extra = first;
      if (n.op == "Split") {
        extra.shape = split_shapes(n, in_v, where).at(k);
      } else if (n.op == "LayerNormalization") {  // Mean / InvStdDev: the engine refuses their use
        const int64_t r = int64_t(extra.shape.size());
        int64_t axis = attr_int(n, "axis", -1);
        if (axis < 0) axis += r;
        for (int64_t a = std::max<int64_t>(axis, 0); a < r; ++a) extra.shape[size_t(a)] = 1;
      } else {
        throw InputError(where + ": only its first output is supported");
      }
      r.values[n.outputs[k]] = std::move(extra);
    }
  }
  return r;
}

// Whether an Expand target differs between the two runs (sample counts 7 and 11) only in
// its dimension 0, which holds the run's sample count and is the output's dimension 0.
bool is_sample_count_target(const Value& a, const Value& b, const Value& x) {
  if (a.t.kind != GraphTensor::Kind::Int || a.t.ints.size() != b.t.ints.size() ||
      a.t.ints.empty() || a.t.ints.size() < x.shape.size())
    return false;
  if (a.t.ints[0] != kSamplesA || b.t.ints[0] != kSamplesB) return false;
  return std::equal(a.t.ints.begin() + 1, a.t.ints.end(), b.t.ints.begin() + 1);
}

}  // namespace

void fold_constants(RawModel& m) {
  Graph& g = m.g;
  const Run a = evaluate(m, kSamplesA), b = evaluate(m, kSamplesB);
  std::vector<GraphNode> kept;
  std::map<std::string, GraphTensor> inits;
  for (const auto& p : g.parameters) inits[p] = std::move(g.initializers.at(p));  // not read again
  // A constant expanded over the samples (a folded Expand whose target's dimension 0 is the
  // sample count) is kept as a node, its output left to the planner.
  std::set<size_t> kept_expands;
  std::set<std::string> expanded_over_samples;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const GraphNode& n = g.nodes[i];
    if (!a.folded[i] || n.op != "Expand" || n.inputs.size() != 2 || n.outputs.size() != 1) continue;
    const Value &oa = a.values.at(n.outputs[0]), &ob = b.values.at(n.outputs[0]);
    if (oa.t.shape == ob.t.shape || !oa.t.is_float()) continue;
    if (!is_sample_count_target(a.values.at(n.inputs[1]), b.values.at(n.inputs[1]),
                                a.values.at(n.inputs[0])))
      continue;
    kept_expands.insert(i);
    expanded_over_samples.insert(n.outputs[0]);
  }
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (a.folded[i] && !kept_expands.count(i)) continue;
    GraphNode n = g.nodes[i];
    const std::string where = m.file + ": " + label(n);
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      const std::string& name = n.inputs[k];
      if (name.empty()) continue;
      const Value& va = a.values.at(name);
      if (!va.constant || expanded_over_samples.count(name)) continue;
      const Value& vb = b.values.at(name);
      if (n.op == "Reshape" && k == 1 && a.values.at(n.inputs[0]).batched) {
        // The samples' dimension (the one that differs between the runs) becomes -1, the
        // others the per-sample shape this run found.
        GraphTensor t;
        t.kind = GraphTensor::Kind::Int;
        const auto& out = a.values.at(n.outputs[0]).shape;
        const auto& out_b = b.values.at(n.outputs[0]).shape;
        t.ints.assign(out.begin(), out.end());
        size_t differing = 0, at = 0;
        for (size_t d = 0; d < out.size() && out.size() == out_b.size(); ++d)
          if (out[d] != out_b[d]) {
            ++differing;
            at = d;
          }
        if (differing != 1 || out[at] % kSamplesA != 0 || out_b[at] % kSamplesB != 0 ||
            out[at] / kSamplesA != out_b[at] / kSamplesB)
          throw InputError(where + ": its output does not keep the samples on one dimension");
        t.ints[at] = -1;
        t.shape = {int64_t(t.ints.size())};
        std::string fresh = n.outputs[0] + "::hspec_reshape_target";
        while (a.values.count(fresh)) fresh += "_";
        inits[fresh] = t;
        n.inputs[k] = fresh;
        n.attrs.erase("allowzero");
        continue;
      }
      if (n.op == "Expand" && k == 1 && is_sample_count_target(va, vb, a.values.at(n.inputs[0]))) {
        // A tensor broadcast over the samples (a ViT's class token, cls.expand(N, -1, -1)):
        // the sample axis becomes -1, which the planner reads as "the samples".
        GraphTensor t = va.t;
        t.ints[0] = -1;
        std::string fresh = n.outputs[0] + "::hspec_expand_target";
        while (a.values.count(fresh)) fresh += "_";
        inits[fresh] = t;
        n.inputs[k] = fresh;
        continue;
      }
      if (va.t.shape != vb.t.shape || va.t.values != vb.t.values || va.t.ints != vb.t.ints)
        throw InputError(where + ": input '" + name +
                         "' depends on the number of samples, which hspec keeps symbolic only "
                         "in Reshape and Expand targets (as their dimension 0)");
      inits[name] = va.t;
    }
    kept.push_back(std::move(n));
  }
  const Value& out = a.values.at(g.output);
  if (!out.batched)
    throw InputError(m.file + ": the graph output '" + g.output + "' does not depend on the input");
  if (out.shape.size() < 2)
    throw InputError(m.file + ": the graph output '" + g.output +
                     "' is not [samples, outputs] (rank " + std::to_string(out.shape.size()) + ")");
  g.nodes = std::move(kept);
  g.initializers = std::move(inits);
}

}  // namespace hspec::onnx_import
