// Softmax over one axis, y = exp(x) / sum exp(x). With <a, b> the sum over the axis:
// R y = y (Rx - <y, Rx>), g_x += y (g_y - <g_y, y>), and the second-order part (the
// derivative of that backward rule along Ry with g_y fixed) R g_x += Ry (g_y - <g_y, y>)
// - y <g_y, Ry>. Everything but the forward is broadcast products and sums over the axis.
#include "ops.hpp"

namespace hspec::graph_ops {

namespace {
// Runtime shapes for `reps` blocks: the full one and the one summed over the axis.
struct SoftmaxShapes {
  Shape full, summed;
};
template <class T>
SoftmaxShapes shapes(const Pass<T>& p, const PlanStep& s, int64_t reps) {
  return {p.runtime(s.a_shape, s.out, reps), p.runtime(s.out_shape, s.out, reps)};
}

// out (+)= alpha * y * (g - <g, y>) for reps blocks of g; scratch slots 1-3.
template <class T>
void times_centered(Pass<T>& p, const PlanStep& s, const T* y, const T* g, int64_t reps, T* out,
                    T alpha) {
  const SoftmaxShapes one = shapes(p, s, 1), r = shapes(p, s, reps);
  T* t = p.scratch(1, shape_numel(r.full));
  p.cx.binary(BinaryKind::Mul, g, r.full, y, one.full, t, r.full, T(1), false);
  T* sum = p.scratch(2, shape_numel(r.summed));
  p.cx.reduce_to(t, r.full, sum, r.summed, T(1), false);
  T* u = p.scratch(3, shape_numel(r.full));
  p.cx.binary(BinaryKind::Sub, g, r.full, sum, r.summed, u, r.full, T(1), false);
  p.cx.binary(BinaryKind::Mul, y, one.full, u, r.full, out, r.full, alpha, true);
}
}  // namespace

template <class T>
void softmax_forward(Pass<T>& p, const PlanStep& s, size_t) {
  const Shape x = p.runtime(s.a_shape, s.in[0], 1);
  int64_t outer = 1, inner = 1;
  const size_t ax = size_t(s.axis + 1);
  for (size_t i = 0; i < x.size(); ++i) (i < ax ? outer : inner) *= i == ax ? 1 : x[i];
  p.cx.softmax(p.val[s.in[0]], p.val[s.out], outer, x[ax], inner);
}

template <class T>
void softmax_backward(Pass<T>& p, const PlanStep& s, size_t, int64_t reps,
                      const std::vector<T*>& adj) {
  times_centered(p, s, p.val[s.out], adj[s.out], reps, adj[s.in[0]], T(1));
}

template <class T>
void softmax_rforward(Pass<T>& p, const PlanStep& s, size_t) {
  // R y = y (Rx - <y, Rx>): the backward rule's form with Rx in place of g_y.
  p.cx.fill(p.tan[s.out], p.k * p.count(s.out), T(0));
  times_centered(p, s, p.val[s.out], p.tan[s.in[0]], p.k, p.tan[s.out], T(1));
}

template <class T>
void softmax_second_order(Pass<T>& p, const PlanStep& s, size_t) {
  const SoftmaxShapes one = shapes(p, s, 1), r = shapes(p, s, p.k);
  const T *y = p.val[s.out], *gy = p.adj[s.out], *ry = p.tan[s.out];
  T* rgx = p.radj[s.in[0]];
  // Ry (g_y - <g_y, y>)
  T* t = p.scratch(1, shape_numel(one.full));
  p.cx.binary(BinaryKind::Mul, gy, one.full, y, one.full, t, one.full, T(1), false);
  T* sum = p.scratch(2, shape_numel(one.summed));
  p.cx.reduce_to(t, one.full, sum, one.summed, T(1), false);
  T* u = p.scratch(3, shape_numel(one.full));
  p.cx.binary(BinaryKind::Sub, gy, one.full, sum, one.summed, u, one.full, T(1), false);
  p.cx.binary(BinaryKind::Mul, ry, r.full, u, one.full, rgx, r.full, T(1), true);
  // - y <g_y, Ry>
  T* w = p.scratch(1, shape_numel(r.full));
  p.cx.binary(BinaryKind::Mul, gy, one.full, ry, r.full, w, r.full, T(1), false);
  T* rs = p.scratch(2, shape_numel(r.summed));
  p.cx.reduce_to(w, r.full, rs, r.summed, T(1), false);
  p.cx.binary(BinaryKind::Mul, y, one.full, rs, r.summed, rgx, r.full, T(-1), true);
}

HSPEC_OP_INSTANTIATE(softmax, float)
HSPEC_OP_INSTANTIATE(softmax, double)

}  // namespace hspec::graph_ops
