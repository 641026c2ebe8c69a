// The operator rules of the graph engine: for each step kind, forward, vector-Jacobian
// (backward, batched over `reps` blocks of adjoints), R-forward (Jacobian-vector with the
// tangents of every differentiable input, k directions) and the second-order part of the
// R-backward, (R J)^T g_y, which the Gauss-Newton matrix drops. Written against Compute<T>
// only: rules pass pointers and shapes, never index memory.
//
// Layouts: a Data value of a chunk of n samples is [n, per-sample shape]; its tangents and
// their adjoints are [k, n, ...]. A Param or Constant value is its full shape; tangents of
// Param values are [k, shape]. Adjoints accumulate (every rule adds into its inputs').
#pragma once
#include <vector>

#include "hspec/graph/compute.hpp"
#include "hspec/graph/plan.hpp"

namespace hspec::graph_ops {

template <class T>
struct Pass {
  Compute<T>& cx;
  const Plan& plan;
  int64_t n = 0;                        // samples in this chunk
  int64_t k = 0;                        // directions (tangent passes)
  std::vector<T*> val, adj, tan, radj;  // per value id, already resolved through storage
  std::vector<int64_t*> argmax;         // per step index (MaxPool)
  std::vector<const int64_t*> index;    // per step index (Gather with constant indices)
  // Per step index (Unary steps whose output is differentiable), cached by the primal pass:
  // f'(x), and f''(x) g_y with the primal adjoint g_y (Hessian only). Products then multiply
  // instead of re-evaluating transcendental derivatives for every direction.
  std::vector<const T*> deriv1, deriv2;
  const int64_t* ids = nullptr;  // the chunk's token ids [n, per-sample] (integer input)
  std::vector<Buffer<T>>* slots = nullptr;
  // Tangent pass only, per storage id: the tangent adjoint (radj) holds no value yet. Its
  // first writer overwrites it instead of adding to zeros, which saves zeroing every
  // [k, n, ...] buffer per product; rules that cannot overwrite get it zeroed first.
  std::vector<char> radj_unset;

  Pass(Compute<T>& c, const Plan& p) : cx(c), plan(p) {}
  const PlanValue& value(int id) const { return plan.values[size_t(id)]; }
  bool diff(int id) const { return value(id).diff; }
  // Elements of one copy of a value in this chunk (n samples for Data).
  int64_t count(int id) const { return (value(id).batched() ? n : 1) * value(id).numel(); }
  // A step shape (axis 0 = sample axis) at run time for value id, with `reps` blocks.
  Shape runtime(const Shape& step_shape, int id, int64_t reps) const {
    Shape s = step_shape;
    s[0] = value(id).batched() ? n : 1;
    s.insert(s.begin(), reps);
    return s;
  }
  // Whether a rule writing into adj[id] must overwrite (true once, for the first writer of
  // an unset tangent adjoint) rather than accumulate; always false for primal adjoints.
  bool first_write(const std::vector<T*>& adj, int id) {
    if (&adj != &radj || radj_unset.empty()) return false;
    char& unset = radj_unset[size_t(value(id).storage)];
    const bool first = unset != 0;
    unset = 0;
    return first;
  }
  // Scratch memory that persists across passes; distinct slots never overlap.
  T* scratch(size_t slot, int64_t size) {
    if (slots->size() <= slot) slots->resize(slot + 1);
    cx.ensure((*slots)[slot], size);
    return (*slots)[slot].data();
  }
};

// adj: the adjoint pointers to read (at s.out) and accumulate into (at s.in), reps blocks.
#define HSPEC_OP_RULES(Name)                                                      \
  template <class T>                                                              \
  void Name##_forward(Pass<T>& p, const PlanStep& s, size_t index);               \
  template <class T>                                                              \
  void Name##_backward(Pass<T>& p, const PlanStep& s, size_t index, int64_t reps, \
                       const std::vector<T*>& adj);                               \
  template <class T>                                                              \
  void Name##_rforward(Pass<T>& p, const PlanStep& s, size_t index);              \
  template <class T>                                                              \
  void Name##_second_order(Pass<T>& p, const PlanStep& s, size_t index);

HSPEC_OP_RULES(linear)
HSPEC_OP_RULES(matmul)  // MatMulData
HSPEC_OP_RULES(conv)
HSPEC_OP_RULES(unary)
HSPEC_OP_RULES(binary)
HSPEC_OP_RULES(pool)  // MaxPool, AvgPool and ReduceMean
HSPEC_OP_RULES(softmax)
HSPEC_OP_RULES(layout)  // Transpose, Slice, Concat
HSPEC_OP_RULES(gather)
#undef HSPEC_OP_RULES

// A Unary step's cached derivative into `out` (count(x) elements): order 1 is f'(x) (after
// the step's forward), order 2 is f''(x) g_y (after the primal backward has set g_y).
template <class T>
void cache_unary_derivatives(Pass<T>& p, const PlanStep& s, int order, T* out);

#define HSPEC_OP_INSTANTIATE(Name, T)                                          \
  template void Name##_forward<T>(Pass<T>&, const PlanStep&, size_t);          \
  template void Name##_backward<T>(Pass<T>&, const PlanStep&, size_t, int64_t, \
                                   const std::vector<T*>&);                    \
  template void Name##_rforward<T>(Pass<T>&, const PlanStep&, size_t);         \
  template void Name##_second_order<T>(Pass<T>&, const PlanStep&, size_t);

// Dispatch on the step kind (Alias steps share storage, so their rules do nothing).
template <class T>
void step_forward(Pass<T>& p, const PlanStep& s, size_t index);
template <class T>
void step_backward(Pass<T>& p, const PlanStep& s, size_t index, int64_t reps,
                   const std::vector<T*>& adj);
template <class T>
void step_rforward(Pass<T>& p, const PlanStep& s, size_t index);
template <class T>
void step_second_order(Pass<T>& p, const PlanStep& s, size_t index);

}  // namespace hspec::graph_ops
