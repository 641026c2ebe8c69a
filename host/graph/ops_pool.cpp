// Pooling and mean steps, all linear in their input once MaxPool's argmax is fixed by the
// primal pass (ties to the first): R-forward is the forward rule on the tangents, the
// backward the adjoint, and there is no second-order part.
#include "hspec/error.hpp"
#include "ops.hpp"

namespace hspec::graph_ops {

template <class T>
void pool_forward(Pass<T>& p, const PlanStep& s, size_t index) {
  const int x = s.in[0];
  switch (s.kind) {
    case StepKind::MaxPool:
      p.cx.maxpool(p.val[x], p.val[s.out], p.argmax[index], s.geom, p.n);
      return;
    case StepKind::AvgPool:
      p.cx.avgpool(p.val[x], p.val[s.out], s.geom, s.count_include_pad, p.n, false);
      return;
    case StepKind::ReduceMean:
      p.cx.reduce_to(p.val[x], p.runtime(s.a_shape, x, 1), p.val[s.out],
                     p.runtime(s.out_shape, s.out, 1), T(1.0 / double(s.reduce_count)), false);
      return;
    default:
      throw Error("pool_forward: not a pooling step");
  }
}

template <class T>
void pool_backward(Pass<T>& p, const PlanStep& s, size_t index, int64_t reps,
                   const std::vector<T*>& adj) {
  const int x = s.in[0];
  switch (s.kind) {
    case StepKind::MaxPool:
      p.cx.maxpool_scatter(adj[s.out], adj[x], p.argmax[index], s.geom, p.n, reps);
      return;
    case StepKind::AvgPool:
      p.cx.avgpool_adjoint(adj[s.out], adj[x], s.geom, s.count_include_pad, reps * p.n);
      return;
    case StepKind::ReduceMean:
      p.cx.broadcast_to(adj[s.out], p.runtime(s.out_shape, s.out, reps), adj[x],
                        p.runtime(s.a_shape, x, reps), T(1.0 / double(s.reduce_count)), true);
      return;
    default:
      throw Error("pool_backward: not a pooling step");
  }
}

template <class T>
void pool_rforward(Pass<T>& p, const PlanStep& s, size_t index) {
  const int x = s.in[0];
  switch (s.kind) {
    case StepKind::MaxPool:
      p.cx.maxpool_gather(p.tan[x], p.tan[s.out], p.argmax[index], s.geom, p.n, p.k);
      return;
    case StepKind::AvgPool:
      p.cx.avgpool(p.tan[x], p.tan[s.out], s.geom, s.count_include_pad, p.k * p.n, false);
      return;
    case StepKind::ReduceMean:
      p.cx.reduce_to(p.tan[x], p.runtime(s.a_shape, x, p.k), p.tan[s.out],
                     p.runtime(s.out_shape, s.out, p.k), T(1.0 / double(s.reduce_count)), false);
      return;
    default:
      throw Error("pool_rforward: not a pooling step");
  }
}

template <class T>
void pool_second_order(Pass<T>&, const PlanStep&, size_t) {}

HSPEC_OP_INSTANTIATE(pool, float)
HSPEC_OP_INSTANTIATE(pool, double)

}  // namespace hspec::graph_ops
