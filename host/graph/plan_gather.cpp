// Lowering of Gather: an embedding lookup (a parameter or constant table indexed by the
// data's integer token ids, axis 0) or a pick by constant indices along one axis of any
// value (e.g. the class token x[:, 0] of a transformer), both to one Gather step.
#include <algorithm>

#include "planner.hpp"

namespace hspec::planning {

void Planner::lower_gather(const GraphNode& n) {
  if (!has_input(n, 1)) fail(n, "the indices (input 1) are missing");
  const std::string& out = n.outputs[0];
  const int64_t axis_attr = attr_int(n, "axis", 0);
  PlanStep s = step(n, StepKind::Gather);
  if (!int_consts_.count(n.inputs[1])) {  // indices from the data: an embedding lookup
    const int table = input(n, 0), ids = input(n, 1);
    const PlanValue &vt = value(table), &vi = value(ids);
    if (!vi.is_int)
      fail(n, "the indices must be the integer input (token ids) or an integer constant");
    if (vt.batched()) fail(n, "a table that depends on the data is not supported");
    if (vt.shape.empty()) fail(n, "the table is a scalar");
    const int64_t rank = int64_t(vt.shape.size());
    if (axis_attr != 0 && axis_attr != -rank)
      fail(n,
           "token ids can index axis 0 of the table only (axis=" + std::to_string(axis_attr) + ")");
    if (vt.shape[0] < 1) fail(n, "the table has no rows");
    s.gather_ids = true;
    s.gather_axis = vt.shape[0];
    s.gather_inner = shape_numel(Shape(vt.shape.begin() + 1, vt.shape.end()));
    s.gather_count = vi.numel();
    s.in = {table, ids};
    Shape shape = vi.shape;
    shape.insert(shape.end(), vt.shape.begin() + 1, vt.shape.end());
    if (plan_.id_limit == 0 || vt.shape[0] < plan_.id_limit) {
      plan_.id_limit = vt.shape[0];
      plan_.id_table = vt.name;
    }
    s.out = add_value(out, ValueClass::Data, shape);
    add_step(std::move(s));
    return;
  }
  const GraphTensor& idx = *int_consts_.at(n.inputs[1]);
  const int x = input(n, 0);
  const PlanValue& vx = value(x);
  const Shape full = logical_shape(vx);  // for Data: the samples' axis holds its factors
  const int64_t rank = int64_t(full.size());
  if (rank == 0) fail(n, "Gather on a scalar");
  const int64_t axis = logical_axes(n, {axis_attr}, rank)[0];
  // The picked axis among the physical per-sample axes (the step axis less the samples).
  const int64_t phys = vx.batched() ? step_axis(n, vx, axis) - 1 : axis;
  const int64_t extent = full[size_t(axis)];
  s.gather_axis = extent;
  s.gather_outer = shape_numel(Shape(vx.shape.begin(), vx.shape.begin() + phys));
  s.gather_inner = shape_numel(Shape(vx.shape.begin() + phys + 1, vx.shape.end()));
  s.gather_count = idx.numel();
  if (int64_t(idx.ints.size()) != idx.numel()) fail(n, "the indices have the wrong size");
  for (int64_t j : idx.ints) {
    if (j < -extent || j >= extent)
      fail(n, "index " + std::to_string(j) + " is out of range for an axis of extent " +
                  std::to_string(extent));
    s.gather_index.push_back(j < 0 ? j + extent : j);
  }
  Shape shape(full.begin(), full.begin() + axis);
  shape.insert(shape.end(), idx.shape.begin(), idx.shape.end());
  shape.insert(shape.end(), full.begin() + axis + 1, full.end());
  SampleLayout layout = vx.samples;
  if (vx.batched() && axis < layout.axis) layout.axis += int64_t(idx.shape.size()) - 1;
  s.in = {x};
  s.out = add_value(out, vx.cls, vx.batched() ? physical_shape(shape, layout) : shape);
  set_layout(s.out, layout);
  add_step(std::move(s));
}

}  // namespace hspec::planning
