// Conv steps (2-D, group 1) by im2col: cols [CK, n, P] of the input (CK = C kh kw,
// P = out_h out_w), y' [O, n P] = W [O, CK] cols, then [O, n, P] -> [n, O, P]. Bilinear in
// (x, W) like Linear: the k parameter tangents stack into one [k O, CK] matrix (one GEMM
// for all directions); input tangents are im2col'ed as [k, CK, n P].
#include "ops.hpp"

namespace hspec::graph_ops {

namespace {
struct ConvDims {
  int64_t O, CK, P, in_numel;
};
ConvDims conv_dims(const PlanStep& s) {
  const WindowGeom& g = s.geom;
  return {s.out_channels, g.channels * g.kh * g.kw, g.out_plane(), g.channels * g.height * g.width};
}
}  // namespace

template <class T>
void conv_forward(Pass<T>& p, const PlanStep& s, size_t) {
  const ConvDims d = conv_dims(s);
  const int64_t nP = p.n * d.P;
  T* cols = p.scratch(0, d.CK * nP);
  T* t = p.scratch(1, d.O * nP);
  p.cx.im2col(p.val[s.in[0]], cols, s.geom, 1, p.n);
  p.cx.gemm_batched(false, false, d.O, nP, d.CK, T(1), p.val[s.in[1]], d.CK, 0, cols, nP, 0, T(0),
                    t, nP, 0, 1);
  p.cx.swap_axes12(t, p.val[s.out], 1, d.O, p.n, d.P, false);
}

template <class T>
void conv_backward(Pass<T>& p, const PlanStep& s, size_t, int64_t reps,
                   const std::vector<T*>& adj) {
  const ConvDims d = conv_dims(s);
  const int x = s.in[0], w = s.in[1];
  const int64_t nP = p.n * d.P;
  T* gy = p.scratch(1, reps * d.O * nP);  // [reps, O, n, P]
  p.cx.swap_axes12(adj[s.out], gy, reps, p.n, d.O, d.P, false);
  if (p.diff(x)) {
    T* gcols = p.scratch(2, reps * d.CK * nP);
    p.cx.gemm_batched(true, false, d.CK, nP, d.O, T(1), p.val[w], d.CK, 0, gy, nP, d.O * nP, T(0),
                      gcols, nP, d.CK * nP, reps);
    p.cx.col2im(gcols, adj[x], s.geom, reps, p.n);
  }
  if (p.diff(w)) {
    T* cols = p.scratch(0, d.CK * nP);
    p.cx.im2col(p.val[x], cols, s.geom, 1, p.n);
    p.cx.gemm_batched(false, true, d.O, d.CK, nP, T(1), gy, nP, d.O * nP, cols, nP, 0, T(1), adj[w],
                      d.CK, d.O * d.CK, reps);
  }
}

template <class T>
void conv_rforward(Pass<T>& p, const PlanStep& s, size_t) {
  const ConvDims d = conv_dims(s);
  const int x = s.in[0], w = s.in[1];
  const int64_t nP = p.n * d.P;
  T* t = p.scratch(1, p.k * d.O * nP);  // [k, O, n, P]
  bool written = false;
  if (p.diff(w)) {  // [k O, CK] stacked tangents times the primal columns: one GEMM
    T* cols = p.scratch(0, d.CK * nP);
    p.cx.im2col(p.val[x], cols, s.geom, 1, p.n);
    p.cx.gemm_batched(false, false, p.k * d.O, nP, d.CK, T(1), p.tan[w], d.CK, 0, cols, nP, 0, T(0),
                      t, nP, 0, 1);
    written = true;
  }
  if (p.diff(x)) {
    T* rcols = p.scratch(2, p.k * d.CK * nP);
    p.cx.im2col(p.tan[x], rcols, s.geom, p.k, p.n);
    p.cx.gemm_batched(false, false, d.O, nP, d.CK, T(1), p.val[w], d.CK, 0, rcols, nP, d.CK * nP,
                      written ? T(1) : T(0), t, nP, d.O * nP, p.k);
  }
  p.cx.swap_axes12(t, p.tan[s.out], p.k, d.O, p.n, d.P, false);
}

template <class T>
void conv_second_order(Pass<T>& p, const PlanStep& s, size_t) {
  const int x = s.in[0], w = s.in[1];
  if (!p.diff(x) || !p.diff(w)) return;
  const ConvDims d = conv_dims(s);
  const int64_t nP = p.n * d.P;
  T* gy = p.scratch(1, d.O * nP);  // primal adjoint as [O, n, P]
  p.cx.swap_axes12(p.adj[s.out], gy, 1, p.n, d.O, d.P, false);
  // R g_w_j += g_y' im2col(Rx_j)^T
  T* rcols = p.scratch(2, p.k * d.CK * nP);
  p.cx.im2col(p.tan[x], rcols, s.geom, p.k, p.n);
  p.cx.gemm_batched(false, true, d.O, d.CK, nP, T(1), gy, nP, 0, rcols, nP, d.CK * nP, T(1),
                    p.radj[w], d.CK, d.O * d.CK, p.k);
  // R g_x_j += col2im(V_j^T g_y'), reusing the column scratch
  p.cx.gemm_batched(true, false, d.CK, nP, d.O, T(1), p.tan[w], d.CK, d.O * d.CK, gy, nP, 0, T(0),
                    rcols, nP, d.CK * nP, p.k);
  p.cx.col2im(rcols, p.radj[x], s.geom, p.k, p.n);
}

HSPEC_OP_INSTANTIATE(conv, float)
HSPEC_OP_INSTANTIATE(conv, double)

}  // namespace hspec::graph_ops
