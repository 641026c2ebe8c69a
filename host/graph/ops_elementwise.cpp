// Elementwise steps. Unary y = f(x): R y = f'(x) Rx, g_x += f'(x) g_y, and the second-order
// part R g_x += f''(x) g_y Rx, with f'(x) and f''(x) g_y cached by the primal pass
// (cache_unary_derivatives). Binary with numpy broadcasting: Add/Sub are linear, Div is
// by a constant, Mul of two differentiable values is bilinear: R g_a += reduce(g_y Rb).
// Broadcast adjoints reduce over the broadcast axes (reduce_to).
#include "ops.hpp"

namespace hspec::graph_ops {

template <class T>
void unary_forward(Pass<T>& p, const PlanStep& s, size_t) {
  p.cx.unary(s.unary, p.val[s.in[0]], p.val[s.out], p.count(s.out));
}

namespace {
// out[j n + i] (+)= d_i r[j n + i] for j < reps: a cached derivative applied to every direction.
template <class T>
void scale_by_cached(Pass<T>& p, const T* d, const T* r, T* out, int64_t n, int64_t reps,
                     bool accumulate) {
  p.cx.binary(BinaryKind::Mul, d, {1, n}, r, {reps, n}, out, {reps, n}, T(1), accumulate);
}
// Whether the tangent pass's backward adds the Hessian's second-order term too (its cached
// f''(x) g_y is there), saving a pass over the [k, n, ...] adjoint.
template <class T>
bool fused_second_order(const Pass<T>& p, size_t i, const std::vector<T*>& adj) {
  return &adj == &p.radj && i < p.deriv2.size() && p.deriv2[i] != nullptr;
}
}  // namespace

template <class T>
void unary_backward(Pass<T>& p, const PlanStep& s, size_t i, int64_t reps,
                    const std::vector<T*>& adj) {
  const int x = s.in[0];
  const bool accumulate = !p.first_write(adj, x);
  if (fused_second_order(p, i, adj)) {  // R g_x (+)= f'(x) R g_y + f''(x) g_y Rx, one pass
    p.cx.scaled_sum(p.deriv1[i], adj[s.out], p.deriv2[i], p.tan[x], adj[x], p.count(x), reps,
                    accumulate);
    return;
  }
  scale_by_cached(p, p.deriv1.at(i), adj[s.out], adj[x], p.count(x), reps, accumulate);
}

template <class T>
void unary_rforward(Pass<T>& p, const PlanStep& s, size_t i) {
  const int x = s.in[0];
  scale_by_cached(p, p.deriv1.at(i), p.tan[x], p.tan[s.out], p.count(x), p.k, false);
}

template <class T>
void unary_second_order(Pass<T>& p, const PlanStep& s, size_t i) {
  if (fused_second_order(p, i, p.radj)) return;  // added by unary_backward
  const int x = s.in[0];
  scale_by_cached(p, p.deriv2.at(i), p.tan[x], p.radj[x], p.count(x), p.k, true);
}

template <class T>
void cache_unary_derivatives(Pass<T>& p, const PlanStep& s, int order, T* out) {
  const int x = s.in[0];
  const int64_t n = p.count(x);
  if (order == 2) {  // f''(x) g_y
    p.cx.unary_derivative(s.unary, 2, p.val[x], nullptr, p.adj[s.out], out, n, 1, false);
    return;
  }
  T* ones = p.scratch(0, n);
  p.cx.fill(ones, n, T(1));
  p.cx.unary_derivative(s.unary, 1, p.val[x], nullptr, ones, out, n, 1, false);
}

template <class T>
void binary_forward(Pass<T>& p, const PlanStep& s, size_t) {
  const int a = s.in[0], b = s.in[1];
  p.cx.binary(s.binary, p.val[a], p.runtime(s.a_shape, a, 1), p.val[b], p.runtime(s.b_shape, b, 1),
              p.val[s.out], p.runtime(s.out_shape, s.out, 1), T(1), false);
}

namespace {
// into (+)= alpha * reduce(src * factor) to the shape of `into`; src and factor broadcast to so.
template <class T>
void product_adjoint(Pass<T>& p, const T* src, const Shape& ss, const T* factor, const Shape& sf,
                     BinaryKind op, T* into, const Shape& si, const Shape& so, T alpha,
                     bool accumulate = true) {
  if (si == so) {
    p.cx.binary(op, src, ss, factor, sf, into, si, alpha, accumulate);
    return;
  }
  T* t = p.scratch(0, shape_numel(so));
  p.cx.binary(op, src, ss, factor, sf, t, so, T(1), false);
  p.cx.reduce_to(t, so, into, si, alpha, accumulate);
}
}  // namespace

template <class T>
void binary_backward(Pass<T>& p, const PlanStep& s, size_t, int64_t reps,
                     const std::vector<T*>& adj) {
  const int b = s.in[1];
  const Shape so = p.runtime(s.out_shape, s.out, reps);
  const T* gy = adj[s.out];
  for (int side = 0; side < 2; ++side) {
    const int v = s.in[size_t(side)];
    if (!p.diff(v)) continue;
    const Shape sv = p.runtime(side ? s.b_shape : s.a_shape, v, reps);
    const int other = s.in[size_t(1 - side)];
    const Shape sother = p.runtime(side ? s.a_shape : s.b_shape, other, 1);
    const bool accumulate = !p.first_write(adj, v);
    switch (s.binary) {
      case BinaryKind::Add:
      case BinaryKind::Sub:
        p.cx.reduce_to(gy, so, adj[v], sv,
                       (side == 1 && s.binary == BinaryKind::Sub) ? T(-1) : T(1), accumulate);
        break;
      case BinaryKind::Mul:
        product_adjoint(p, gy, so, p.val[other], sother, BinaryKind::Mul, adj[v], sv, so, T(1),
                        accumulate);
        break;
      case BinaryKind::Div:  // only a / constant reaches here (the planner refuses the rest)
        product_adjoint(p, gy, so, p.val[b], sother, BinaryKind::Div, adj[v], sv, so, T(1),
                        accumulate);
        break;
    }
  }
}

template <class T>
void binary_rforward(Pass<T>& p, const PlanStep& s, size_t) {
  const int a = s.in[0], b = s.in[1];
  const Shape so = p.runtime(s.out_shape, s.out, p.k);
  T* ry = p.tan[s.out];
  bool written = false;
  for (int side = 0; side < 2; ++side) {
    const int v = s.in[size_t(side)];
    if (!p.diff(v)) continue;
    const Shape sv = p.runtime(side ? s.b_shape : s.a_shape, v, p.k);
    const int other = s.in[size_t(1 - side)];
    const Shape sother = p.runtime(side ? s.a_shape : s.b_shape, other, 1);
    if (s.binary == BinaryKind::Add || s.binary == BinaryKind::Sub)
      p.cx.broadcast_to(p.tan[v], sv, ry, so,
                        (side == 1 && s.binary == BinaryKind::Sub) ? T(-1) : T(1), written);
    else if (s.binary == BinaryKind::Mul)  // R(a b) = Ra b + a Rb
      p.cx.binary(BinaryKind::Mul, p.tan[v], sv, p.val[other], sother, ry, so, T(1), written);
    else
      p.cx.binary(BinaryKind::Div, p.tan[a], sv, p.val[b], sother, ry, so, T(1), written);
    written = true;
  }
}

template <class T>
void binary_second_order(Pass<T>& p, const PlanStep& s, size_t) {
  if (s.binary != BinaryKind::Mul) return;
  const int a = s.in[0], b = s.in[1];
  if (!p.diff(a) || !p.diff(b)) return;
  // R g_a += reduce(g_y Rb), R g_b += reduce(g_y Ra), g_y the primal adjoint.
  const Shape gy_shape = p.runtime(s.out_shape, s.out, 1), so = p.runtime(s.out_shape, s.out, p.k);
  product_adjoint(p, p.tan[b], p.runtime(s.b_shape, b, p.k), p.adj[s.out], gy_shape,
                  BinaryKind::Mul, p.radj[a], p.runtime(s.a_shape, a, p.k), so, T(1));
  product_adjoint(p, p.tan[a], p.runtime(s.a_shape, a, p.k), p.adj[s.out], gy_shape,
                  BinaryKind::Mul, p.radj[b], p.runtime(s.b_shape, b, p.k), so, T(1));
}

HSPEC_OP_INSTANTIATE(unary, float)
HSPEC_OP_INSTANTIATE(unary, double)
template void cache_unary_derivatives<float>(Pass<float>&, const PlanStep&, int, float*);
template void cache_unary_derivatives<double>(Pass<double>&, const PlanStep&, int, double*);
HSPEC_OP_INSTANTIATE(binary, float)
HSPEC_OP_INSTANTIATE(binary, double)

}  // namespace hspec::graph_ops
