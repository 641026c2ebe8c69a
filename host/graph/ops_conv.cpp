// Conv steps (2-D, G channel groups) by im2col: cols [CK, n, P] of the input (CK = C kh kw,
// P = out_h out_w; group g owns rows [g CKg, (g+1) CKg)), y' [O, n P] = W [O, CKg] cols per
// group, then [O, n, P] -> [n, O, P]. Bilinear in (x, W) like Linear: with one group the k
// parameter tangents stack into one [k O, CK] matrix (one GEMM for all directions); input
// tangents are im2col'ed as [k, CK, n P] and multiplied as k batched GEMMs per group.
#include "ops.hpp"

namespace hspec::graph_ops {

namespace {
struct ConvDims {
  int64_t O, CK, P, G, Og, CKg;
  int64_t w_group() const { return Og * CKg; }  // weight elements per group
  int64_t w_size() const { return O * CKg; }
};
ConvDims conv_dims(const PlanStep& s) {
  const WindowGeom& g = s.geom;
  const int64_t G = s.conv_groups, CK = g.channels * g.kh * g.kw;
  return {s.out_channels, CK, g.out_plane(), G, s.out_channels / G, CK / G};
}
}  // namespace

template <class T>
void conv_forward(Pass<T>& p, const PlanStep& s, size_t) {
  const ConvDims d = conv_dims(s);
  const int64_t nP = p.n * d.P;
  T* cols = p.scratch(0, d.CK * nP);
  T* t = p.scratch(1, d.O * nP);
  p.cx.im2col(p.val[s.in[0]], cols, s.geom, 1, p.n);
  // The groups as one batched GEMM: every operand advances by a fixed stride per group.
  p.cx.gemm_batched(false, false, d.Og, nP, d.CKg, T(1), p.val[s.in[1]], d.CKg, d.w_group(), cols,
                    nP, d.CKg * nP, T(0), t, nP, d.Og * nP, d.G);
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
    for (int64_t g = 0; g < d.G; ++g)
      p.cx.gemm_batched(true, false, d.CKg, nP, d.Og, T(1), p.val[w] + g * d.w_group(), d.CKg, 0,
                        gy + g * d.Og * nP, nP, d.O * nP, T(0), gcols + g * d.CKg * nP, nP,
                        d.CK * nP, reps);
    p.cx.col2im(gcols, adj[x], s.geom, reps, p.n);
  }
  if (p.diff(w)) {
    T* cols = p.scratch(0, d.CK * nP);
    p.cx.im2col(p.val[x], cols, s.geom, 1, p.n);
    for (int64_t g = 0; g < d.G; ++g)
      p.cx.gemm_batched(false, true, d.Og, d.CKg, nP, T(1), gy + g * d.Og * nP, nP, d.O * nP,
                        cols + g * d.CKg * nP, nP, 0, T(1), adj[w] + g * d.w_group(), d.CKg,
                        d.w_size(), reps);
  }
}

template <class T>
void conv_rforward(Pass<T>& p, const PlanStep& s, size_t) {
  const ConvDims d = conv_dims(s);
  const int x = s.in[0], w = s.in[1];
  const int64_t nP = p.n * d.P;
  T* t = p.scratch(1, p.k * d.O * nP);  // [k, O, n, P]
  bool written = false;
  if (p.diff(w)) {
    T* cols = p.scratch(0, d.CK * nP);
    p.cx.im2col(p.val[x], cols, s.geom, 1, p.n);
    if (d.G == 1)  // [k O, CK] stacked tangents times the primal columns: one GEMM
      p.cx.gemm_batched(false, false, p.k * d.O, nP, d.CK, T(1), p.tan[w], d.CK, 0, cols, nP, 0,
                        T(0), t, nP, 0, 1);
    else
      for (int64_t g = 0; g < d.G; ++g)
        p.cx.gemm_batched(false, false, d.Og, nP, d.CKg, T(1), p.tan[w] + g * d.w_group(), d.CKg,
                          d.w_size(), cols + g * d.CKg * nP, nP, 0, T(0), t + g * d.Og * nP, nP,
                          d.O * nP, p.k);
    written = true;
  }
  if (p.diff(x)) {
    T* rcols = p.scratch(2, p.k * d.CK * nP);
    p.cx.im2col(p.tan[x], rcols, s.geom, p.k, p.n);
    for (int64_t g = 0; g < d.G; ++g)
      p.cx.gemm_batched(false, false, d.Og, nP, d.CKg, T(1), p.val[w] + g * d.w_group(), d.CKg, 0,
                        rcols + g * d.CKg * nP, nP, d.CK * nP, written ? T(1) : T(0),
                        t + g * d.Og * nP, nP, d.O * nP, p.k);
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
  for (int64_t g = 0; g < d.G; ++g)
    p.cx.gemm_batched(false, true, d.Og, d.CKg, nP, T(1), gy + g * d.Og * nP, nP, 0,
                      rcols + g * d.CKg * nP, nP, d.CK * nP, T(1), p.radj[w] + g * d.w_group(),
                      d.CKg, d.w_size(), p.k);
  // R g_x_j += col2im(V_j^T g_y'), reusing the column scratch (all groups read it above)
  for (int64_t g = 0; g < d.G; ++g)
    p.cx.gemm_batched(true, false, d.CKg, nP, d.Og, T(1), p.tan[w] + g * d.w_group(), d.CKg,
                      d.w_size(), gy + g * d.Og * nP, nP, 0, T(0), rcols + g * d.CKg * nP, nP,
                      d.CK * nP, p.k);
  p.cx.col2im(rcols, p.radj[x], s.geom, p.k, p.n);
}

HSPEC_OP_INSTANTIATE(conv, float)
HSPEC_OP_INSTANTIATE(conv, double)

}  // namespace hspec::graph_ops
