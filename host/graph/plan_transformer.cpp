// Lowering of the transformer ops onto the existing step kinds where the algebra allows it,
// so their second derivatives come from rules already tested: LayerNormalization as
// ReduceMean / Sub / Mul / Rsqrt, Div by a value as a product with its Reciprocal, Pow with
// a constant exponent, Where with a constant condition as masks, Expand as a broadcast Add
// of zeros (over the samples: one value that the consumers broadcast); Softmax is a step of
// its own.
#include <algorithm>
#include <cmath>

#include "planner.hpp"

namespace hspec::planning {

namespace {
// Row-major strides, for host-side broadcasting of small constants.
Shape strides_of(const Shape& s) {
  Shape st(s.size(), 1);
  for (size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}
}  // namespace

Shape Planner::broadcast_shape(const GraphNode& n, Shape a, Shape b) const {
  const size_t r = std::max(a.size(), b.size());
  a.insert(a.begin(), r - a.size(), 1);
  b.insert(b.begin(), r - b.size(), 1);
  for (size_t i = 0; i < r; ++i) {
    if (a[i] != b[i] && a[i] != 1 && b[i] != 1) fail(n, "shapes do not broadcast");
    a[i] = std::max(a[i], b[i]);
  }
  return a;
}

std::vector<double> Planner::broadcast_host(const std::vector<double>& v, Shape s,
                                            const Shape& out) const {
  s.insert(s.begin(), out.size() - s.size(), 1);
  const Shape ss = strides_of(s), so = strides_of(out);
  std::vector<double> r(size_t(shape_numel(out)));
  for (int64_t i = 0; i < int64_t(r.size()); ++i) {
    int64_t src = 0;
    for (size_t a = 0; a < out.size(); ++a)
      if (s[a] != 1) src += ((i / so[a]) % out[a]) * ss[a];
    r[size_t(i)] = v[size_t(src)];
  }
  return r;
}

int Planner::unary(const GraphNode& n, UnaryKind f, int x, const std::string& out) {
  PlanStep s = step(n, StepKind::Unary);
  s.unary = f;
  s.in = {x};
  s.out = add_value(out, value(x).cls, value(x).shape);
  set_layout(s.out, value(x).samples);
  add_step(std::move(s));
  return plan_.steps.back().out;
}

double Planner::scalar_input(const GraphNode& n, size_t i) const {
  if (!has_input(n, i)) fail(n, "input " + std::to_string(i) + " is missing");
  if (int_consts_.count(n.inputs[i])) {
    const GraphTensor* t = int_consts_.at(n.inputs[i]);
    if (t->ints.size() != 1) fail(n, "input " + std::to_string(i) + " must be a scalar");
    return double(t->ints[0]);
  }
  const PlanValue& v = value(input(n, i));
  if (v.cls != ValueClass::Constant || v.numel() != 1)
    fail(n, "input " + std::to_string(i) + " must be a constant scalar");
  return v.host[0];
}

void Planner::lower_pow(const GraphNode& n) {
  const int x = input(n, 0);
  const std::string& out = n.outputs[0];
  if (n.op == "Sqrt") {
    unary(n, UnaryKind::Sqrt, x, out);
    return;
  }
  const double e = scalar_input(n, 1);
  if (e == 1) {
    alias(n, x, value(x).shape, out);
  } else if (e == 2) {
    binary(n, BinaryKind::Mul, x, x, out);
  } else if (e == 3) {
    binary(n, BinaryKind::Mul, x, binary(n, BinaryKind::Mul, x, x, temp(out, "sq")), out);
  } else if (e == 0.5) {
    unary(n, UnaryKind::Sqrt, x, out);
  } else if (e == -0.5) {
    unary(n, UnaryKind::Rsqrt, x, out);
  } else if (e == -1) {
    unary(n, UnaryKind::Reciprocal, x, out);
  } else if (e == -2) {
    unary(n, UnaryKind::Reciprocal, binary(n, BinaryKind::Mul, x, x, temp(out, "sq")), out);
  } else {
    fail(n, "exponent " + std::to_string(e) + " is not supported (1, 2, 3, 0.5, -0.5, -1, -2)");
  }
}

void Planner::lower_div(const GraphNode& n) {
  const int a = input(n, 0), b = input(n, 1);
  if (value(b).cls == ValueClass::Constant) {
    binary(n, BinaryKind::Div, a, b, n.outputs[0]);
    return;
  }
  // a / b = a (1/b): the quotient rule, second order included, from the product rule.
  const int r = unary(n, UnaryKind::Reciprocal, b, temp(n.outputs[0], "reciprocal"));
  binary(n, BinaryKind::Mul, a, r, n.outputs[0]);
}

void Planner::lower_layernorm(const GraphNode& n) {
  const int x = input(n, 0), scale = input(n, 1);
  const PlanValue& v = value(x);
  const int64_t rank = int64_t(v.shape.size()) + (v.batched() ? 1 : 0);
  int64_t axis = attr_int(n, "axis", -1);
  if (axis < -rank || axis >= rank)
    fail(n, "axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank));
  if (axis < 0) axis += rank;
  if (axis == 0 && v.batched()) fail(n, "cannot normalise over axis 0, the sample axis");
  if (attr_int(n, "stash_type", 1) != 1)
    fail(n, "stash_type other than 1 (float) is not supported");
  const double eps = attr_float(n, "epsilon", 1e-5);
  if (!(eps >= 0)) fail(n, "epsilon must be non-negative");
  for (size_t i = 1; i < n.outputs.size(); ++i)
    if (!n.outputs[i].empty())
      absent_[n.outputs[i]] = std::string(i == 1 ? "Mean" : "InvStdDev") +
                              " output of LayerNormalization node '" + n.name + "'";
  std::vector<int64_t> axes;
  for (int64_t a = axis; a < rank; ++a) axes.push_back(a);
  const std::string& out = n.outputs[0];
  const int mu = reduce_mean(n, x, axes, true, temp(out, "mean"));
  const int d = binary(n, BinaryKind::Sub, x, mu, temp(out, "centered"));
  const int sq = binary(n, BinaryKind::Mul, d, d, temp(out, "squared"));
  const int var = reduce_mean(n, sq, axes, true, temp(out, "var"));
  const int ve = binary(n, BinaryKind::Add, var, add_constant(temp(out, "eps"), {}, {eps}),
                        temp(out, "var_eps"));
  const int inv = unary(n, UnaryKind::Rsqrt, ve, temp(out, "inv_std"));
  const int xh = binary(n, BinaryKind::Mul, d, inv, temp(out, "normalized"));
  if (!has_input(n, 2)) {
    binary(n, BinaryKind::Mul, xh, scale, out);
    return;
  }
  const int scaled = binary(n, BinaryKind::Mul, xh, scale, temp(out, "scaled"));
  binary(n, BinaryKind::Add, scaled, input(n, 2), out);
}

void Planner::lower_softmax(const GraphNode& n) {
  const int x = input(n, 0);
  const PlanValue& v = value(x);
  const int64_t rank = int64_t(logical_shape(v).size());
  int64_t axis = attr_int(n, "axis", -1);
  if (axis < -rank || axis >= rank)
    fail(n, "axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank));
  if (axis < 0) axis += rank;
  if (v.batched() && axis == v.samples.axis)
    fail(n, "softmax over axis " + std::to_string(axis) + " would mix the samples (they sit " +
                describe(v.samples) + ")");
  PlanStep s = step(n, StepKind::Softmax);
  s.in = {x};
  s.a_shape = v.shape;
  s.a_shape.insert(s.a_shape.begin(), 1);  // step shapes: the sample axis first
  s.axis = v.batched() ? step_axis(n, v, axis) : axis + 1;
  s.out_shape = s.a_shape;
  s.out_shape[size_t(s.axis)] = 1;
  s.out = add_value(n.outputs[0], v.cls, v.shape);
  set_layout(s.out, v.samples);
  add_step(std::move(s));
}

void Planner::lower_where(const GraphNode& n) {
  const GraphTensor* cond = int_input(n, 0);
  if (!cond) fail(n, "the condition is missing");
  const int a = input(n, 1), b = input(n, 2);
  std::vector<double> mask(cond->ints.size()), inverse(cond->ints.size());
  for (size_t i = 0; i < mask.size(); ++i) {
    mask[i] = cond->ints[i] != 0 ? 1.0 : 0.0;
    inverse[i] = 1.0 - mask[i];
  }
  const std::string& out = n.outputs[0];
  const bool ca = value(a).cls == ValueClass::Constant, cb = value(b).cls == ValueClass::Constant;
  if (ca && cb) fail(n, "all inputs are constants (the importer folds these)");
  auto masked = [&](int x, const std::vector<double>& m, const char* what) {
    return binary(n, BinaryKind::Mul, x, add_constant(temp(out, what), cond->shape, m),
                  temp(out, what) + "_x");
  };
  if (!ca && !cb) {
    binary(n, BinaryKind::Add, masked(a, mask, "mask"), masked(b, inverse, "inverse_mask"), out);
    return;
  }
  // One side constant (a mask of -inf or -1e9): its selected values are a constant term,
  // so no 0 * inf is ever formed.
  const int c = ca ? a : b;
  const Shape cs = broadcast_shape(n, cond->shape, value(c).shape);
  const std::vector<double> cm = broadcast_host(mask, cond->shape, cs),
                            cv = broadcast_host(value(c).host, value(c).shape, cs);
  std::vector<double> term(cm.size());
  for (size_t i = 0; i < term.size(); ++i) term[i] = (cm[i] != 0) == ca ? cv[i] : 0.0;
  const int kept = ca ? masked(b, inverse, "inverse_mask") : masked(a, mask, "mask");
  binary(n, BinaryKind::Add, kept, add_constant(temp(out, "selected"), cs, term), out);
}

void Planner::lower_expand(const GraphNode& n) {
  const int x = input(n, 0);
  const GraphTensor* t = int_input(n, 1);
  if (!t) fail(n, "the target shape is missing");
  const PlanValue& v = value(x);
  Shape target = t->ints;
  // The importer writes -1 for a dimension 0 that is the number of samples.
  const bool over_samples = !target.empty() && target[0] == -1;
  if (over_samples) target[0] = 1;
  for (int64_t d : target)
    if (d < 0) fail(n, "negative extent in the target shape");
  if (v.batched()) {
    const size_t rank = v.shape.size() + 1;
    if (target.size() > rank) fail(n, "expanding would put axes before the sample axis");
    if (over_samples && target.size() != rank)
      fail(n, "the number of samples would land on an axis other than the sample axis");
    if (target.size() == rank) target[0] = 1;  // the sample axis stays as it is
  } else if (over_samples && target.size() < v.shape.size()) {
    fail(n, "the number of samples would land on an axis other than axis 0");
  }
  const int zeros = add_constant(temp(n.outputs[0], "zeros"), target,
                                 std::vector<double>(size_t(shape_numel(target)), 0.0));
  const int out = binary(n, BinaryKind::Add, x, zeros, n.outputs[0]);
  // A parameter or constant expanded over the samples (a ViT's class token) stays one value
  // for all samples, of extent 1 on axis 0: the ops that broadcast it against data (Concat,
  // Add, ...) then compute exactly what the expanded tensor would give, and the backward pass
  // of that broadcast sums the samples' adjoints into the parameter's gradient.
  if (over_samples && !v.batched()) {
    if (value(out).shape.empty() || value(out).shape[0] != 1)
      fail(n, "the input's axis 0 must have extent 1 to be expanded over the samples");
    over_samples_[out] = n.name;
  }
}

void Planner::check_over_samples(const GraphNode& n) {
  bool data = false, flagged = false;
  std::string first;
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    if (n.inputs[i].empty() || !ids_.count(n.inputs[i])) continue;
    const int id = ids_.at(n.inputs[i]);
    data |= value(id).batched();
    if (over_samples_.count(id) && !flagged) {
      flagged = true;
      first = n.inputs[i];
    }
  }
  if (!flagged) return;
  const bool elementwise = n.op == "Add" || n.op == "Sub" || n.op == "Mul" || n.op == "Div";
  if (elementwise || (n.op == "Concat" && data)) return;
  fail(n, "input '" + first + "' is expanded over the samples (by node '" +
              over_samples_.at(ids_.at(first)) +
              "'), which hspec supports only as an operand of Add, Sub, Mul or Div, or of a "
              "Concat with data");
}

void Planner::propagate_over_samples(const GraphNode& n) {
  if (over_samples_.empty() || !ids_.count(n.outputs[0])) return;
  const int out = ids_.at(n.outputs[0]);
  if (value(out).batched()) return;
  for (const auto& name : n.inputs) {
    if (name.empty() || !ids_.count(name) || !over_samples_.count(ids_.at(name))) continue;
    // Still one value standing for all samples (e.g. the class token plus a constant).
    if (value(out).shape.empty() || value(out).shape[0] != 1)
      fail(n, "input '" + name + "' is expanded over the samples, but the result has extent " +
                  std::to_string(value(out).shape.empty() ? 0 : value(out).shape[0]) +
                  " on axis 0");
    over_samples_[out] = over_samples_.at(ids_.at(name));
    return;
  }
}

void Planner::lower_cast(const GraphNode& n) {
  const int64_t to = attr_int(n, "to", 0);
  // FLOAT, FLOAT16, DOUBLE, BFLOAT16: hspec computes in one precision, so these are identities.
  if (to != 1 && to != 10 && to != 11 && to != 16)
    fail(n, "cast to type " + std::to_string(to) + " (only float types are supported on data)");
  const int x = input(n, 0);
  alias(n, x, value(x).shape, n.outputs[0]);
}

}  // namespace hspec::planning
