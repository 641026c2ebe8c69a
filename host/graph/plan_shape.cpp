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
  const int64_t rank = int64_t(v.shape.size()) + (data ? 1 : 0);
  Shape full = v.shape;
  // ONNX axes: a merged value's axis 0 holds the samples times shape[0] (its placeholder here).
  if (data && !v.merged) full.insert(full.begin(), 1);
  Shape out;  // the full output shape (sample axis extent 1 for Data)
  bool merge_out = false;
  if (n.op == "Identity" || n.op == "Dropout") {
    out = full;
  } else if (n.op == "Flatten") {
    int64_t axis = attr_int(n, "axis", 1);
    if (axis < -rank || axis > rank) fail(n, "axis out of range");
    if (axis < 0) axis += rank;
    if (data && axis != 1) fail(n, "only axis=1 keeps the sample axis");
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
      target[0] = 1;  // whatever it says (0, -1, the exported batch size), axis 0 stays samples
    }
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
    const int64_t total = shape_numel(full);
    if (data && infer < 0 && known > 0 && total != known && total % known == 0) {
      // [N, H, ...] -> [N H, ...] (attention exports): the samples merge with H, samples
      // major, so the data stay where they are and H is kept as a per-sample axis.
      target[0] = total / known;
      merge_out = true;
    }
    if (infer >= 0) {
      if (known == 0 || total % known != 0) fail(n, "cannot infer the -1 extent");
      target[size_t(infer)] = total / known;
    }
    out = target;
  } else {  // Squeeze, Unsqueeze
    std::vector<int64_t> axes = attr_ints(n, "axes", {});
    if (const GraphTensor* t = int_input(n, 1)) axes = t->ints;
    if (n.op == "Squeeze") {
      if (axes.empty())
        for (int64_t i = data ? 1 : 0; i < rank; ++i)
          if (full[size_t(i)] == 1) axes.push_back(i);
      axes = normalize_axes(n, v, axes, rank);
      for (int64_t i = 0; i < rank; ++i) {
        const bool drop = std::count(axes.begin(), axes.end(), i) > 0;
        if (drop && full[size_t(i)] != 1)
          fail(n, "cannot squeeze axis " + std::to_string(i) + " of extent " +
                      std::to_string(full[size_t(i)]));
        if (!drop) out.push_back(full[size_t(i)]);
      }
    } else {
      if (axes.empty()) fail(n, "axes are missing");
      const int64_t orank = rank + int64_t(axes.size());
      axes = normalize_axes(n, v, axes, orank);
      size_t src = 0;
      for (int64_t i = 0; i < orank; ++i)
        out.push_back(std::count(axes.begin(), axes.end(), i) > 0 ? 1 : full[src++]);
    }
  }
  if (data && !merge_out) {
    if (out.empty()) fail(n, "the result must keep the sample axis");
    out.erase(out.begin());
  }
  set_merged(alias(n, x, out, n.outputs[0]), merge_out);
}

}  // namespace hspec::planning
