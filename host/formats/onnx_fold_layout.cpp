// Folding of the data-movement operators of shape subgraphs on constants: Reshape, Squeeze,
// Unsqueeze, Concat, Gather, Slice, Transpose, Expand.
#include "onnx_fold_util.hpp"

namespace hspec::onnx_import {
namespace {

using namespace fold;

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

bool eval_layout_op(const GraphNode& n, const std::vector<const GraphTensor*>& in,
                    const std::string& where, GraphTensor& result) {
  const std::string& op = n.op;
  if (in.empty() || !in[0]) return false;
  const GraphTensor* x = in[0];
  const Kind k0 = x->kind;
  auto done = [&](GraphTensor t) {
    result = std::move(t);
    return true;
  };
  if (op == "Reshape")
    return done(reshape(*x, as_ints(*in[1], where), attr_int(n, "allowzero", 0) != 0, where));
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
    return done(t);
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
    return done(t);
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
    return done(out);
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
    return done(out);
  }
  if (op == "Expand") {
    const std::vector<int64_t> target = as_ints(*in[1], where);
    for (int64_t d : target)
      if (d < 0) bad(where, "Expand to a negative dimension");
    const std::vector<int64_t> shape = broadcast(x->shape, target, where);
    GraphTensor out = make(k0, shape, where);
    for (int64_t i = 0; i < out.numel(); ++i)
      put(out, i, get(*x, source_index(shape, x->shape, i)));
    return done(out);
  }
  if (op == "Slice") return done(slice(n, in, where));
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
    return done(out);
  }
  return false;
}

}  // namespace hspec::onnx_import
