// make_plan: values and their classes from the graph's input and initializers, then each
// node lowered in topological order; the builders several ops share (broadcast binary ops,
// aliases, means) and the memory figures the operator's chunking uses.
#include <algorithm>
#include <cmath>
#include <set>

#include "planner.hpp"

namespace hspec {
namespace planning {

int Planner::add_value(const std::string& name, ValueClass cls, Shape shape,
                       std::vector<double> host) {
  if (ids_.count(name)) throw InputError(g_.source + ": value '" + name + "' is defined twice");
  // Hostile shapes: negative extents, or element counts that would overflow the buffers.
  if (shape.size() > size_t(kMaxRank - 2))  // room for the sample and direction axes
    throw InputError(g_.source + ": value '" + name + "' has more than 6 dimensions");
  double elems = 1;
  for (int64_t d : shape) {
    if (d < 0) throw InputError(g_.source + ": value '" + name + "' has a negative extent");
    elems *= double(d);
  }
  if (elems > double(int64_t(1) << 40))
    throw InputError(g_.source + ": value '" + name + "' is too large (" + std::to_string(elems) +
                     " elements per sample)");
  PlanValue v;
  v.name = name;
  v.cls = cls;
  v.shape = std::move(shape);
  v.host = std::move(host);
  v.storage = int(plan_.values.size());
  ids_[name] = v.storage;
  plan_.values.push_back(std::move(v));
  return plan_.values.back().storage;
}

int Planner::input(const GraphNode& n, size_t i) const {
  if (!has_input(n, i)) fail(n, "input " + std::to_string(i) + " is missing");
  auto it = ids_.find(n.inputs[i]);
  if (it == ids_.end()) {
    if (absent_.count(n.inputs[i]))
      fail(n, "input '" + n.inputs[i] + "' is the " + absent_.at(n.inputs[i]) +
                  ", which hspec does not compute");
    if (int_consts_.count(n.inputs[i]))
      fail(n, "input '" + n.inputs[i] + "' is an integer tensor where a float one is expected");
    fail(n, "input '" + n.inputs[i] + "' is not defined before this node");
  }
  if (value(it->second).is_int && !(n.op == "Gather" && i == 1) && !is_shape_op(n.op))
    fail(n, "input '" + n.inputs[i] +
                "' holds integer token ids, which only a Gather (embedding lookup) can read");
  return it->second;
}

const GraphTensor* Planner::int_input(const GraphNode& n, size_t i) const {
  if (!has_input(n, i)) return nullptr;
  auto it = int_consts_.find(n.inputs[i]);
  if (it == int_consts_.end())
    fail(n, "input '" + n.inputs[i] + "' must be a constant integer tensor");
  return it->second;
}

int64_t Planner::attr_int(const GraphNode& n, const char* key, int64_t dflt) const {
  const GraphAttribute* a = n.attr(key);
  if (!a) return dflt;
  if (a->kind != GraphAttribute::Kind::Int)
    fail(n, std::string("attribute ") + key + " is not an int");
  return a->i;
}
double Planner::attr_float(const GraphNode& n, const char* key, double dflt) const {
  const GraphAttribute* a = n.attr(key);
  if (!a) return dflt;
  if (a->kind == GraphAttribute::Kind::Int) return double(a->i);
  if (a->kind != GraphAttribute::Kind::Float)
    fail(n, std::string("attribute ") + key + " is not a float");
  return a->f;
}
std::string Planner::attr_string(const GraphNode& n, const char* key,
                                 const std::string& dflt) const {
  const GraphAttribute* a = n.attr(key);
  if (!a) return dflt;
  if (a->kind != GraphAttribute::Kind::String)
    fail(n, std::string("attribute ") + key + " is not a string");
  return a->s;
}
std::vector<int64_t> Planner::attr_ints(const GraphNode& n, const char* key,
                                        const std::vector<int64_t>& dflt) const {
  const GraphAttribute* a = n.attr(key);
  if (!a) return dflt;
  if (a->kind != GraphAttribute::Kind::Ints)
    fail(n, std::string("attribute ") + key + " is not a list of ints");
  return a->ints;
}

namespace {
// The full shape: the sample axis (extent 1 here) then the per-sample shape, for Data.
Shape full_shape(const PlanValue& v) {
  Shape s = v.shape;
  if (v.batched()) s.insert(s.begin(), 1);
  return s;
}
Shape padded(Shape s, size_t rank) {
  s.insert(s.begin(), rank - s.size(), 1);
  return s;
}
}  // namespace

int Planner::binary(const GraphNode& n, BinaryKind kind, int a, int b, const std::string& out) {
  const PlanValue &va = value(a), &vb = value(b);
  if (kind == BinaryKind::Div && vb.cls != ValueClass::Constant)
    fail(n, "division by a value that depends on the parameters or the data is not supported");
  const bool data = va.batched() || vb.batched();
  // Logical shapes (a Data value's sample axis holding its per-sample factors); every Data
  // operand has the full rank and the same layout, so the samples stay where they are.
  const SampleLayout layout = va.batched() ? va.samples : vb.samples;
  if (va.batched() && vb.batched() && va.samples != vb.samples)
    fail(n, "the operands hold their samples differently (" + describe(va.samples) + " vs " +
                describe(vb.samples) + ")");
  const Shape la = logical_shape(va), lb = logical_shape(vb);
  const size_t rank = std::max(la.size(), lb.size());
  if ((va.batched() && la.size() != rank) || (vb.batched() && lb.size() != rank))
    fail(n,
         "broadcasting would move the sample axis (dimension " + std::to_string(layout.axis) + ")");
  const Shape pa = padded(la, rank), pb = padded(lb, rank);
  Shape po(rank);
  for (size_t i = 0; i < rank; ++i) {
    if (pa[i] != pb[i] && pa[i] != 1 && pb[i] != 1)
      fail(n, "shapes do not broadcast (" + std::to_string(pa[i]) + " vs " + std::to_string(pb[i]) +
                  " at axis " + std::to_string(i) + ")");
    po[i] = std::max(pa[i], pb[i]);
  }
  if (data) {
    const PlanValue& other = va.batched() ? vb : va;
    const Shape& po_other = va.batched() ? pb : pa;
    if (!other.batched() && po_other[size_t(layout.axis)] != 1) {
      if (layout.standard()) fail(n, "a constant or parameter operand spans the sample axis");
      fail(n, "a constant or parameter operand ('" + other.name + "') spans axis " +
                  std::to_string(layout.axis) + ", which holds the samples (" + describe(layout) +
                  ")");
    }
  }
  PlanStep s = step(n, StepKind::Binary);
  s.binary = kind;
  s.in = {a, b};
  if (data) {
    s.a_shape = step_shape(pa, layout, va.batched());
    s.b_shape = step_shape(pb, layout, vb.batched());
    s.out_shape = step_shape(po, layout, true);
  } else {  // a leading sample axis of extent 1, so every step shape has one
    s.a_shape = padded(pa, rank + 1);
    s.b_shape = padded(pb, rank + 1);
    s.out_shape = padded(po, rank + 1);
  }
  if (s.out_shape.size() > size_t(kMaxRank) - 1) fail(n, "more than 7 dimensions");
  const Shape vshape = data ? physical_shape(po, layout) : po;
  s.out = add_value(out, join(va.cls, vb.cls), vshape);
  if (data) set_layout(s.out, layout);
  add_step(std::move(s));
  return plan_.steps.back().out;
}

int Planner::alias(const GraphNode& n, int src, Shape shape, const std::string& out) {
  return alias(n, src, std::move(shape), out, value(src).samples);
}

int Planner::alias(const GraphNode& n, int src, Shape shape, const std::string& out,
                   const SampleLayout& layout) {
  if (shape_numel(shape) != value(src).numel())
    fail(n, "reshape from " + std::to_string(value(src).numel()) + " to " +
                std::to_string(shape_numel(shape)) + " elements per sample");
  PlanStep s = step(n, StepKind::Alias);
  s.in = {src};
  const ValueClass cls = value(src).cls;
  const bool is_int = value(src).is_int;
  const int storage = value(src).storage;
  s.out = add_value(out, cls, std::move(shape));
  plan_.values[size_t(s.out)].storage = storage;
  if (cls == ValueClass::Data) set_layout(s.out, layout);
  plan_.values[size_t(s.out)].is_int = is_int;
  add_step(std::move(s));
  return plan_.steps.back().out;
}

int Planner::reduce_mean(const GraphNode& n, int src, std::vector<int64_t> axes, bool keepdims,
                         const std::string& out) {
  const PlanValue& v = value(src);
  Shape in = full_shape(v);
  if (!v.batched()) in.insert(in.begin(), 1);
  const int64_t off = v.batched() ? 0 : 1;  // axes index the full shape
  Shape kept = in;
  int64_t count = 1;
  for (int64_t a : axes) {
    count *= in[size_t(a + off)];
    kept[size_t(a + off)] = 1;
  }
  PlanStep s = step(n, StepKind::ReduceMean);
  s.in = {src};
  s.a_shape = in;
  s.out_shape = kept;
  s.reduce_count = count;
  Shape vshape;
  for (size_t i = 1; i < kept.size(); ++i) {
    const bool reduced = std::count(axes.begin(), axes.end(), int64_t(i) - off) > 0;
    if (keepdims || !reduced) vshape.push_back(kept[i]);
  }
  s.out = add_value(out, v.cls, vshape);
  add_step(std::move(s));
  return plan_.steps.back().out;
}

void Planner::lower(const GraphNode& n) {
  if (n.outputs.empty() || n.outputs[0].empty()) fail(n, "has no output");
  for (size_t i = 1; i < n.outputs.size(); ++i)
    if (!n.outputs[i].empty() && n.op != "Dropout" && n.op != "Split" &&
        n.op != "LayerNormalization")
      fail(n, "output " + std::to_string(i) + " ('" + n.outputs[i] + "') is not supported");
  const std::string& op = n.op;
  static const std::map<std::string, UnaryKind> unary = {{"Relu", UnaryKind::Relu},
                                                         {"Tanh", UnaryKind::Tanh},
                                                         {"Sigmoid", UnaryKind::Sigmoid},
                                                         {"Erf", UnaryKind::Erf}};
  static const std::map<std::string, BinaryKind> binaries = {{"Add", BinaryKind::Add},
                                                             {"Sub", BinaryKind::Sub},
                                                             {"Mul", BinaryKind::Mul},
                                                             {"Div", BinaryKind::Div}};
  // The ops that map a moved sample axis (see SampleLayout); every other op needs the
  // samples alone on axis 0 of each input.
  static const std::set<std::string> on_moved = {
      "Add",       "Sub",      "Mul",     "Div",    "Neg",     "Pow",       "Sqrt",    "Relu",
      "Tanh",      "Sigmoid",  "Erf",     "Gelu",   "Softmax", "Cast",      "Reshape", "Squeeze",
      "Unsqueeze", "Identity", "Dropout", "MatMul", "Gemm",    "Transpose", "Gather"};
  if (!on_moved.count(op))
    for (size_t i = 0; i < n.inputs.size(); ++i)
      if (!n.inputs[i].empty() && ids_.count(n.inputs[i]) && moved(ids_.at(n.inputs[i])))
        fail(n, "input '" + n.inputs[i] + "' holds its samples " +
                    describe(value(ids_.at(n.inputs[i])).samples) +
                    " (not alone on axis 0, e.g. after an exporter's Transpose or Reshape), "
                    "which " +
                    op + " does not support");
  if (op == "Constant") {  // normally folded by the importer; accepted for robustness
    const GraphAttribute* v = n.attr("value");
    if (!v || v->kind != GraphAttribute::Kind::Tensor)
      fail(n, "only the 'value' tensor form is supported");
    if (v->t.is_float())
      add_constant(n.outputs[0], v->t.shape, v->t.values);
    else
      int_consts_[n.outputs[0]] = &v->t;
  } else if (unary.count(op) || op == "Gelu") {
    const int x = input(n, 0);
    PlanStep s = step(n, StepKind::Unary);
    s.unary = op == "Gelu" ? UnaryKind::GeluErf : unary.at(op);
    if (op == "Gelu") {
      const std::string approx = attr_string(n, "approximate", "none");
      if (approx == "tanh")
        s.unary = UnaryKind::GeluTanh;
      else if (approx != "none")
        fail(n, "approximate='" + approx + "' (expected none or tanh)");
    }
    s.in = {x};
    s.out = add_value(n.outputs[0], value(x).cls, value(x).shape);
    set_layout(s.out, value(x).samples);
    add_step(std::move(s));
  } else if (op == "Div") {
    lower_div(n);
  } else if (op == "Neg") {
    binary(n, BinaryKind::Mul, input(n, 0), add_constant(temp(n.outputs[0], "minus_one"), {}, {-1}),
           n.outputs[0]);
  } else if (op == "Pow" || op == "Sqrt") {
    lower_pow(n);
  } else if (op == "LayerNormalization") {
    lower_layernorm(n);
  } else if (op == "Softmax") {
    lower_softmax(n);
  } else if (op == "Where") {
    lower_where(n);
  } else if (op == "Expand") {
    lower_expand(n);
  } else if (op == "Cast") {
    lower_cast(n);
  } else if (op == "Transpose") {
    lower_transpose(n);
  } else if (op == "Slice") {
    lower_slice(n);
  } else if (op == "Split") {
    lower_split(n);
  } else if (op == "Concat") {
    lower_concat(n);
  } else if (binaries.count(op)) {
    binary(n, binaries.at(op), input(n, 0), input(n, 1), n.outputs[0]);
  } else if (op == "Gemm") {
    lower_gemm(n);
  } else if (op == "MatMul") {
    lower_matmul(n);
  } else if (op == "Conv") {
    lower_conv(n);
  } else if (op == "BatchNormalization") {
    lower_batchnorm(n);
  } else if (op == "MaxPool" || op == "AveragePool" || op == "GlobalAveragePool") {
    lower_pool(n);
  } else if (op == "ReduceMean") {
    lower_reduce(n);
  } else if (op == "Gather") {
    lower_gather(n);
  } else if (op == "Flatten" || op == "Reshape" || op == "Squeeze" || op == "Unsqueeze" ||
             op == "Identity" || op == "Dropout") {
    lower_shape(n);
  } else {
    fail(n, "operator " + op + " is not supported by the graph engine");
  }
}

Plan Planner::run() {
  for (int64_t d : g_.input_shape)
    if (d < 1) throw InputError(g_.source + ": the input shape has an extent below 1");
  plan_.input = add_value(g_.input, ValueClass::Data, g_.input_shape);
  plan_.values[size_t(plan_.input)].is_int = g_.input_is_int;
  plan_.input_is_int = g_.input_is_int;
  const std::set<std::string> params(g_.parameters.begin(), g_.parameters.end());
  for (const auto& [name, t] : g_.initializers) {
    const bool is_param = params.count(name) > 0;
    if (!t.is_float()) {
      if (is_param)
        throw InputError(g_.source + ": parameter '" + name + "' is not floating point");
      int_consts_[name] = &t;
      continue;
    }
    // Constants may hold +-inf (attention masks); parameters must be finite, and NaN is
    // refused everywhere.
    for (size_t i = 0; i < t.values.size(); ++i)
      if (std::isnan(t.values[i]) || (is_param && !std::isfinite(t.values[i])))
        throw InputError(g_.source + ": initializer '" + name + "' holds NaN/Inf at index " +
                         std::to_string(i));
    if (int64_t(t.values.size()) != t.numel())
      throw InputError(g_.source + ": initializer '" + name + "' has the wrong number of values");
    add_value(name, is_param ? ValueClass::Param : ValueClass::Constant, t.shape, t.values);
  }
  for (const std::string& p : g_.parameters) {
    auto it = ids_.find(p);
    if (it == ids_.end())
      throw InputError(g_.source + ": parameter '" + p + "' is not an initializer");
    plan_.values[size_t(it->second)].param_index = int(plan_.params.size());
    plan_.params.push_back(it->second);
    plan_.param_offset.push_back(plan_.num_params);
    plan_.num_params += plan_.values[size_t(it->second)].numel();
  }
  for (const GraphNode& n : g_.nodes) {
    check_over_samples(n);
    lower(n);
    propagate_over_samples(n);
  }
  if (plan_.input_is_int && plan_.id_limit == 0)
    throw InputError(g_.source + ": the integer input '" + g_.input +
                     "' (token ids) feeds no Gather (embedding lookup)");
  for (PlanValue& v : plan_.values) v.diff = v.cls == ValueClass::Param;
  for (const PlanStep& s : plan_.steps)
    for (int i : s.in) plan_.values[size_t(s.out)].diff |= plan_.values[size_t(i)].diff;
  auto it = ids_.find(g_.output);
  if (it == ids_.end())
    throw InputError(g_.source + ": the output '" + g_.output + "' is never computed");
  plan_.output = it->second;
  const PlanValue& out = plan_.values[size_t(plan_.output)];
  if (!out.batched()) throw InputError(g_.source + ": the output does not depend on the input");
  if (out.moved())
    throw InputError(g_.source + ": the output '" + out.name + "' holds its samples " +
                     describe(out.samples) + ", not alone on axis 0");
  plan_.output_dim = out.numel();
  // Memory figures: values owning storage, per sample (Data) or in total (Param).
  for (size_t id = 0; id < plan_.values.size(); ++id) {
    const PlanValue& v = plan_.values[id];
    if (v.storage != int(id)) continue;
    if (v.cls == ValueClass::Data) plan_.data_elems_per_sample += v.numel();
    if (v.cls == ValueClass::Param) plan_.param_value_elems += v.numel();
  }
  for (const PlanStep& s : plan_.steps) {
    int64_t ws = 0;
    if (s.kind == StepKind::Conv)
      ws = s.geom.channels * s.geom.kh * s.geom.kw * s.geom.out_plane() +
           s.out_channels * s.geom.out_plane();
    if ((s.kind == StepKind::Binary || s.kind == StepKind::Layout) &&
        plan_.values[size_t(s.out)].batched())
      ws = plan_.values[size_t(s.out)].numel();
    if (s.kind == StepKind::Softmax && plan_.values[size_t(s.out)].batched())
      ws = 3 * plan_.values[size_t(s.out)].numel();
    if (s.kind == StepKind::MaxPool)
      plan_.argmax_per_sample += s.geom.channels * s.geom.out_plane();
    plan_.workspace_per_sample = std::max(plan_.workspace_per_sample, ws);
  }
  return std::move(plan_);
}

}  // namespace planning

Plan make_plan(const Graph& g) {
  return planning::Planner(g).run();
}

}  // namespace hspec
