// Shape propagation for constant folding: the output shapes of the graph engine's ops on
// values of known shape (Conv and pooling windows, reductions, Split, and the rest), checked
// as the planner will need them. Used by onnx_fold.cpp.
#include "onnx_fold_shapes.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "hspec/error.hpp"
#include "hspec/graph/graph_ops.hpp"

namespace hspec::onnx_import::fold_shapes {
namespace {

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

}  // namespace

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
      // Otherwise (a sequence-first export's [T N, E] or [T, N, 3, E], or a Reshape of
      // samples already moved) the target must name the run's sample count, alone or
      // merged: a plain Reshape of the whole tensor, whose samples the planner locates.
      const bool names_samples = std::any_of(target.begin(), target.end(),
                                             [&](int64_t d) { return d > 0 && d % batch == 0; });
      const bool inferred = std::any_of(target.begin(), target.end(), [&](int64_t d) {
        return d == -1 || (d == 0 && attr_int(n, "allowzero", 0) == 0);
      });
      if (in[0]->moved && !names_samples && !inferred)
        throw InputError(where + ": its target does not name the samples' dimension, which " +
                         "the samples' Transpose moved off dimension 0 (an export traced on " +
                         "one sample fixes the batch size in such targets: export with an " +
                         "example batch of 2 or more)");
      if (in[0]->moved || (!keeps && names_samples)) {
        cin[0] = &probe;
        return eval_fold_op(n, cin, true, where).shape;
      }
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

}  // namespace hspec::onnx_import::fold_shapes
