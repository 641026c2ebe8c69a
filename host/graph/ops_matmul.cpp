// MatMul of two data-dependent values (per sample and batch index): y = a b with a [M, K],
// b [K, N]. Bilinear: R y = Ra b + a Rb, g_a += g_y b^T, g_b += a^T g_y, and the
// second-order part R g_a += g_y Rb^T, R g_b += Ra^T g_y. The tangent blocks of a and b
// are [k, n, ...] while the primal ones are [n, ...], so each direction is one batched GEMM.
#include "ops.hpp"

namespace hspec::graph_ops {

namespace {
struct MmDims {
  int64_t batch, M, K, N;
  int64_t a, b, y;  // elements of one copy (all n samples)
};
template <class T>
MmDims mm_dims(const Pass<T>& p, const PlanStep& s) {
  const int64_t batch = p.n * s.matmuls_per_sample, M = s.rows_per_sample, K = s.in_dim,
                N = s.out_dim;
  return {batch, M, K, N, batch * M * K, batch * K * N, batch * M * N};
}
}  // namespace

template <class T>
void matmul_forward(Pass<T>& p, const PlanStep& s, size_t) {
  const MmDims d = mm_dims(p, s);
  p.cx.gemm_batched(false, false, d.M, d.N, d.K, T(1), p.val[s.in[0]], d.K, d.M * d.K,
                    p.val[s.in[1]], d.N, d.K * d.N, T(0), p.val[s.out], d.N, d.M * d.N, d.batch);
}

template <class T>
void matmul_backward(Pass<T>& p, const PlanStep& s, size_t, int64_t reps,
                     const std::vector<T*>& adj) {
  const MmDims d = mm_dims(p, s);
  const int a = s.in[0], b = s.in[1];
  for (int64_t r = 0; r < reps; ++r) {
    const T* gy = adj[s.out] + r * d.y;
    if (p.diff(a))  // g_a [M, K] += g_y [M, N] b^T
      p.cx.gemm_batched(false, true, d.M, d.K, d.N, T(1), gy, d.N, d.M * d.N, p.val[b], d.N,
                        d.K * d.N, T(1), adj[a] + r * d.a, d.K, d.M * d.K, d.batch);
    if (p.diff(b))  // g_b [K, N] += a^T g_y
      p.cx.gemm_batched(true, false, d.K, d.N, d.M, T(1), p.val[a], d.K, d.M * d.K, gy, d.N,
                        d.M * d.N, T(1), adj[b] + r * d.b, d.N, d.K * d.N, d.batch);
  }
}

template <class T>
void matmul_rforward(Pass<T>& p, const PlanStep& s, size_t) {
  const MmDims d = mm_dims(p, s);
  const int a = s.in[0], b = s.in[1];
  for (int64_t j = 0; j < p.k; ++j) {
    T* ry = p.tan[s.out] + j * d.y;
    bool written = false;
    if (p.diff(a)) {
      p.cx.gemm_batched(false, false, d.M, d.N, d.K, T(1), p.tan[a] + j * d.a, d.K, d.M * d.K,
                        p.val[b], d.N, d.K * d.N, T(0), ry, d.N, d.M * d.N, d.batch);
      written = true;
    }
    if (p.diff(b))
      p.cx.gemm_batched(false, false, d.M, d.N, d.K, T(1), p.val[a], d.K, d.M * d.K,
                        p.tan[b] + j * d.b, d.N, d.K * d.N, written ? T(1) : T(0), ry, d.N,
                        d.M * d.N, d.batch);
  }
}

template <class T>
void matmul_second_order(Pass<T>& p, const PlanStep& s, size_t) {
  const int a = s.in[0], b = s.in[1];
  if (!p.diff(a) || !p.diff(b)) return;
  const MmDims d = mm_dims(p, s);
  const T* gy = p.adj[s.out];
  for (int64_t j = 0; j < p.k; ++j) {
    // R g_a += g_y Rb^T, R g_b += Ra^T g_y
    p.cx.gemm_batched(false, true, d.M, d.K, d.N, T(1), gy, d.N, d.M * d.N, p.tan[b] + j * d.b, d.N,
                      d.K * d.N, T(1), p.radj[a] + j * d.a, d.K, d.M * d.K, d.batch);
    p.cx.gemm_batched(true, false, d.K, d.N, d.M, T(1), p.tan[a] + j * d.a, d.K, d.M * d.K, gy, d.N,
                      d.M * d.N, T(1), p.radj[b] + j * d.b, d.N, d.K * d.N, d.batch);
  }
}

HSPEC_OP_INSTANTIATE(matmul, float)
HSPEC_OP_INSTANTIATE(matmul, double)

}  // namespace hspec::graph_ops
