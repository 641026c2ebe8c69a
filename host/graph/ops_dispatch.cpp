// The step-kind dispatch of the operator rules (Alias steps share their input's storage,
// so they have nothing to do in any pass).
#include "ops.hpp"

namespace hspec::graph_ops {

template <class T>
void step_forward(Pass<T>& p, const PlanStep& s, size_t i) {
  switch (s.kind) {
    case StepKind::Linear:
      return linear_forward(p, s, i);
    case StepKind::MatMulData:
      return matmul_forward(p, s, i);
    case StepKind::Conv:
      return conv_forward(p, s, i);
    case StepKind::Unary:
      return unary_forward(p, s, i);
    case StepKind::Binary:
      return binary_forward(p, s, i);
    case StepKind::Softmax:
      return softmax_forward(p, s, i);
    case StepKind::Layout:
      return layout_forward(p, s, i);
    case StepKind::Gather:
      return gather_forward(p, s, i);
    case StepKind::Alias:
      return;
    default:
      return pool_forward(p, s, i);
  }
}
template <class T>
void step_backward(Pass<T>& p, const PlanStep& s, size_t i, int64_t reps,
                   const std::vector<T*>& adj) {
  switch (s.kind) {
    case StepKind::Linear:
      return linear_backward(p, s, i, reps, adj);
    case StepKind::MatMulData:
      return matmul_backward(p, s, i, reps, adj);
    case StepKind::Conv:
      return conv_backward(p, s, i, reps, adj);
    case StepKind::Unary:
      return unary_backward(p, s, i, reps, adj);
    case StepKind::Binary:
      return binary_backward(p, s, i, reps, adj);
    case StepKind::Softmax:
      return softmax_backward(p, s, i, reps, adj);
    case StepKind::Layout:
      return layout_backward(p, s, i, reps, adj);
    case StepKind::Gather:
      return gather_backward(p, s, i, reps, adj);
    case StepKind::Alias:
      return;
    default:
      return pool_backward(p, s, i, reps, adj);
  }
}
template <class T>
void step_rforward(Pass<T>& p, const PlanStep& s, size_t i) {
  switch (s.kind) {
    case StepKind::Linear:
      return linear_rforward(p, s, i);
    case StepKind::MatMulData:
      return matmul_rforward(p, s, i);
    case StepKind::Conv:
      return conv_rforward(p, s, i);
    case StepKind::Unary:
      return unary_rforward(p, s, i);
    case StepKind::Binary:
      return binary_rforward(p, s, i);
    case StepKind::Softmax:
      return softmax_rforward(p, s, i);
    case StepKind::Layout:
      return layout_rforward(p, s, i);
    case StepKind::Gather:
      return gather_rforward(p, s, i);
    case StepKind::Alias:
      return;
    default:
      return pool_rforward(p, s, i);
  }
}
template <class T>
void step_second_order(Pass<T>& p, const PlanStep& s, size_t i) {
  switch (s.kind) {
    case StepKind::Linear:
      return linear_second_order(p, s, i);
    case StepKind::MatMulData:
      return matmul_second_order(p, s, i);
    case StepKind::Conv:
      return conv_second_order(p, s, i);
    case StepKind::Unary:
      return unary_second_order(p, s, i);
    case StepKind::Binary:
      return binary_second_order(p, s, i);
    case StepKind::Softmax:
      return softmax_second_order(p, s, i);
    case StepKind::Gather:
      return gather_second_order(p, s, i);
    default:
      return;
  }
}

#define HSPEC_DISPATCH(T)                                                    \
  template void step_forward<T>(Pass<T>&, const PlanStep&, size_t);          \
  template void step_backward<T>(Pass<T>&, const PlanStep&, size_t, int64_t, \
                                 const std::vector<T*>&);                    \
  template void step_rforward<T>(Pass<T>&, const PlanStep&, size_t);         \
  template void step_second_order<T>(Pass<T>&, const PlanStep&, size_t);
HSPEC_DISPATCH(float)
HSPEC_DISPATCH(double)

}  // namespace hspec::graph_ops
