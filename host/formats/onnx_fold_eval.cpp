// Evaluation of the operators that shape subgraphs use (Shape arithmetic, Cast, Where,
// ConstantOfShape, Range...) on constant tensors, for folding at load time; the
// data-movement ones are in onnx_fold_layout.cpp.
#include <algorithm>
#include <cmath>
#include <functional>

#include "onnx_fold_util.hpp"

namespace hspec::onnx_import {
namespace {

using namespace fold;

GraphTensor elementwise(const std::vector<const GraphTensor*>& in, Kind kind,
                        const std::function<double(const std::vector<double>&)>& f,
                        const std::string& where) {
  if (in.empty() || !in[0]) bad(where, "an input is missing");
  std::vector<int64_t> shape = in[0]->shape;
  for (size_t k = 1; k < in.size(); ++k) shape = broadcast(shape, in[k]->shape, where);
  GraphTensor out = make(kind, shape, where);
  std::vector<double> args(in.size());
  for (const GraphTensor* t : in)
    if (!t) bad(where, "an input is missing");
  for (int64_t i = 0; i < out.numel(); ++i) {
    for (size_t k = 0; k < in.size(); ++k)
      args[k] = get(*in[k], source_index(shape, in[k]->shape, i));
    put(out, i, f(args));
  }
  return out;
}

}  // namespace

std::vector<int64_t> as_ints(const GraphTensor& t, const std::string& where) {
  if (t.is_float()) bad(where, "expects an integer tensor");
  return t.ints;
}

GraphTensor eval_fold_op(const GraphNode& n, const std::vector<const GraphTensor*>& in,
                         bool like_is_int, const std::string& where) {
  const std::string& op = n.op;
  current_where = &where;
  const size_t min_inputs =
      op == "Constant"                                 ? 0
      : (op == "Where" || op == "Range")               ? 3
      : (op == "Concat" || op == "Max" || op == "Min") ? 1
      : (op == "Gather" || op == "Expand" || op == "Reshape" || op == "Equal" || op == "Less" ||
         op == "Greater" || op == "And" || op == "Or" || op == "Add" || op == "Sub" ||
         op == "Mul" || op == "Div" || op == "Mod" || op == "CastLike" || op == "Pow")
          ? 2
          : 1;
  if (in.size() < min_inputs) bad(where, "needs " + std::to_string(min_inputs) + " inputs");
  for (size_t k = 0; k < min_inputs; ++k)
    if (!in[k]) bad(where, "input " + std::to_string(k) + " is missing");
  const GraphTensor* x = in.empty() ? nullptr : in[0];
  if (op == "Constant") {
    GraphTensor t;
    if (const GraphAttribute* a = n.attr("value")) return a->t;
    if (const GraphAttribute* a = n.attr("value_int")) {
      t.kind = Kind::Int;
      t.ints = {a->i};
      return t;
    }
    if (const GraphAttribute* a = n.attr("value_float")) {
      t.values = {a->f};
      return t;
    }
    if (const GraphAttribute* a = n.attr("value_ints")) {
      t.kind = Kind::Int;
      t.ints = a->ints;
      t.shape = {int64_t(a->ints.size())};
      return t;
    }
    if (const GraphAttribute* a = n.attr("value_floats")) {
      t.values = a->floats;
      t.shape = {int64_t(a->floats.size())};
      return t;
    }
    bad(where, "Constant without a supported value attribute");
  }
  if (op == "Identity") return *x;
  if (op == "Shape" || op == "Size") {
    GraphTensor t;
    t.kind = Kind::Int;
    if (op == "Size") {
      t.ints = {x->numel()};
      return t;
    }
    const int64_t r = int64_t(x->shape.size());
    int64_t b = attr_int(n, "start", 0), e = attr_int(n, "end", r);
    if (b < 0) b += r;
    if (e < 0) e += r;
    b = std::min(std::max(b, int64_t(0)), r);
    e = std::min(std::max(e, int64_t(0)), r);
    for (int64_t i = b; i < e; ++i) t.ints.push_back(x->shape[i]);
    t.shape = {int64_t(t.ints.size())};
    return t;
  }
  if (op == "Cast" || op == "CastLike") {
    bool to_int = like_is_int;
    if (op == "Cast") {
      const int64_t to = attr_int(n, "to", 1);
      to_int = !(to == 1 || to == 10 || to == 11 || to == 16);
      if (to == 9)
        return elementwise(
            {x}, Kind::Int, [](auto& v) { return v[0] != 0 ? 1.0 : 0.0; }, where);
    }
    // Integer to integer is exact (INT64_MAX, the exporters' "to the end" of a Slice, does
    // not survive a trip through double).
    if (to_int && !x->is_float()) return *x;
    return elementwise(
        {x}, to_int ? Kind::Int : Kind::Float,
        [to_int](auto& v) { return to_int ? std::trunc(v[0]) : v[0]; }, where);
  }
  const Kind k0 = x ? x->kind : Kind::Int;
  auto num = [&](std::function<double(const std::vector<double>&)> f) {
    return elementwise(in, k0, f, where);
  };
  auto cmp = [&](std::function<double(const std::vector<double>&)> f) {
    return elementwise(in, Kind::Int, f, where);
  };
  if (op == "Add") return num([](auto& v) { return v[0] + v[1]; });
  if (op == "Sub") return num([](auto& v) { return v[0] - v[1]; });
  if (op == "Mul") return num([](auto& v) { return v[0] * v[1]; });
  if (op == "Div") {
    if (!x->is_float())
      for (int64_t i = 0; i < in[1]->numel(); ++i)
        if (get(*in[1], i) == 0) bad(where, "integer division by zero");
    return num([&](auto& v) { return x->is_float() ? v[0] / v[1] : std::trunc(v[0] / v[1]); });
  }
  if (op == "Mod") {
    if (x->is_float()) bad(where, "Mod on floats is not folded");
    for (int64_t i = 0; i < in[1]->numel(); ++i)
      if (get(*in[1], i) == 0) bad(where, "integer modulo by zero");
    return num([](auto& v) {
      const int64_t a = int64_t(v[0]), b = int64_t(v[1]);
      if (b == -1) return 0.0;  // INT64_MIN % -1 overflows
      const int64_t r = a % b;
      return double(r != 0 && ((r < 0) != (b < 0)) ? r + b : r);
    });
  }
  if (op == "Max") return num([](auto& v) { return *std::max_element(v.begin(), v.end()); });
  if (op == "Min") return num([](auto& v) { return *std::min_element(v.begin(), v.end()); });
  if (op == "Neg") return num([](auto& v) { return -v[0]; });
  if (op == "Abs") return num([](auto& v) { return std::fabs(v[0]); });
  if (op == "Sqrt" || op == "Pow") {  // attention scales: sqrt(head dim) from a Shape
    if (!x->is_float()) bad(where, op + " of integers");
    if (op == "Sqrt") return num([](auto& v) { return std::sqrt(v[0]); });
    return num([](auto& v) { return std::pow(v[0], v[1]); });
  }
  if (op == "Equal") return cmp([](auto& v) { return v[0] == v[1] ? 1.0 : 0.0; });
  if (op == "Less") return cmp([](auto& v) { return v[0] < v[1] ? 1.0 : 0.0; });
  if (op == "Greater") return cmp([](auto& v) { return v[0] > v[1] ? 1.0 : 0.0; });
  if (op == "And") return cmp([](auto& v) { return v[0] != 0 && v[1] != 0 ? 1.0 : 0.0; });
  if (op == "Or") return cmp([](auto& v) { return v[0] != 0 || v[1] != 0 ? 1.0 : 0.0; });
  if (op == "Not") return cmp([](auto& v) { return v[0] != 0 ? 0.0 : 1.0; });
  if (op == "Where") {
    return elementwise(
        in, in[1]->kind, [](auto& v) { return v[0] != 0 ? v[1] : v[2]; }, where);
  }
  GraphTensor moved;
  if (eval_layout_op(n, in, where, moved)) return moved;
  if (op == "ConstantOfShape") {
    const std::vector<int64_t> shape = as_ints(*x, where);
    GraphTensor fill;
    fill.values = {0.0};
    if (const GraphAttribute* a = n.attr("value")) fill = a->t;
    if (fill.numel() != 1) bad(where, "ConstantOfShape value is not one element");
    GraphTensor out = make(fill.kind, shape, where);
    for (int64_t i = 0; i < out.numel(); ++i) put(out, i, get(fill, 0));
    return out;
  }
  if (op == "Range") {
    for (int k = 0; k < 3; ++k)
      if (in[k]->numel() != 1) bad(where, "Range takes scalars");
    const double start = get(*in[0], 0), limit = get(*in[1], 0), delta = get(*in[2], 0);
    if (delta == 0 || !std::isfinite(start) || !std::isfinite(limit) || !std::isfinite(delta))
      bad(where, "Range with a zero or non-finite step");
    const double count = std::max(std::ceil((limit - start) / delta), 0.0);
    if (count > double(kMaxFoldedElements)) bad(where, "Range is too long to fold");
    GraphTensor out = make(k0, {int64_t(count)}, where);
    for (int64_t i = 0; i < out.numel(); ++i) put(out, i, start + double(i) * delta);
    return out;
  }
  bad(where, "operator '" + n.op + "' cannot be folded");
}

}  // namespace hspec::onnx_import
