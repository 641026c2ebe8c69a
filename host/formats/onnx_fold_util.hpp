// Helpers shared by the constant-folding evaluators (onnx_fold_eval.cpp, onnx_fold_layout.cpp):
// element access across kinds, bounded allocation, axes and broadcasting. Internal.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "hspec/error.hpp"
#include "onnx_import.hpp"

namespace hspec::onnx_import::fold {

using Kind = GraphTensor::Kind;

[[noreturn]] inline void bad(const std::string& where, const std::string& what) {
  throw InputError(where + ": " + what);
}

inline int64_t attr_int(const GraphNode& n, const char* key, int64_t def) {
  const GraphAttribute* a = n.attr(key);
  return a ? a->i : def;
}

inline double get(const GraphTensor& t, int64_t i) {
  return t.is_float() ? t.values[i] : double(t.ints[i]);
}

inline GraphTensor make(Kind k, std::vector<int64_t> shape, const std::string& where) {
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
inline thread_local const std::string* current_where = nullptr;

inline void put(GraphTensor& t, int64_t i, double v) {
  if (t.is_float()) {
    t.values[i] = v;
    return;
  }
  if (!(v >= -9.2e18 && v <= 9.2e18))  // also NaN: converting it to int64 is undefined
    bad(current_where ? *current_where : std::string("ONNX folding"),
        "an integer result is out of range");
  t.ints[i] = int64_t(v);
}

inline int64_t norm_axis(int64_t axis, int64_t rank, const std::string& where) {
  if (axis < -rank || axis >= rank) bad(where, "axis " + std::to_string(axis) + " out of range");
  return axis < 0 ? axis + rank : axis;
}

inline std::vector<int64_t> broadcast(const std::vector<int64_t>& a, const std::vector<int64_t>& b,
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
inline int64_t source_index(const std::vector<int64_t>& out, const std::vector<int64_t>& in,
                            int64_t i) {
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

}  // namespace hspec::onnx_import::fold
