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
#include "onnx_import.hpp"

namespace hspec::onnx_import {
namespace {

// What a run knows of a value: its shape (with the run's sample count), whether it carries
// the sample dimension, and its contents when it is a constant.
struct Value {
  std::vector<int64_t> shape;
  bool batched = false;
  bool is_int = false;
  bool constant = false;
  GraphTensor t;
};

// The two sample counts of the runs, which no model dimension is likely to equal by accident.
constexpr int64_t kSamplesA = 7, kSamplesB = 11;

struct Run {
  std::map<std::string, Value> values;
  std::vector<bool> folded;  // per node
};

std::string label(const GraphNode& n) {
  return "node '" + (n.name.empty() ? n.outputs.empty() ? "?" : n.outputs[0] : n.name) + "' (" +
         n.op + ")";
}

int64_t attr_int(const GraphNode& n, const char* key, int64_t def) {
  const GraphAttribute* a = n.attr(key);
  return a ? a->i : def;
}

std::vector<int64_t> attr_ints(const GraphNode& n, const char* key, std::vector<int64_t> def) {
  const GraphAttribute* a = n.attr(key);
  return a ? a->ints : def;
}

std::vector<int64_t> broadcast_shapes(const std::vector<int64_t>& a, const std::vector<int64_t>& b,
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

// Output spatial sizes of Conv and the pools, with pads/auto_pad/strides/dilations/ceil_mode.
std::vector<int64_t> window_out(const GraphNode& n, const std::vector<int64_t>& x,
                                const std::vector<int64_t>& kernel, const std::string& where) {
  const size_t sp = x.size() - 2;
  if (kernel.size() != sp) throw InputError(where + ": kernel rank does not match the input");
  const auto strides = attr_ints(n, "strides", std::vector<int64_t>(sp, 1));
  const auto dil = attr_ints(n, "dilations", std::vector<int64_t>(sp, 1));
  const auto pads = attr_ints(n, "pads", std::vector<int64_t>(2 * sp, 0));
  const GraphAttribute* ap = n.attr("auto_pad");
  const std::string auto_pad = ap ? ap->s : "NOTSET";
  const bool ceil_mode = attr_int(n, "ceil_mode", 0) != 0;
  if (strides.size() != sp || dil.size() != sp || pads.size() != 2 * sp)
    throw InputError(where + ": strides, dilations or pads do not match the input rank");
  std::vector<int64_t> out = {x[0], 0};
  for (size_t i = 0; i < sp; ++i) {
    if (strides[i] <= 0 || dil[i] <= 0 || kernel[i] <= 0 || pads[i] < 0 || pads[i + sp] < 0)
      throw InputError(where + ": non-positive kernel, stride or dilation, or negative pad");
    const int64_t ext = dil[i] * (kernel[i] - 1) + 1, d = x[2 + i];
    int64_t o;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      o = (d + strides[i] - 1) / strides[i];
    } else if (auto_pad == "VALID") {
      o = d >= ext ? (d - ext) / strides[i] + 1 : 0;
    } else if (auto_pad == "NOTSET" || auto_pad.empty()) {
      const int64_t span = d + pads[i] + pads[i + sp] - ext;
      if (span < 0) throw InputError(where + ": kernel larger than the padded input");
      o = (ceil_mode ? (span + strides[i] - 1) / strides[i] : span / strides[i]) + 1;
    } else {
      throw InputError(where + ": auto_pad '" + auto_pad + "' is not supported");
    }
    if (o <= 0) throw InputError(where + ": empty output");
    out.push_back(o);
  }
  return out;
}

std::vector<int64_t> reduce_axes(const GraphNode& n, const std::vector<const Value*>& in,
                                 int64_t rank, const std::string& where) {
  std::vector<int64_t> axes = attr_ints(n, "axes", {});
  if (in.size() > 1 && in[1]) {
    if (!in[1]->constant) throw InputError(where + ": axes must be constant");
    axes = as_ints(in[1]->t, where);
  }
  for (auto& a : axes) {
    if (a < -rank || a >= rank) throw InputError(where + ": axis out of range");
    if (a < 0) a += rank;
  }
  return axes;
}

// The output shape of an engine op on values of known shape.
// The output shapes of Split: sizes from the attribute or the constant second input, else
// equal parts (num_outputs, the last part possibly smaller).
std::vector<std::vector<int64_t>> split_shapes(const GraphNode& n,
                                               const std::vector<const Value*>& in,
                                               const std::string& where) {
  const std::vector<int64_t>& x = in.at(0)->shape;
  const int64_t r = int64_t(x.size());
  int64_t axis = attr_int(n, "axis", 0);
  if (axis < -r || axis >= r) throw InputError(where + ": axis out of range");
  if (axis < 0) axis += r;
  std::vector<int64_t> sizes = attr_ints(n, "split", {});
  if (in.size() > 1 && in[1]) {
    if (!in[1]->constant) throw InputError(where + ": split sizes must be constant");
    sizes = as_ints(in[1]->t, where);
  }
  const int64_t outputs = int64_t(n.outputs.size()), d = x[size_t(axis)];
  if (sizes.empty()) {
    const int64_t parts = attr_int(n, "num_outputs", outputs);
    if (parts < 1 || parts != outputs)
      throw InputError(where + ": num_outputs differs from outputs");
    const int64_t each = (d + parts - 1) / parts;
    for (int64_t i = 0; i < parts; ++i)
      sizes.push_back(std::max<int64_t>(0, std::min(each, d - i * each)));
  }
  int64_t total = 0;
  for (int64_t v : sizes) total += v;
  if (int64_t(sizes.size()) != outputs || total != d)
    throw InputError(where + ": split sizes do not match the outputs and the axis extent");
  std::vector<std::vector<int64_t>> out;
  for (int64_t v : sizes) {
    out.push_back(x);
    out.back()[size_t(axis)] = v;
  }
  return out;
}

std::vector<int64_t> infer_shape(const GraphNode& n, const std::vector<const Value*>& in,
                                 int64_t batch, int64_t declared_batch, const std::string& where) {
  const std::string& op = n.op;
  auto need = [&](size_t k) -> const std::vector<int64_t>& {
    if (k >= in.size() || !in[k])
      throw InputError(where + ": input " + std::to_string(k) + " is missing");
    return in[k]->shape;
  };
  const std::vector<int64_t>& x = need(0);
  if (op == "Relu" || op == "Tanh" || op == "Sigmoid" || op == "Erf" || op == "Gelu" ||
      op == "Identity" || op == "Sqrt" || op == "Neg" || op == "Cast" || op == "Softmax" ||
      op == "LayerNormalization")
    return x;
  if (op == "Pow") return broadcast_shapes(x, need(1), where);
  if (op == "Where") return broadcast_shapes(broadcast_shapes(x, need(1), where), need(2), where);
  if (op == "Split") return split_shapes(n, in, where).at(0);
  if (op == "Transpose" || op == "Slice" || op == "Concat" || op == "Expand") {
    // Shapes only: the fold op run on zero-filled stand-ins of the non-constant inputs.
    std::vector<GraphTensor> probes(in.size());
    std::vector<const GraphTensor*> cin;
    for (size_t k = 0; k < in.size(); ++k) {
      if (!in[k] || in[k]->constant) {
        cin.push_back(in[k] ? &in[k]->t : nullptr);
        continue;
      }
      probes[k].shape = in[k]->shape;
      probes[k].values.assign(size_t(checked_numel(in[k]->shape, where)), 0.0);
      cin.push_back(&probes[k]);
    }
    return eval_fold_op(n, cin, false, where).shape;
  }
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div")
    return broadcast_shapes(x, need(1), where);
  if (op == "BatchNormalization") {
    if (attr_int(n, "training_mode", 0) != 0 || n.outputs.size() > 1)
      throw InputError(where +
                       ": BatchNormalization in training mode (export the model in "
                       "eval mode)");
    for (size_t k = 1; k <= 4; ++k)
      if (x.size() < 2 || need(k) != std::vector<int64_t>{x[1]})
        throw InputError(where + ": input " + std::to_string(k) + " is not [channels]");
    return x;
  }
  if (op == "Conv") {
    const auto& w = need(1);
    const int64_t group = attr_int(n, "group", 1);
    if (x.size() < 3 || w.size() != x.size() || group <= 0 || x[1] != w[1] * group ||
        w[0] % group != 0)
      throw InputError(where + ": weight shape does not match the input channels");
    if (in.size() > 2 && in[2] && in[2]->shape != std::vector<int64_t>{w[0]})
      throw InputError(where + ": bias is not [out_channels]");
    auto out = window_out(n, x, attr_ints(n, "kernel_shape", {w.begin() + 2, w.end()}), where);
    out[1] = w[0];
    return out;
  }
  if (op == "MaxPool" || op == "AveragePool") {
    if (n.outputs.size() > 1 && !n.outputs[1].empty())
      throw InputError(where + ": MaxPool's indices output is not supported");
    if (x.size() < 3) throw InputError(where + ": input rank below 3");
    auto out = window_out(n, x, attr_ints(n, "kernel_shape", {}), where);
    out[1] = x[1];
    return out;
  }
  if (op == "Gather") {  // an embedding lookup or a pick by constant indices
    const auto& idx = need(1);
    const int64_t r = int64_t(x.size());
    int64_t axis = attr_int(n, "axis", 0);
    if (axis < -r || axis >= r) throw InputError(where + ": Gather axis out of range");
    if (axis < 0) axis += r;
    std::vector<int64_t> out(x.begin(), x.begin() + axis);
    out.insert(out.end(), idx.begin(), idx.end());
    out.insert(out.end(), x.begin() + axis + 1, x.end());
    return out;
  }
  if (op == "GlobalAveragePool") {
    std::vector<int64_t> out(x.size(), 1);
    if (x.size() < 3) throw InputError(where + ": input rank below 3");
    out[0] = x[0];
    out[1] = x[1];
    return out;
  }
  if (op == "ReduceMean") {
    auto axes = reduce_axes(n, in, int64_t(x.size()), where);
    if (axes.empty() && attr_int(n, "noop_with_empty_axes", 0)) return x;
    std::set<int64_t> drop(axes.begin(), axes.end());
    if (axes.empty())
      for (int64_t k = 0; k < int64_t(x.size()); ++k) drop.insert(k);
    std::vector<int64_t> out;
    const bool keep = attr_int(n, "keepdims", 1) != 0;
    for (int64_t k = 0; k < int64_t(x.size()); ++k)
      if (!drop.count(k))
        out.push_back(x[k]);
      else if (keep)
        out.push_back(1);
    return out;
  }
  if (op == "Flatten") {
    int64_t axis = attr_int(n, "axis", 1);
    const int64_t r = int64_t(x.size());
    if (axis < -r || axis > r) throw InputError(where + ": axis out of range");
    if (axis < 0) axis += r;
    std::vector<int64_t> a(x.begin(), x.begin() + axis), b(x.begin() + axis, x.end());
    return {checked_numel(a, where), checked_numel(b, where)};
  }
  if (op == "Gemm") {
    const auto& b = need(1);
    if (x.size() != 2 || b.size() != 2 || attr_int(n, "transA", 0) != 0)
      throw InputError(where + ": Gemm needs [N, K] data (transA = 0) and a 2-D weight");
    const bool tb = attr_int(n, "transB", 0) != 0;
    const int64_t k = tb ? b[1] : b[0], m = tb ? b[0] : b[1];
    if (k != x[1]) throw InputError(where + ": weight shape does not match the input");
    if (in.size() > 2 && in[2]) broadcast_shapes({x[0], m}, in[2]->shape, where);
    return {x[0], m};
  }
  if (op == "MatMul") {
    auto a = x, b = need(1);
    if (a.empty() || b.empty()) throw InputError(where + ": MatMul of a scalar");
    const bool a1 = a.size() == 1, b1 = b.size() == 1;
    if (a1) a.insert(a.begin(), 1);
    if (b1) b.push_back(1);
    if (a.back() != b[b.size() - 2]) throw InputError(where + ": inner dimensions differ");
    auto out = broadcast_shapes({a.begin(), a.end() - 2}, {b.begin(), b.end() - 2}, where);
    if (!a1) out.push_back(a[a.size() - 2]);
    if (!b1) out.push_back(b.back());
    return out;
  }
  if (op == "Squeeze" || op == "Unsqueeze" || op == "Reshape") {
    std::vector<const GraphTensor*> cin = {nullptr};
    for (size_t k = 1; k < in.size(); ++k) {
      if (in[k] && !in[k]->constant)
        throw InputError(where + ": input " + std::to_string(k) + " must be constant");
      cin.push_back(in[k] ? &in[k]->t : nullptr);
    }
    GraphTensor probe;  // shapes only: these ops move no values, so it holds none
    probe.kind = GraphTensor::Kind::Int;
    probe.shape = x;
    if (op == "Reshape") {
      need(1);
      if (!in[0]->batched) {
        cin[0] = &probe;
        return eval_fold_op(n, cin, true, where).shape;
      }
      // Sample axis: the target's dim 0 stands for it (0, -1, the run's count or an export's
      // fixed batch); the remaining dims are resolved per sample.
      const auto target = as_ints(in[1]->t, where);
      if (target.empty()) throw InputError(where + ": Reshape of samples to a scalar");
      const bool keeps = (target[0] == 0 && attr_int(n, "allowzero", 0) == 0) || target[0] == -1 ||
                         target[0] == batch || (declared_batch > 0 && target[0] == declared_batch);
      if (!keeps)
        throw InputError(where + ": its target's first dimension (" + std::to_string(target[0]) +
                         ") is not the samples' dimension");
      std::vector<int64_t> rest(target.begin() + 1, target.end());
      for (size_t k = 0; k < rest.size(); ++k)
        if (rest[k] == 0 && attr_int(n, "allowzero", 0) == 0)
          rest[k] = k + 1 < x.size() ? x[k + 1] : -2;
      // Per sample: the input's elements over its samples (an earlier merge may have put
      // more than one row of axis 0 in each sample).
      const int64_t per_sample = checked_numel(x, where) / batch;
      probe.shape = {per_sample};
      int64_t known = 1;
      bool infer = false;
      for (int64_t d : rest) {
        infer = infer || d == -1;
        if (d >= 0) known *= d;
      }
      if (!infer && known > 0 && known != per_sample && per_sample % known == 0) {
        // [N, H, ...] -> [N H, ...]: the samples merged with the next axis, N major (the
        // exporters' attention reshapes); the engine keeps H as a per-sample axis.
        std::vector<int64_t> out = rest;
        out.insert(out.begin(), batch * (per_sample / known));
        return out;
      }
      GraphTensor shape_t;
      shape_t.kind = GraphTensor::Kind::Int;
      shape_t.shape = {int64_t(rest.size())};
      shape_t.ints = rest;
      GraphNode plain = n;
      plain.attrs.erase("allowzero");
      auto out = eval_fold_op(plain, {&probe, &shape_t}, true, where).shape;
      out.insert(out.begin(), batch);
      return out;
    }
    cin[0] = &probe;
    return eval_fold_op(n, cin, true, where).shape;
  }
  throw InputError(where + ": operator '" + op + "' is not supported by the graph engine");
}

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
    bool all_const = true, batched = false;
    for (const auto& name : n.inputs) {
      if (name.empty()) {
        in_v.push_back(nullptr);
        continue;
      }
      const Value& v = r.values.at(name);
      in_v.push_back(&v);
      all_const = all_const && v.constant;
      batched = batched || v.batched;
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
    if (batched && (v.shape.empty() || v.shape[0] % batch != 0))
      throw InputError(where + ": its output does not keep the samples on dimension 0");
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
        // The sample axis becomes -1, the others the per-sample shape this run found.
        GraphTensor t;
        t.kind = GraphTensor::Kind::Int;
        const auto& out = a.values.at(n.outputs[0]).shape;
        t.ints.assign(out.begin(), out.end());
        t.ints[0] = -1;
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
