// Lowering of the layout ops to Layout steps: Transpose (perm), Slice (ONNX starts, ends,
// axes, steps with negative and clamped indices), Split (one Slice per output) and Concat.
// Step shapes carry the sample axis first (extent 1 for a parameter or constant); a
// Transpose may move the samples (see SampleLayout), no layout op may cut or join along them.
#include <algorithm>
#include <limits>
#include <numeric>

#include "planner.hpp"

namespace hspec::planning {

namespace {
Shape with_sample_axis(const PlanValue& v) {
  Shape s = v.shape;
  s.insert(s.begin(), 1);
  return s;
}
Shape without_sample_axis(Shape s) {
  s.erase(s.begin());
  return s;
}
}  // namespace

void Planner::lower_transpose(const GraphNode& n) {
  const int x = input(n, 0);
  const PlanValue& v = value(x);
  const int64_t rank = int64_t(logical_shape(v).size());
  std::vector<int64_t> perm(static_cast<size_t>(rank));
  for (int64_t i = 0; i < rank; ++i) perm[size_t(i)] = rank - 1 - i;
  perm = attr_ints(n, "perm", perm);
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> iota(static_cast<size_t>(rank));
  std::iota(iota.begin(), iota.end(), 0);
  if (sorted != iota) fail(n, "perm is not a permutation of the " + std::to_string(rank) + " axes");
  PlanStep s = step(n, StepKind::Layout);
  s.layout = LayoutKind::Transpose;
  s.in = {x};
  s.a_shape = with_sample_axis(v);
  SampleLayout layout = v.samples;
  if (v.batched()) {
    // The samples go where perm puts their axis; the per-sample factors (that axis's outer
    // and inner among them) keep their logical order, so only their permutation is copied.
    s.perm = {0};
    for (size_t i = 0; i < perm.size(); ++i) {
      if (perm[i] == v.samples.axis) layout.axis = int64_t(i);
      for (int64_t a : step_axes_of(v, perm[i])) s.perm.push_back(a);
    }
  } else {
    s.perm = {0};
    for (int64_t a : perm) s.perm.push_back(a + 1);
  }
  s.out_shape = s.a_shape;
  for (size_t i = 0; i < s.perm.size(); ++i) s.out_shape[i] = s.a_shape[size_t(s.perm[i])];
  iota.resize(s.perm.size());
  std::iota(iota.begin(), iota.end(), 0);
  if (v.batched() && s.perm == iota) {  // only the samples moved: the same data
    alias(n, x, v.shape, n.outputs[0], layout);
    return;
  }
  s.out = add_value(n.outputs[0], v.cls, without_sample_axis(s.out_shape));
  set_layout(s.out, layout);
  add_step(std::move(s));
}

int Planner::slice(const GraphNode& n, int x, const std::vector<int64_t>& starts,
                   const std::vector<int64_t>& steps, const Shape& out_step_shape,
                   const std::string& out) {
  PlanStep s = step(n, StepKind::Layout);
  s.layout = LayoutKind::Slice;
  s.in = {x};
  s.a_shape = with_sample_axis(value(x));
  s.out_shape = out_step_shape;
  s.starts = starts;
  s.steps = steps;
  s.out = add_value(out, value(x).cls, without_sample_axis(out_step_shape));
  add_step(std::move(s));
  return plan_.steps.back().out;
}

void Planner::lower_slice(const GraphNode& n) {
  const int x = input(n, 0);
  const PlanValue& v = value(x);
  const int64_t rank = int64_t(v.shape.size()) + (v.batched() ? 1 : 0);
  const int64_t off = v.batched() ? 0 : 1;  // step axis of a full-shape axis
  const GraphTensor *ts = int_input(n, 1), *te = int_input(n, 2), *ta = int_input(n, 3),
                    *tp = int_input(n, 4);
  if (!ts || !te) fail(n, "starts and ends must be constant integer inputs");
  const size_t count = ts->ints.size();
  if (te->ints.size() != count || (ta && ta->ints.size() != count) ||
      (tp && tp->ints.size() != count))
    fail(n, "starts, ends, axes and steps have different lengths");
  Shape in = with_sample_axis(v), out = in;
  std::vector<int64_t> starts(in.size(), 0), steps(in.size(), 1);
  std::vector<bool> seen(in.size(), false);
  for (size_t i = 0; i < count; ++i) {
    int64_t axis = ta ? ta->ints[i] : int64_t(i);
    if (axis < -rank || axis >= rank)
      fail(n, "axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank));
    if (axis < 0) axis += rank;
    const size_t a = size_t(axis + off);
    if (seen[a]) fail(n, "repeated axis");
    seen[a] = true;
    const int64_t d = in[a], step = tp ? tp->ints[i] : 1;
    if (step == 0) fail(n, "step 0 on axis " + std::to_string(axis));
    int64_t b = ts->ints[i], e = te->ints[i];
    if (b < 0) b += d;
    if (e < 0) e = e == std::numeric_limits<int64_t>::min() ? -1 : e + d;
    int64_t len = 0;
    if (step > 0) {
      b = std::clamp<int64_t>(b, 0, d);
      e = std::clamp<int64_t>(e, 0, d);
      len = e > b ? (e - b + step - 1) / step : 0;
    } else {
      b = std::clamp<int64_t>(b, 0, d - 1);
      e = std::clamp<int64_t>(e, -1, d - 1);
      len = b > e ? (b - e + (-step) - 1) / (-step) : 0;
    }
    if (axis == 0 && v.batched()) {
      if (b == 0 && step == 1 && len == d) continue;  // the whole sample axis: nothing to do
      fail(n, "slicing axis 0, the sample axis");
    }
    if (len == 0) fail(n, "the slice of axis " + std::to_string(axis) + " is empty");
    starts[a] = b;
    steps[a] = step;
    out[a] = len;
  }
  slice(n, x, starts, steps, out, n.outputs[0]);
}

void Planner::lower_split(const GraphNode& n) {
  const int x = input(n, 0);
  const PlanValue& v = value(x);
  const int64_t rank = int64_t(v.shape.size()) + (v.batched() ? 1 : 0);
  int64_t axis = attr_int(n, "axis", 0);
  if (axis < -rank || axis >= rank)
    fail(n, "axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank));
  if (axis < 0) axis += rank;
  if (axis == 0 && v.batched()) fail(n, "splitting axis 0, the sample axis");
  const size_t a = size_t(axis + (v.batched() ? 0 : 1));
  const Shape in = with_sample_axis(v);
  const int64_t d = in[a], outputs = int64_t(n.outputs.size());
  std::vector<int64_t> sizes = attr_ints(n, "split", {});
  if (const GraphTensor* t = int_input(n, 1)) sizes = t->ints;
  if (sizes.empty()) {  // equal parts (num_outputs: the last one may be smaller)
    const int64_t parts = attr_int(n, "num_outputs", outputs);
    if (parts != outputs || parts < 1)
      fail(n, "num_outputs=" + std::to_string(parts) + " but the node has " +
                  std::to_string(outputs) + " outputs");
    const int64_t each = (d + parts - 1) / parts;
    for (int64_t i = 0; i < parts; ++i) sizes.push_back(std::min(each, d - i * each));
  }
  if (int64_t(sizes.size()) != outputs)
    fail(n,
         std::to_string(sizes.size()) + " split sizes for " + std::to_string(outputs) + " outputs");
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 1) fail(n, "split sizes must be positive");
    total += s;
  }
  if (total != d)
    fail(n, "split sizes sum to " + std::to_string(total) + " but axis " + std::to_string(axis) +
                " has extent " + std::to_string(d));
  int64_t at = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::vector<int64_t> starts(in.size(), 0), steps(in.size(), 1);
    starts[a] = at;
    Shape out = in;
    out[a] = sizes[i];
    at += sizes[i];
    if (!n.outputs[i].empty()) slice(n, x, starts, steps, out, n.outputs[i]);
  }
}

void Planner::lower_concat(const GraphNode& n) {
  if (n.inputs.empty()) fail(n, "has no inputs");
  std::vector<int> ins;
  bool data = false;
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    ins.push_back(input(n, i));
    data |= value(ins.back()).batched();
  }
  // Step shapes: data as [1, per-sample], and a parameter or constant as its full shape when
  // joined to data (its axis 0, of extent 1, broadcast over the samples), else [1, shape].
  std::vector<Shape> shapes;
  for (int id : ins) {
    const PlanValue& v = value(id);
    if (v.batched() || !data) {
      shapes.push_back(with_sample_axis(v));
    } else {
      if (v.shape.empty() || v.shape[0] != 1)
        fail(n, "a parameter or constant joined to data must have extent 1 on axis 0 ('" + v.name +
                    "')");
      shapes.push_back(v.shape);
    }
  }
  const int64_t rank = int64_t(shapes[0].size()) - (data ? 0 : 1);
  int64_t axis = attr_int(n, "axis", std::numeric_limits<int64_t>::min());
  if (axis == std::numeric_limits<int64_t>::min()) fail(n, "the axis attribute is missing");
  if (axis < -rank || axis >= rank)
    fail(n, "axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank));
  if (axis < 0) axis += rank;
  if (axis == 0 && data) fail(n, "concatenating along axis 0, the sample axis");
  const size_t a = size_t(axis + (data ? 0 : 1));
  Shape out = shapes[0];
  out[a] = 0;
  for (const Shape& s : shapes) {
    if (s.size() != out.size()) fail(n, "inputs of different ranks");
    for (size_t i = 0; i < s.size(); ++i)
      if (i != a && s[i] != out[i])
        fail(n, "input extents differ on axis " + std::to_string(int64_t(i) - (data ? 0 : 1)));
    out[a] += s[a];
  }
  PlanStep s = step(n, StepKind::Layout);
  s.layout = LayoutKind::Concat;
  s.in = ins;
  s.in_shapes = shapes;
  s.axis = int64_t(a);
  s.out_shape = out;
  ValueClass cls = ValueClass::Constant;
  for (int id : ins) cls = join(cls, value(id).cls);
  s.out = add_value(n.outputs[0], cls, without_sample_axis(out));
  add_step(std::move(s));
}

}  // namespace hspec::planning
