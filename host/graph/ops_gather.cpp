// Gather steps: rows picked by index, linear in the gathered value, so R y gathers the
// tangent rows, g_x is the scatter-add of g_y into the picked rows, and there is no
// second-order term. An embedding (gather_ids) indexes one table with the chunk's token
// ids; constant indices pick along one axis of every block of the value (and its k tangents).
#include "ops.hpp"

namespace hspec::graph_ops {

namespace {
struct GatherGeom {
  const int64_t* idx;
  int64_t count, blocks;  // indices per block, blocks per copy of the input
};
template <class T>
GatherGeom geom(const Pass<T>& p, const PlanStep& s, size_t index) {
  if (s.gather_ids) return {p.ids, p.n * s.gather_count, 1};
  const int64_t samples = p.value(s.in[0]).batched() ? p.n : 1;
  return {p.index[index], s.gather_count, samples * s.gather_outer};
}
}  // namespace

template <class T>
void gather_forward(Pass<T>& p, const PlanStep& s, size_t index) {
  const GatherGeom g = geom(p, s, index);
  const int64_t stride = s.gather_ids ? 0 : s.gather_axis * s.gather_inner;
  p.cx.gather_rows(p.val[s.in[0]], stride, g.idx, g.count, s.gather_inner, p.val[s.out], g.blocks,
                   false);
}

template <class T>
void gather_backward(Pass<T>& p, const PlanStep& s, size_t index, int64_t reps,
                     const std::vector<T*>& adj) {
  const int x = s.in[0];
  if (!p.diff(x)) return;
  const GatherGeom g = geom(p, s, index);
  // Each of the reps adjoints of x is one table (embedding) or `blocks` blocks of it.
  p.cx.scatter_add_rows(adj[s.out], g.idx, g.count, s.gather_inner, adj[x],
                        s.gather_axis * s.gather_inner, reps * g.blocks);
}

template <class T>
void gather_rforward(Pass<T>& p, const PlanStep& s, size_t index) {
  const GatherGeom g = geom(p, s, index);
  p.cx.gather_rows(p.tan[s.in[0]], s.gather_axis * s.gather_inner, g.idx, g.count, s.gather_inner,
                   p.tan[s.out], p.k * g.blocks, false);
}

template <class T>
void gather_second_order(Pass<T>&, const PlanStep&, size_t) {}

HSPEC_OP_INSTANTIATE(gather, float)
HSPEC_OP_INSTANTIATE(gather, double)

}  // namespace hspec::graph_ops
