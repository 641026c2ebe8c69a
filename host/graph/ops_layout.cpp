// Layout steps (Transpose, Slice, Concat): linear copies, so the R-forward is the forward
// rule on the tangents, the backward the same copy reversed (accumulating), and there is no
// second-order part. Every one is a strided_copy between step shapes with a direction
// (reps) axis in front; a parameter or constant concatenated to data is broadcast over the
// samples (stride 0), and its adjoint is then reduced over them.
#include "ops.hpp"

namespace hspec::graph_ops {

namespace {
Shape contiguous(const Shape& s) {
  Shape st(s.size(), 1);
  for (size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}

// One copy of a layout step: the box, the input side (pointer offset, strides) and the
// output side, for `reps` blocks; `forward` copies input -> output, else the reverse.
struct Move {
  Shape box, in_strides, out_strides;
  int64_t in_offset = 0, out_offset = 0;
};

template <class T>
Move transpose_move(const Pass<T>& p, const PlanStep& s, int64_t reps) {
  Move m;
  m.box = p.runtime(s.out_shape, s.out, reps);
  m.out_strides = contiguous(m.box);
  const Shape in = contiguous(p.runtime(s.a_shape, s.in[0], reps));
  m.in_strides.push_back(in[0]);
  for (int64_t a : s.perm) m.in_strides.push_back(in[size_t(a + 1)]);
  return m;
}

template <class T>
Move slice_move(const Pass<T>& p, const PlanStep& s, int64_t reps) {
  Move m;
  m.box = p.runtime(s.out_shape, s.out, reps);
  m.out_strides = contiguous(m.box);
  const Shape in = contiguous(p.runtime(s.a_shape, s.in[0], reps));
  m.in_strides = {in[0]};
  for (size_t a = 0; a < s.starts.size(); ++a) {
    m.in_strides.push_back(in[a + 1] * s.steps[a]);
    m.in_offset += in[a + 1] * s.starts[a];
  }
  return m;
}

// Concat input i: its box inside the output (samples broadcast for a non-Data input).
template <class T>
Move concat_move(const Pass<T>& p, const PlanStep& s, size_t i, int64_t reps) {
  Move m;
  const Shape out = p.runtime(s.out_shape, s.out, reps);
  m.out_strides = contiguous(out);
  const Shape in = p.runtime(s.in_shapes[i], s.in[i], reps);
  m.in_strides = contiguous(in);
  m.box = out;
  const size_t ax = size_t(s.axis + 1);
  m.box[ax] = in[ax];
  for (size_t a = 0; a < in.size(); ++a)
    if (in[a] == 1 && m.box[a] != 1) m.in_strides[a] = 0;
  int64_t offset = 0;
  for (size_t j = 0; j < i; ++j) offset += s.in_shapes[j][size_t(s.axis)];
  m.out_offset = offset * m.out_strides[ax];
  return m;
}

template <class T>
void copy_in_to_out(Pass<T>& p, const Move& m, const T* in, T* out) {
  p.cx.strided_copy(in + m.in_offset, m.in_strides, out + m.out_offset, m.out_strides, m.box,
                    false);
}

// into (+)= the output's adjoint gathered back to one input.
template <class T>
void adjoint_out_to_in(Pass<T>& p, const PlanStep& s, size_t i, const Move& m, const T* gy, T* into,
                       int64_t reps) {
  const Shape in = p.runtime(i < s.in_shapes.size() ? s.in_shapes[i] : s.a_shape, s.in[i], reps);
  bool broadcast = false;
  for (int64_t st : m.in_strides) broadcast |= st == 0;
  if (!broadcast) {
    p.cx.strided_copy(gy + m.out_offset, m.out_strides, into + m.in_offset, m.in_strides, m.box,
                      true);
    return;
  }
  T* t = p.scratch(1, shape_numel(m.box));
  const Shape cont = contiguous(m.box);
  p.cx.strided_copy(gy + m.out_offset, m.out_strides, t, cont, m.box, false);
  p.cx.reduce_to(t, m.box, into, in, T(1), true);
}

template <class T>
Move single_move(const Pass<T>& p, const PlanStep& s, int64_t reps) {
  return s.layout == LayoutKind::Transpose ? transpose_move(p, s, reps) : slice_move(p, s, reps);
}
}  // namespace

template <class T>
void layout_forward(Pass<T>& p, const PlanStep& s, size_t) {
  if (s.layout != LayoutKind::Concat) {
    copy_in_to_out(p, single_move(p, s, 1), p.val[s.in[0]], p.val[s.out]);
    return;
  }
  for (size_t i = 0; i < s.in.size(); ++i)
    copy_in_to_out(p, concat_move(p, s, i, 1), p.val[s.in[i]], p.val[s.out]);
}

template <class T>
void layout_backward(Pass<T>& p, const PlanStep& s, size_t, int64_t reps,
                     const std::vector<T*>& adj) {
  if (s.layout != LayoutKind::Concat) {
    adjoint_out_to_in(p, s, 0, single_move(p, s, reps), adj[s.out], adj[s.in[0]], reps);
    return;
  }
  for (size_t i = 0; i < s.in.size(); ++i)
    if (p.diff(s.in[i]))
      adjoint_out_to_in(p, s, i, concat_move(p, s, i, reps), adj[s.out], adj[s.in[i]], reps);
}

template <class T>
void layout_rforward(Pass<T>& p, const PlanStep& s, size_t) {
  if (s.layout != LayoutKind::Concat) {
    copy_in_to_out(p, single_move(p, s, p.k), p.tan[s.in[0]], p.tan[s.out]);
    return;
  }
  bool all = true;
  for (int v : s.in) all &= p.diff(v);
  if (!all) p.cx.fill(p.tan[s.out], p.k * p.count(s.out), T(0));  // constants: no tangent
  for (size_t i = 0; i < s.in.size(); ++i)
    if (p.diff(s.in[i])) copy_in_to_out(p, concat_move(p, s, i, p.k), p.tan[s.in[i]], p.tan[s.out]);
}

template <class T>
void layout_second_order(Pass<T>&, const PlanStep&, size_t) {}

HSPEC_OP_INSTANTIATE(layout, float)
HSPEC_OP_INSTANTIATE(layout, double)

}  // namespace hspec::graph_ops
