// Lowering of pooling, means and the shape ops (Flatten, Reshape, Squeeze, Unsqueeze,
// Identity): for Data values the sample axis must stay axis 0, untouched.
#include <algorithm>

#include "planner.hpp"

namespace hspec::planning {

WindowGeom window_geom(const Planner& p, const GraphNode& n, const Shape& x, int64_t kh,
                       int64_t kw);

void Planner::lower_pool(const GraphNode& n) {
  const int x = input(n, 0);
  const PlanValue& vx = value(x);
  if (!vx.batched() || vx.shape.size() != 3)
    fail(n, "the input must depend on the data and be 4-D [N, C, H, W]");
  if (n.op == "GlobalAveragePool") {
    reduce_mean(n, x, {2, 3}, true, n.outputs[0]);
    return;
  }
  const auto ks = attr_ints(n, "kernel_shape", {});
  if (ks.size() != 2) fail(n, "kernel_shape must have 2 values (2-D pooling)");
  PlanStep s = step(n, n.op == "MaxPool" ? StepKind::MaxPool : StepKind::AvgPool);
  s.geom = window_geom(*this, n, vx.shape, ks[0], ks[1]);
  if (n.op == "MaxPool" && attr_int(n, "storage_order", 0) != 0)
    fail(n, "storage_order=1 is not supported");
  if (n.op == "AveragePool" && (s.geom.dh != 1 || s.geom.dw != 1))
    fail(n, "dilations are not supported for AveragePool");
  s.count_include_pad = attr_int(n, "count_include_pad", 0) != 0;
  s.in = {x};
  s.out = add_value(n.outputs[0], ValueClass::Data, {vx.shape[0], s.geom.out_h, s.geom.out_w});
  add_step(std::move(s));
}

void Planner::lower_reduce(const GraphNode& n) {
  const int x = input(n, 0);
  const PlanValue& v = value(x);
  const int64_t rank = int64_t(v.shape.size()) + (v.batched() ? 1 : 0);
  std::vector<int64_t> axes = attr_ints(n, "axes", {});
  if (const GraphTensor* t = int_input(n, 1)) axes = t->ints;
  if (axes.empty()) {
    if (attr_int(n, "noop_with_empty_axes", 0) != 0) {
      alias(n, x, v.shape, n.outputs[0]);
      return;
    }
    for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
  }
  axes = normalize_axes(n, v, axes, rank);
  reduce_mean(n, x, axes, attr_int(n, "keepdims", 1) != 0, n.outputs[0]);
}

void Planner::lower_shape(const GraphNode& n) {
  const int x = input(n, 0);
  const PlanValue& v = value(x);
  const bool data = v.batched();
  // Logical shapes: for Data the per-sample extents, the sample axis holding its factors.
  const Shape full = logical_shape(v);
  const int64_t rank = int64_t(full.size());
  Shape out;
  SampleLayout layout = v.samples;
  if (n.op == "Identity" || n.op == "Dropout") {
    out = full;
  } else if (n.op == "Flatten") {
    int64_t axis = attr_int(n, "axis", 1);
    if (axis < -rank || axis > rank) fail(n, "axis out of range");
    if (axis < 0) axis += rank;
    if (data && (axis != 1 || v.moved())) fail(n, "only axis=1 keeps the sample axis");
    int64_t a = 1, b = 1;
    for (int64_t i = 0; i < rank; ++i) (i < axis ? a : b) *= full[size_t(i)];
    out = {a, b};
  } else if (n.op == "Reshape") {
    const GraphTensor* t = int_input(n, 1);
    if (!t) fail(n, "the target shape is missing");
    const bool allowzero = attr_int(n, "allowzero", 0) != 0;
    std::vector<int64_t> target = t->ints;
    if (data) {
      if (target.empty()) fail(n, "the target shape must keep the sample axis");
      if (allowzero && std::count(target.begin(), target.end(), int64_t(0)))
        fail(n, "allowzero=1 with a 0 in the target shape of data is not supported");
      // Which target axis holds the samples: the importer writes -1 there and the
      // per-sample extents elsewhere; otherwise target[0] stands for the samples whatever
      // it says (0, -1, an export's batch size), as in [N, ...] -> [N, ...] or [N H, ...].
      size_t q = 0;
      const auto minus = std::find(target.begin(), target.end(), int64_t(-1));
      if (target[0] > 0 && minus != target.end()) q = size_t(minus - target.begin());
      layout = regroup(n, v, target, q, out);
    } else {
      int64_t known = 1, infer = -1;
      for (size_t i = 0; i < target.size(); ++i) {
        if (target[i] == 0 && !allowzero) {
          if (i >= full.size()) fail(n, "0 in the target shape beyond the input's rank");
          target[i] = full[i];
        }
        if (target[i] == -1) {
          if (infer >= 0) fail(n, "more than one -1 in the target shape");
          infer = int64_t(i);
        } else if (target[i] < 0) {
          fail(n, "negative extent in the target shape");
        } else {
          known *= target[i];
        }
      }
      if (infer >= 0) {
        const int64_t total = shape_numel(full);
        if (known == 0 || total % known != 0) fail(n, "cannot infer the -1 extent");
        target[size_t(infer)] = total / known;
      }
      out = target;
    }
  } else {  // Squeeze, Unsqueeze: axes of extent 1 dropped or added; the samples stay put
    std::vector<int64_t> axes = attr_ints(n, "axes", {});
    if (const GraphTensor* t = int_input(n, 1)) axes = t->ints;
    const int64_t p = data ? layout.axis : -1;
    if (n.op == "Squeeze") {
      if (axes.empty())
        for (int64_t i = 0; i < rank; ++i)
          if (full[size_t(i)] == 1 && i != p) axes.push_back(i);
      axes = logical_axes(n, axes, rank);
      for (int64_t i = 0; i < rank; ++i) {
        const bool drop = std::count(axes.begin(), axes.end(), i) > 0;
        if (drop && i == p) step_axis(n, v, i);  // refused: it holds the samples
        if (drop && full[size_t(i)] != 1)
          fail(n, "cannot squeeze axis " + std::to_string(i) + " of extent " +
                      std::to_string(full[size_t(i)]));
        if (drop && i < p) --layout.axis;
        if (!drop) out.push_back(full[size_t(i)]);
      }
    } else {
      if (axes.empty()) fail(n, "axes are missing");
      const int64_t orank = rank + int64_t(axes.size());
      axes = logical_axes(n, axes, orank);
      size_t src = 0;
      for (int64_t i = 0; i < orank; ++i) {
        const bool added = std::count(axes.begin(), axes.end(), i) > 0;
        if (!added && int64_t(src) == p) layout.axis = i;
        out.push_back(added ? 1 : full[src++]);
      }
    }
  }
  alias(n, x, data ? physical_shape(out, layout) : out, n.outputs[0], layout);
}

}  // namespace hspec::planning
