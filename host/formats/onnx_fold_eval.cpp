// Evaluation of the operators that shape subgraphs use (Shape arithmetic, Concat, Gather,
// Reshape, Slice, Range, Where...) on constant tensors, for folding at load time.
#include <cmath>
#include <functional>

#include "hspec/error.hpp"
#include "onnx_import.hpp"

namespace hspec::onnx_import {
namespace {

using Kind = GraphTensor::Kind;

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw InputError(where + ": " + what);
}

int64_t attr_int(const GraphNode& n, const char* key, int64_t def) {
  const GraphAttribute* a = n.attr(key);
  return a ? a->i : def;
}

double get(const GraphTensor& t, int64_t i) {
  return t.is_float() ? t.values[i] : double(t.ints[i]);
}

GraphTensor make(Kind k, std::vector<int64_t> shape, const std::string& where) {
  GraphTensor t;
  t.kind = k;
  t.shape = std::move(shape);
  const int64_t n = checked_numel(t.shape, where);
  if (n > kMaxFoldedElements) bad(where, "folding would create " + std::to_string(n) + " elements");
  if (k == Kind::Float)
    t.values.resize(n);
  else
    t.ints.resize(n);
  return t;
}

// The node being folded, for the one error put() can raise.
thread_local const std::string* current_where = nullptr;

void put(GraphTensor& t, int64_t i, double v) {
  if (t.is_float()) {
    t.values[i] = v;
    return;
  }
  if (!(v >= -9.2e18 && v <= 9.2e18))  // also NaN: converting it to int64 is undefined
    bad(current_where ? *current_where : std::string("ONNX folding"),
        "an integer result is out of range");
  t.ints[i] = int64_t(v);
}

int64_t norm_axis(int64_t axis, int64_t rank, const std::string& where) {
  if (axis < -rank || axis >= rank) bad(where, "axis " + std::to_string(axis) + " out of range");
  return axis < 0 ? axis + rank : axis;
}

std::vector<int64_t> broadcast(const std::vector<int64_t>& a, const std::vector<int64_t>& b,
                               const std::string& where) {
  std::vector<int64_t> out(std::max(a.size(), b.size()), 1);
  for (size_t i = 0; i < out.size(); ++i) {
    const int64_t da = i < out.size() - a.size() ? 1 : a[i - (out.size() - a.size())];
    const int64_t db = i < out.size() - b.size() ? 1 : b[i - (out.size() - b.size())];
    if (da != db && da != 1 && db != 1) bad(where, "shapes do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Flat index into `in` (broadcast to `out`) of the flat output index i.
int64_t source_index(const std::vector<int64_t>& out, const std::vector<int64_t>& in, int64_t i) {
  int64_t idx = 0, stride = 1;
  for (size_t k = out.size(); k-- > 0;) {
    const int64_t coord = i % out[k];
    i /= out[k];
    const size_t off = out.size() - in.size();
    if (k >= off) {
      const int64_t d = in[k - off];
      if (d != 1) idx += coord * stride;
      stride *= d;
    }
  }
  return idx;
}

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

std::vector<int64_t> axes_of(const GraphNode& n, const std::vector<const GraphTensor*>& in,
                             const std::string& where) {
  if (in.size() > 1 && in[1]) return as_ints(*in[1], where);
  if (const GraphAttribute* a = n.attr("axes")) return a->ints;
  return {};
}

GraphTensor reshape(const GraphTensor& x, const std::vector<int64_t>& target, bool allowzero,
                    const std::string& where) {
  std::vector<int64_t> shape = target;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 && !allowzero) {
      if (i >= x.shape.size()) bad(where, "Reshape copies a dimension the input lacks");
      shape[i] = x.shape[i];
    }
    if (shape[i] == -1) {
      if (infer >= 0) bad(where, "Reshape target has two -1");
      infer = int64_t(i);
    } else if (shape[i] < 0) {
      bad(where, "Reshape target has a negative dimension");
    } else {
      known = checked_numel({known, shape[i]}, where);
    }
  }
  if (infer >= 0) {
    if (known == 0 || x.numel() % known) bad(where, "Reshape target does not fit the input");
    shape[infer] = x.numel() / known;
  }
  if (checked_numel(shape, where) != x.numel()) bad(where, "Reshape changes the element count");
  GraphTensor out = x;
  out.shape = shape;
  return out;
}

GraphTensor slice(const GraphNode& n, const std::vector<const GraphTensor*>& in,
                  const std::string& where) {
  const GraphTensor& x = *in[0];
  const int64_t rank = int64_t(x.shape.size());
  std::vector<int64_t> starts, ends, axes, steps;
  if (in.size() >= 3) {
    starts = as_ints(*in[1], where);
    ends = as_ints(*in[2], where);
    if (in.size() > 3 && in[3]) axes = as_ints(*in[3], where);
    if (in.size() > 4 && in[4]) steps = as_ints(*in[4], where);
  } else {
    if (const GraphAttribute* a = n.attr("starts")) starts = a->ints;
    if (const GraphAttribute* a = n.attr("ends")) ends = a->ints;
    if (const GraphAttribute* a = n.attr("axes")) axes = a->ints;
  }
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(int64_t(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    bad(where, "Slice's starts, ends, axes and steps differ in length");
  std::vector<int64_t> lo(rank, 0), step(rank, 1), shape = x.shape;
  for (size_t k = 0; k < starts.size(); ++k) {
    const int64_t a = norm_axis(axes[k], rank, where), d = x.shape[a], s = steps[k];
    if (s == 0) bad(where, "Slice step 0");
    int64_t b = starts[k], e = ends[k];
    if (b < 0) b += d;
    if (e < 0) e += d;
    if (s > 0) {
      b = std::min(std::max(b, int64_t(0)), d);
      e = std::min(std::max(e, int64_t(0)), d);
      shape[a] = e > b ? (e - b + s - 1) / s : 0;
    } else {
      b = std::min(std::max(b, int64_t(0)), d - 1);
      e = std::min(std::max(e, int64_t(-1)), d - 1);
      shape[a] = b > e ? (b - e - s - 1) / -s : 0;
    }
    lo[a] = b;
    step[a] = s;
  }
  GraphTensor out = make(x.kind, shape, where);
  for (int64_t i = 0; i < out.numel(); ++i) {
    int64_t rem = i, src = 0, stride = 1;
    for (int64_t k = rank; k-- > 0;) {
      const int64_t c = rem % shape[k];
      rem /= shape[k];
      src += (lo[k] + c * step[k]) * stride;
      stride *= x.shape[k];
    }
    put(out, i, get(x, src));
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
         op == "Mul" || op == "Div" || op == "Mod" || op == "CastLike")
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
  if (op == "Reshape")
    return reshape(*x, as_ints(*in[1], where), attr_int(n, "allowzero", 0) != 0, where);
  if (op == "Unsqueeze") {
    std::vector<int64_t> axes = axes_of(n, in, where), shape = x->shape;
    const int64_t r = int64_t(shape.size() + axes.size());
    std::vector<bool> at(r, false);
    for (int64_t a : axes) {
      const int64_t k = norm_axis(a, r, where);
      if (at[k]) bad(where, "Unsqueeze axes repeat");
      at[k] = true;
    }
    std::vector<int64_t> out;
    for (int64_t i = 0, j = 0; i < r; ++i) out.push_back(at[i] ? 1 : shape[j++]);
    GraphTensor t = *x;
    t.shape = out;
    return t;
  }
  if (op == "Squeeze") {
    const std::vector<int64_t> axes = axes_of(n, in, where);
    const int64_t r = int64_t(x->shape.size());
    std::vector<bool> drop(r, false);
    for (int64_t a : axes) drop[norm_axis(a, r, where)] = true;
    std::vector<int64_t> out;
    for (int64_t i = 0; i < r; ++i) {
      if ((drop[i] || axes.empty()) && x->shape[i] == 1) continue;
      if (drop[i]) bad(where, "Squeeze of a dimension that is not 1");
      out.push_back(x->shape[i]);
    }
    GraphTensor t = *x;
    t.shape = out;
    return t;
  }
  if (op == "Concat") {
    const int64_t r = int64_t(x->shape.size());
    const int64_t axis = norm_axis(attr_int(n, "axis", 0), r, where);
    std::vector<int64_t> shape = x->shape;
    shape[axis] = 0;
    for (const GraphTensor* t : in) {
      if (!t || t->shape.size() != x->shape.size()) bad(where, "Concat inputs differ in rank");
      for (int64_t k = 0; k < r; ++k)
        if (k != axis && t->shape[k] != x->shape[k]) bad(where, "Concat inputs differ in shape");
      shape[axis] += t->shape[axis];
    }
    GraphTensor out = make(k0, shape, where);
    int64_t outer = 1, inner = 1;
    for (int64_t k = 0; k < axis; ++k) outer *= shape[k];
    for (int64_t k = axis + 1; k < r; ++k) inner *= shape[k];
    int64_t pos = 0;
    for (int64_t o = 0; o < outer; ++o)
      for (const GraphTensor* t : in)
        for (int64_t i = 0; i < t->shape[axis] * inner; ++i)
          put(out, pos++, get(*t, o * t->shape[axis] * inner + i));
    return out;
  }
  if (op == "Gather") {
    const int64_t r = int64_t(x->shape.size());
    if (r == 0) bad(where, "Gather on a scalar");
    const int64_t axis = norm_axis(attr_int(n, "axis", 0), r, where);
    const std::vector<int64_t> idx = as_ints(*in[1], where);
    std::vector<int64_t> shape(x->shape.begin(), x->shape.begin() + axis);
    shape.insert(shape.end(), in[1]->shape.begin(), in[1]->shape.end());
    shape.insert(shape.end(), x->shape.begin() + axis + 1, x->shape.end());
    GraphTensor out = make(k0, shape, where);
    int64_t outer = 1, inner = 1;
    for (int64_t k = 0; k < axis; ++k) outer *= x->shape[k];
    for (int64_t k = axis + 1; k < r; ++k) inner *= x->shape[k];
    const int64_t d = x->shape[axis];
    int64_t pos = 0;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j : idx) {
        if (j < -d || j >= d) bad(where, "Gather index " + std::to_string(j) + " out of range");
        const int64_t jj = j < 0 ? j + d : j;
        for (int64_t i = 0; i < inner; ++i) put(out, pos++, get(*x, (o * d + jj) * inner + i));
      }
    return out;
  }
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
  if (op == "Expand") {
    const std::vector<int64_t> target = as_ints(*in[1], where);
    for (int64_t d : target)
      if (d < 0) bad(where, "Expand to a negative dimension");
    const std::vector<int64_t> shape = broadcast(x->shape, target, where);
    GraphTensor out = make(k0, shape, where);
    for (int64_t i = 0; i < out.numel(); ++i)
      put(out, i, get(*x, source_index(shape, x->shape, i)));
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
  if (op == "Slice") return slice(n, in, where);
  if (op == "Transpose") {
    const int64_t r = int64_t(x->shape.size());
    std::vector<int64_t> perm;
    if (const GraphAttribute* a = n.attr("perm"))
      perm = a->ints;
    else
      for (int64_t k = r; k-- > 0;) perm.push_back(k);
    if (int64_t(perm.size()) != r) bad(where, "Transpose perm has the wrong length");
    std::vector<int64_t> shape(r);
    std::vector<bool> seen(r, false);
    for (int64_t k = 0; k < r; ++k) {
      const int64_t p = norm_axis(perm[k], r, where);
      if (seen[p]) bad(where, "Transpose perm repeats an axis");
      seen[p] = true;
      perm[k] = p;
      shape[k] = x->shape[p];
    }
    GraphTensor out = make(k0, shape, where);
    std::vector<int64_t> in_stride(r, 1);
    for (int64_t k = r - 1; k > 0; --k) in_stride[k - 1] = in_stride[k] * x->shape[k];
    for (int64_t i = 0; i < out.numel(); ++i) {
      int64_t rem = i, src = 0;
      for (int64_t k = r; k-- > 0;) {
        src += (rem % shape[k]) * in_stride[perm[k]];
        rem /= shape[k];
      }
      put(out, i, get(*x, src));
    }
    return out;
  }
  bad(where, "operator '" + op + "' cannot be folded");
}

}  // namespace hspec::onnx_import
