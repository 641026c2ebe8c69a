// Sample layouts: the map between a Data value's logical (ONNX) axes, where the samples may
// sit on any axis merged with per-sample extents, and its physical step axes, which keep the
// samples first; axis normalisation for every op with axis attributes, and the regrouping
// of a Reshape around the samples.
#include <algorithm>

#include "planner.hpp"

namespace hspec::planning {

Shape Planner::logical_shape(const PlanValue& v) {
  if (!v.batched()) return v.shape;
  const SampleLayout& l = v.samples;
  const auto at = v.shape.begin() + l.axis;
  Shape s(v.shape.begin(), at);
  s.push_back(l.outer * l.inner);
  s.insert(s.end(), at + l.factors(), v.shape.end());
  return s;
}

Shape Planner::physical_shape(const Shape& logical, const SampleLayout& l) {
  Shape s(logical.begin(), logical.begin() + l.axis);
  if (l.outer > 1) s.push_back(l.outer);
  if (l.inner > 1) s.push_back(l.inner);
  s.insert(s.end(), logical.begin() + l.axis + 1, logical.end());
  return s;
}

Shape Planner::step_shape(const Shape& logical, const SampleLayout& l, bool data) {
  SampleLayout ones = l;
  if (!data) {  // as many axes of extent 1 as the data have factors
    ones.outer = l.outer > 1 ? 1 : 0;
    ones.inner = l.inner > 1 ? 1 : 0;
  }
  Shape s(logical.begin(), logical.begin() + l.axis);
  if (l.outer > 1) s.push_back(ones.outer);
  if (l.inner > 1) s.push_back(ones.inner);
  s.insert(s.end(), logical.begin() + l.axis + 1, logical.end());
  s.insert(s.begin(), 1);
  return s;
}

std::vector<int64_t> Planner::step_axes_of(const PlanValue& v, int64_t a) {
  const SampleLayout& l = v.samples;
  if (a < l.axis) return {a + 1};
  if (a > l.axis) return {a + l.factors()};
  std::vector<int64_t> r;
  for (int64_t k = 0; k < l.factors(); ++k) r.push_back(l.axis + 1 + k);
  return r;
}

std::vector<int64_t> Planner::logical_axes(const GraphNode& n, std::vector<int64_t> axes,
                                           int64_t rank) const {
  for (int64_t& a : axes) {
    if (a < -rank || a >= rank)
      fail(n, "axis " + std::to_string(a) + " out of range for rank " + std::to_string(rank));
    if (a < 0) a += rank;
  }
  std::sort(axes.begin(), axes.end());
  if (std::adjacent_find(axes.begin(), axes.end()) != axes.end()) fail(n, "repeated axis");
  return axes;
}

int64_t Planner::step_axis(const GraphNode& n, const PlanValue& v, int64_t a) const {
  if (!v.batched()) return a;
  if (a == v.samples.axis) {
    if (v.samples.standard()) fail(n, "cannot act on axis 0, the sample axis");
    fail(n, "cannot act on axis " + std::to_string(a) +
                ", which holds the samples (the sample axis " + describe(v.samples) + ")");
  }
  return step_axes_of(v, a)[0];
}

std::vector<int64_t> Planner::normalize_axes(const GraphNode& n, const PlanValue& v,
                                             std::vector<int64_t> axes, int64_t rank) const {
  axes = logical_axes(n, std::move(axes), rank);
  for (int64_t& a : axes) a = step_axis(n, v, a);
  return axes;
}

std::string Planner::describe(const SampleLayout& l) {
  std::string s = "on axis " + std::to_string(l.axis);
  if (l.outer > 1) s += ", after " + std::to_string(l.outer) + " per-sample rows";
  if (l.inner > 1) s += ", merged with " + std::to_string(l.inner) + " per-sample rows after them";
  return s;
}

SampleLayout Planner::regroup(const GraphNode& n, const PlanValue& v, std::vector<int64_t> target,
                              size_t q, Shape& out) const {
  const Shape in = logical_shape(v);
  const SampleLayout& l = v.samples;
  // Per sample, the elements before and after the samples (in logical order).
  int64_t pre = l.outer, post = l.inner;
  for (size_t i = 0; i < in.size(); ++i)
    if (int64_t(i) < l.axis)
      pre *= in[i];
    else if (int64_t(i) > l.axis)
      post *= in[i];
  int64_t infer = -1;
  for (size_t i = 0; i < target.size(); ++i) {
    if (i == q) continue;
    if (target[i] == 0) {
      if (i >= in.size()) fail(n, "0 in the target shape beyond the input's rank");
      if (int64_t(i) == l.axis)
        fail(n, "0 in the target shape copies axis " + std::to_string(i) +
                    ", which holds the samples");
      target[i] = in[i];
    }
    if (target[i] == -1) {
      if (infer >= 0) fail(n, "more than one -1 in the target shape");
      infer = int64_t(i);
    } else if (target[i] < 0) {
      fail(n, "negative extent in the target shape");
    }
  }
  // What the target puts before and after the samples' axis (-1 resolved below).
  int64_t before = 1, after = 1;
  for (size_t i = 0; i < target.size(); ++i)
    if (i != q && int64_t(i) != infer) (i < q ? before : after) *= target[i];
  SampleLayout o;
  o.axis = int64_t(q);
  if (infer >= 0) {  // the -1 takes everything on its side of the samples
    const bool first = size_t(infer) < q;
    const int64_t have = first ? pre : post, known = first ? before : after;
    if (known == 0 || have % known != 0) fail(n, "cannot infer the -1 extent");
    target[size_t(infer)] = have / known;
    (first ? before : after) *= target[size_t(infer)];
  }
  if (before == 0 || after == 0 || pre % before != 0 || post % after != 0)
    fail(n, "the target shape would split the samples (" + std::to_string(pre) +
                " per-sample elements before them and " + std::to_string(post) +
                " after them; the target asks for " + std::to_string(before) + " and " +
                std::to_string(after) + ")");
  o.outer = pre / before;
  o.inner = post / after;
  target[q] = o.outer * o.inner;
  out = target;
  return o;
}

}  // namespace hspec::planning
