// Linear steps (Gemm, MatMul): y[R, out] = alpha x[R, in] op(w), R = samples x rows per sample.
// Bilinear in (x, w), so R y = alpha (Rx op(w) + x op(V)) and the second-order part of the
// R-backward is R g_x += alpha g_y op(V)^T, R g_w += alpha (x-side) g_y with Rx.
// With w stored [out, in] (Gemm transB=1), the k parameter tangents stack into one
// [k out, in] matrix, so their term is one GEMM for all directions. A bias b (third input)
// enters linearly: R y += Rb on every row, g_b += the rows' sum of g_y, no second-order term.
#include "ops.hpp"

namespace hspec::graph_ops {

namespace {
struct Dims {
  int64_t R, in, out, ldw, wsize;
};
template <class T>
Dims dims(const Pass<T>& p, const PlanStep& s) {
  return {p.n * s.rows_per_sample, s.in_dim, s.out_dim, s.trans_w ? s.in_dim : s.out_dim,
          s.in_dim * s.out_dim};
}
// Whether out is wide enough for one GEMM per direction to run as fast as one GEMM over the
// k stacked directions; it then saves the stacked GEMM's reordering pass over [k, R, out].
bool wide(const Dims& d) {
  return d.out >= 64;
}
// The bias input (-1 when the step has none).
int bias_of(const PlanStep& s) {
  return s.in.size() > 2 ? s.in[2] : -1;
}
// y [reps, R, out] (+)= b [reps, 1, out] (b shared by the reps when b_reps is 1).
template <class T>
void add_bias(Pass<T>& p, const Dims& d, const T* b, int64_t b_reps, T* y, int64_t reps,
              bool accumulate) {
  p.cx.broadcast_to(b, {b_reps, 1, d.out}, y, {reps, d.R, d.out}, T(1), accumulate);
}
}  // namespace

template <class T>
void linear_forward(Pass<T>& p, const PlanStep& s, size_t) {
  const Dims d = dims(p, s);
  p.cx.gemm_batched(false, s.trans_w, d.R, d.out, d.in, T(s.alpha), p.val[s.in[0]], d.in, 0,
                    p.val[s.in[1]], d.ldw, 0, T(0), p.val[s.out], d.out, 0, 1);
  const int b = bias_of(s);
  if (b >= 0) add_bias(p, d, p.val[b], 1, p.val[s.out], 1, true);
}

template <class T>
void linear_backward(Pass<T>& p, const PlanStep& s, size_t, int64_t reps,
                     const std::vector<T*>& adj) {
  const Dims d = dims(p, s);
  const int x = s.in[0], w = s.in[1];
  const T* gy = adj[s.out];
  const T alpha = T(s.alpha);
  const int b = bias_of(s);
  if (b >= 0 && p.diff(b))  // g_b [reps, 1, out] += the rows' sum of g_y [reps, R, out]
    p.cx.reduce_to(gy, {reps, d.R, d.out}, adj[b], {reps, 1, d.out}, T(1), true);
  if (p.diff(x))  // g_x [reps R, in] += alpha g_y op(w)^T (= on the first write)
    p.cx.gemm_batched(false, !s.trans_w, reps * d.R, d.in, d.out, alpha, gy, d.out, 0, p.val[w],
                      d.ldw, 0, p.first_write(adj, x) ? T(0) : T(1), adj[x], d.in, 0, 1);
  if (!p.diff(w)) return;
  if (s.trans_w && reps > 1 && !wide(d)) {
    // [reps, R, out] -> [R, reps out]; then g_w stacked [reps out, in] = g_y'^T x.
    T* t = p.scratch(0, reps * d.R * d.out);
    p.cx.swap_axes12(gy, t, 1, reps, d.R, d.out, false);
    p.cx.gemm_batched(true, false, reps * d.out, d.in, d.R, alpha, t, reps * d.out, 0, p.val[x],
                      d.in, 0, T(1), adj[w], d.in, 0, 1);
  } else if (s.trans_w) {  // g_w_j [out, in] += alpha g_y_j^T x
    p.cx.gemm_batched(true, false, d.out, d.in, d.R, alpha, gy, d.out, d.R * d.out, p.val[x], d.in,
                      0, T(1), adj[w], d.in, d.wsize, reps);
  } else {  // g_w_j [in, out] += alpha x^T g_y_j
    p.cx.gemm_batched(true, false, d.in, d.out, d.R, alpha, p.val[x], d.in, 0, gy, d.out,
                      d.R * d.out, T(1), adj[w], d.out, d.wsize, reps);
  }
}

namespace {
// R y of the product alone: alpha (Rx op(w) + x op(V)).
template <class T>
void linear_rforward_product(Pass<T>& p, const PlanStep& s, size_t) {
  const Dims d = dims(p, s);
  const int x = s.in[0], w = s.in[1];
  T* ry = p.tan[s.out];
  const T alpha = T(s.alpha);
  bool written = false;
  if (p.diff(x)) {  // all k directions in one GEMM: [k R, in] op(w)
    p.cx.gemm_batched(false, s.trans_w, p.k * d.R, d.out, d.in, alpha, p.tan[x], d.in, 0, p.val[w],
                      d.ldw, 0, T(0), ry, d.out, 0, 1);
    written = true;
  }
  if (!p.diff(w)) return;
  if (s.trans_w && wide(d)) {  // Ry_j [R, out] += alpha x V_j^T
    p.cx.gemm_batched(false, true, d.R, d.out, d.in, alpha, p.val[x], d.in, 0, p.tan[w], d.in,
                      d.wsize, written ? T(1) : T(0), ry, d.out, d.R * d.out, p.k);
  } else if (s.trans_w) {
    // x [R, in] times the stacked tangents^T [in, k out]: one GEMM, then [R, k, out] ->
    // [k, R, out].
    T* t = p.scratch(0, p.k * d.R * d.out);
    p.cx.gemm_batched(false, true, d.R, p.k * d.out, d.in, alpha, p.val[x], d.in, 0, p.tan[w], d.in,
                      0, T(0), t, p.k * d.out, 0, 1);
    p.cx.swap_axes12(t, ry, 1, d.R, p.k, d.out, written);
  } else {
    p.cx.gemm_batched(false, false, d.R, d.out, d.in, alpha, p.val[x], d.in, 0, p.tan[w], d.out,
                      d.wsize, written ? T(1) : T(0), ry, d.out, d.R * d.out, p.k);
  }
}
}  // namespace

template <class T>
void linear_rforward(Pass<T>& p, const PlanStep& s, size_t i) {
  linear_rforward_product(p, s, i);
  const int b = bias_of(s);
  if (b < 0 || !p.diff(b)) return;
  const bool written = p.diff(s.in[0]) || p.diff(s.in[1]);
  add_bias(p, dims(p, s), p.tan[b], p.k, p.tan[s.out], p.k, written);
}

template <class T>
void linear_second_order(Pass<T>& p, const PlanStep& s, size_t) {
  const int x = s.in[0], w = s.in[1];
  if (!p.diff(x) || !p.diff(w)) return;
  const Dims d = dims(p, s);
  const T* gy = p.adj[s.out];
  const T alpha = T(s.alpha);
  // R g_x_j [R, in] += alpha g_y op(V_j)^T
  p.cx.gemm_batched(false, !s.trans_w, d.R, d.in, d.out, alpha, gy, d.out, 0, p.tan[w], d.ldw,
                    d.wsize, T(1), p.radj[x], d.in, d.R * d.in, p.k);
  if (s.trans_w)  // R g_w_j [out, in] += alpha g_y^T Rx_j
    p.cx.gemm_batched(true, false, d.out, d.in, d.R, alpha, gy, d.out, 0, p.tan[x], d.in,
                      d.R * d.in, T(1), p.radj[w], d.in, d.wsize, p.k);
  else  // R g_w_j [in, out] += alpha Rx_j^T g_y
    p.cx.gemm_batched(true, false, d.in, d.out, d.R, alpha, p.tan[x], d.in, d.R * d.in, gy, d.out,
                      0, T(1), p.radj[w], d.out, d.wsize, p.k);
}

HSPEC_OP_INSTANTIATE(linear, float)
HSPEC_OP_INSTANTIATE(linear, double)

}  // namespace hspec::graph_ops
