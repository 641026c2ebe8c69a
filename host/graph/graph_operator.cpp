// GraphCurvatureOperator: the primal pass (forward, loss, backward) cached per chunk of
// samples once per run, and per apply() the tangent pass: R-forward of all k directions,
// the loss curvature, and the R-backward (vector-Jacobian of the tangent adjoints plus,
// for the Hessian, the second-order terms), whose parameter adjoints are the products.
#include "hspec/graph/graph_operator.hpp"

#include <algorithm>
#include <cmath>

#include "hspec/error.hpp"
#include "ops.hpp"

namespace hspec {

using graph_ops::Pass;

template <class T>
struct GraphCurvatureOperator<T>::Chunk {
  int64_t first = 0, n = 0;
  std::vector<Buffer<T>> val, adj;        // per value id: Data values owning storage
  std::vector<Buffer<int64_t>> argmax;    // per step (MaxPool)
  std::vector<Buffer<T>> deriv1, deriv2;  // per step (Unary): see Pass::deriv1
  Buffer<T> curv;                         // output curvature data
};

// What every pass shares: non-Data values, the tangent buffers, the data and scratch.
template <class T>
struct GraphCurvatureOperator<T>::State {
  std::vector<Buffer<T>> pval, ptan, pradj;  // per value id: Param/Constant owners
  std::vector<Buffer<T>> dtan, dradj;        // per value id: Data owners (tangent pass)
  std::vector<Buffer<T>> gadj;               // per value id: primal adjoints of a Gauss-Newton run
  std::vector<Buffer<T>> slots;              // rule scratch
  Buffer<T> inputs, targets;
  Buffer<int64_t> labels, ids;         // ids: token ids of an integer input
  std::vector<Buffer<int64_t>> index;  // per step: constant Gather indices
};

template <class T>
GraphCurvatureOperator<T>::GraphCurvatureOperator(const Graph& graph, const Dataset& data,
                                                  const GraphOperatorOptions& opt,
                                                  std::unique_ptr<Compute<T>> backend)
    : GraphCurvatureOperator(make_plan(graph), data, opt, std::move(backend)) {}

template <class T>
GraphCurvatureOperator<T>::GraphCurvatureOperator(Plan plan, const Dataset& data,
                                                  const GraphOperatorOptions& opt,
                                                  std::unique_ptr<Compute<T>> backend)
    : plan_(std::move(plan)), opt_(opt), cx_(std::move(backend)), st_(std::make_unique<State>()) {
  if (!cx_) cx_ = make_cpu_compute<T>();
  if (opt_.max_block < 1) throw UsageError("block size must be at least 1");
  if (plan_.num_params == 0) throw InputError(plan_.source + ": the model has no parameters");
  if (!plan_.values[size_t(plan_.output)].diff)
    throw InputError(plan_.source + ": the output does not depend on the parameters");
  check_graph_data_fits(plan_, data, opt_.loss);
  n_ = data.n;
  const size_t V = plan_.values.size();
  State& s = *st_;
  s.pval.resize(V);
  s.ptan.resize(V);
  s.pradj.resize(V);
  s.dtan.resize(V);
  s.dradj.resize(V);
  for (size_t v = 0; v < V; ++v) {
    const PlanValue& pv = plan_.values[v];
    if (pv.batched() || pv.storage != int(v)) continue;
    s.pval[v] = cx_->template alloc<T>(pv.numel());
    if (!pv.host.empty()) {
      const std::vector<T> h(pv.host.begin(), pv.host.end());
      cx_->upload(h.data(), s.pval[v].data(), pv.numel());
    }
  }
  const std::vector<T> in(data.inputs.begin(), data.inputs.end());
  s.inputs = cx_->template alloc<T>(int64_t(in.size()));
  cx_->upload(in.data(), s.inputs.data(), int64_t(in.size()));
  s.ids = cx_->template alloc<int64_t>(int64_t(data.ids.size()));
  cx_->upload_index(data.ids.data(), s.ids.data(), int64_t(data.ids.size()));
  s.index.resize(plan_.steps.size());
  for (size_t i = 0; i < plan_.steps.size(); ++i) {
    const std::vector<int64_t>& idx = plan_.steps[i].gather_index;
    if (idx.empty()) continue;
    s.index[i] = cx_->template alloc<int64_t>(int64_t(idx.size()));
    cx_->upload_index(idx.data(), s.index[i].data(), int64_t(idx.size()));
  }
  positions_ = loss_positions(plan_, opt_.loss);
  s.labels = cx_->template alloc<int64_t>(int64_t(data.labels.size()));
  cx_->upload_index(data.labels.data(), s.labels.data(), int64_t(data.labels.size()));
  const std::vector<T> tg(data.targets.begin(), data.targets.end());
  s.targets = cx_->template alloc<T>(int64_t(tg.size()));
  cx_->upload(tg.data(), s.targets.data(), int64_t(tg.size()));

  const GraphMemory mem =
      graph_memory(plan_, opt_.max_block, sizeof(T), opt_.curvature == Curvature::Hessian);
  if (opt_.chunk > 0) {
    chunk_ = std::min(opt_.chunk, n_);
  } else {
    chunk_ = int64_t(std::max<uint64_t>(
        1, opt_.memory_budget / 4 / std::max<uint64_t>(mem.tangent_per_sample, 1)));
    chunk_ = std::min<int64_t>(std::min<int64_t>(chunk_, 4096), n_);
  }
  cache_all_ = mem.primal_per_sample * uint64_t(n_) <= opt_.memory_budget / 2;
  grad_.assign(size_t(plan_.num_params), 0.0);
  const int64_t nchunks = (n_ + chunk_ - 1) / chunk_;
  if (!cache_all_) chunks_.push_back(std::make_unique<Chunk>());
  for (int64_t c = 0; c < nchunks; ++c) {
    const int64_t first = c * chunk_, count = std::min(chunk_, n_ - first);
    if (cache_all_) chunks_.push_back(std::make_unique<Chunk>());
    primal(first, count, *chunks_.back(), true);
  }
  for (double v : grad_)
    if (!std::isfinite(v)) throw NumericalError("the gradient at the checkpoint is not finite");
  if (!std::isfinite(loss_)) throw NumericalError("the loss at the checkpoint is not finite");
}

template <class T>
GraphCurvatureOperator<T>::~GraphCurvatureOperator() = default;

template <class T>
void GraphCurvatureOperator<T>::primal(int64_t first, int64_t n, Chunk& c, bool accumulate) {
  State& s = *st_;
  const size_t V = plan_.values.size();
  c.first = first;
  c.n = n;
  c.val.resize(V);
  c.argmax.resize(plan_.steps.size());
  // The Hessian's second-order terms read this chunk's primal adjoints, so they are kept
  // with the chunk; the Gauss-Newton matrix needs them only for the gradient (constructor),
  // in shared scratch, and not at all when apply() recomputes a chunk.
  const bool hessian = opt_.curvature == Curvature::Hessian;
  const bool backward = accumulate || hessian;
  std::vector<Buffer<T>>& adj = hessian ? c.adj : s.gadj;
  adj.resize(V);
  const int out_storage = plan_.values[size_t(plan_.output)].storage;
  Pass<T> p(*cx_, plan_);
  p.n = n;
  p.slots = &s.slots;
  p.val.assign(V, nullptr);
  p.adj.assign(V, nullptr);
  for (size_t v = 0; v < V; ++v) {
    const PlanValue& pv = plan_.values[v];
    if (pv.storage != int(v)) continue;
    const int64_t count = (pv.batched() ? n : 1) * pv.numel();
    if (pv.diff && (backward || int(v) == out_storage)) {  // the loss writes its gradient
      cx_->ensure(adj[v], count);
      p.adj[v] = adj[v].data();
      cx_->fill(p.adj[v], count, T(0));
    }
    if (!pv.batched()) {
      p.val[v] = s.pval[v].data();
      continue;
    }
    if (int(v) == plan_.input) {  // token ids are read through p.ids, never as floats
      p.val[v] = pv.is_int ? nullptr : s.inputs.data() + first * pv.numel();
      continue;
    }
    cx_->ensure(c.val[v], count);
    p.val[v] = c.val[v].data();
  }
  for (size_t v = 0; v < V; ++v) {
    p.val[v] = p.val[size_t(plan_.values[v].storage)];
    p.adj[v] = p.adj[size_t(plan_.values[v].storage)];
  }
  p.argmax.assign(plan_.steps.size(), nullptr);
  p.deriv1.assign(plan_.steps.size(), nullptr);
  p.deriv2.assign(plan_.steps.size(), nullptr);
  c.deriv1.resize(plan_.steps.size());
  c.deriv2.resize(plan_.steps.size());
  set_indices(p, first);
  for (size_t i = 0; i < plan_.steps.size(); ++i) {
    const PlanStep& st = plan_.steps[i];
    if (st.kind == StepKind::MaxPool) {
      cx_->ensure(c.argmax[i], n * plan_.values[size_t(st.out)].numel());
      p.argmax[i] = c.argmax[i].data();
    }
    graph_ops::step_forward(p, st, i);
    if (st.kind == StepKind::Unary && plan_.values[size_t(st.out)].diff) {
      cx_->ensure(c.deriv1[i], p.count(st.in[0]));
      graph_ops::cache_unary_derivatives(p, st, 1, c.deriv1[i].data());
      p.deriv1[i] = c.deriv1[i].data();
    }
  }
  const int out = plan_.output;
  cx_->ensure(c.curv, n * plan_.output_dim);
  int64_t correct = 0;
  // Sequence cross-entropy is the mean over all n_ * positions_ tokens: each chunk's rows
  // are its tokens, weighted by the total token count.
  const int64_t rows = n * positions_, total = n_ * positions_;
  const double loss_sum =
      cx_->loss_forward(opt_.loss, p.val[out], rows, plan_.output_dim / positions_,
                        s.labels.data() + (s.labels.size ? first * positions_ : 0),
                        s.targets.data() + (s.targets.size ? first * plan_.output_dim : 0),
                        T(1.0 / double(total)), p.adj[out], c.curv.data(), &correct);
  for (size_t i = plan_.steps.size(); i-- > 0 && backward;)
    if (plan_.values[size_t(plan_.steps[i].out)].diff)
      graph_ops::step_backward(p, plan_.steps[i], i, 1, p.adj);
  if (hessian)
    for (size_t i = 0; i < plan_.steps.size(); ++i) {
      const PlanStep& st = plan_.steps[i];
      if (st.kind != StepKind::Unary || !plan_.values[size_t(st.out)].diff) continue;
      cx_->ensure(c.deriv2[i], p.count(st.in[0]));
      graph_ops::cache_unary_derivatives(p, st, 2, c.deriv2[i].data());
    }
  if (!accumulate) return;
  loss_ += loss_sum / double(total);
  correct_ += correct;
  std::vector<T> host;
  for (size_t j = 0; j < plan_.params.size(); ++j) {
    const int v = plan_.params[j];
    const int64_t m = plan_.values[size_t(v)].numel();
    host.resize(size_t(m));
    cx_->download(p.adj[v], host.data(), m);
    for (int64_t i = 0; i < m; ++i)
      grad_[size_t(plan_.param_offset[j] + i)] += double(host[size_t(i)]);
  }
}

template <class T>
void GraphCurvatureOperator<T>::set_indices(graph_ops::Pass<T>& p, int64_t first) const {
  const State& s = *st_;
  const PlanValue& in = plan_.values[size_t(plan_.input)];
  p.ids = in.is_int ? s.ids.data() + first * in.numel() : nullptr;
  p.index.assign(plan_.steps.size(), nullptr);
  for (size_t i = 0; i < plan_.steps.size(); ++i) p.index[i] = s.index[i].data();
}

template <class T>
void GraphCurvatureOperator<T>::apply(BlockView<const T> X, BlockView<T> Y) {
  if (X.rows != plan_.num_params || Y.rows != plan_.num_params || X.cols != Y.cols)
    throw Error("GraphCurvatureOperator::apply: block shape mismatch");
  if (X.cols > opt_.max_block) throw Error("GraphCurvatureOperator::apply: block wider than max");
  if (X.cols == 0) return;
  for (int64_t j = 0; j < Y.cols; ++j) cx_->fill(Y.col(j), plan_.num_params, T(0));
  if (cache_all_) {
    for (const auto& c : chunks_) tangent(*c, X, Y);
  } else {
    Chunk& c = *chunks_.front();
    for (int64_t first = 0; first < n_; first += chunk_) {
      primal(first, std::min(chunk_, n_ - first), c, false);
      tangent(c, X, Y);
    }
  }
  for (int64_t j = 0; j < Y.cols; ++j)
    if (!cx_->all_finite(Y.col(j), plan_.num_params))
      throw NumericalError("a curvature-vector product produced NaN/Inf (direction " +
                           std::to_string(j) + ")");
  this->count_products(X.cols);
}

namespace {
// Zeroes the unset tangent adjoints a step reads (its output's, when no consumer wrote it)
// or adds into without knowing how to overwrite them (rules other than Unary, Linear and
// Binary, which ask Pass::first_write).
template <class T>
void zero_unset_radj(graph_ops::Pass<T>& p, const PlanStep& st, int64_t k) {
  const bool overwrites =
      st.kind == StepKind::Unary || st.kind == StepKind::Linear || st.kind == StepKind::Binary;
  auto zero = [&](int v) {
    const int o = p.value(v).storage;
    char& unset = p.radj_unset[size_t(o)];
    if (!unset) return;
    p.cx.fill(p.radj[o], k * p.count(o), T(0));
    unset = 0;
  };
  zero(st.out);
  if (!overwrites)
    for (int v : st.in)
      if (v >= 0 && p.diff(v)) zero(v);
}
}  // namespace

template <class T>
void GraphCurvatureOperator<T>::tangent(const Chunk& c, BlockView<const T> X, BlockView<T> Y) {
  State& s = *st_;
  const size_t V = plan_.values.size();
  const int64_t k = X.cols, n = c.n;
  Pass<T> p(*cx_, plan_);
  p.n = n;
  p.k = k;
  p.slots = &s.slots;
  p.val.assign(V, nullptr);
  p.adj.assign(V, nullptr);
  p.tan.assign(V, nullptr);
  p.radj.assign(V, nullptr);
  p.radj_unset.assign(V, 0);
  for (size_t v = 0; v < V; ++v) {
    const PlanValue& pv = plan_.values[v];
    if (pv.storage != int(v)) continue;
    const bool data = pv.batched();
    p.val[v] = data ? (int(v) == plan_.input
                           ? (pv.is_int ? nullptr : s.inputs.data() + c.first * pv.numel())
                           : c.val[v].data())
                    : s.pval[v].data();
    if (!pv.diff) continue;
    p.adj[v] = c.adj.empty() ? nullptr : c.adj[v].data();  // empty for Gauss-Newton
    const int64_t size = k * (data ? n : 1) * pv.numel();
    Buffer<T>& tb = data ? s.dtan[v] : s.ptan[v];
    Buffer<T>& rb = data ? s.dradj[v] : s.pradj[v];
    cx_->ensure(tb, size);
    cx_->ensure(rb, size);
    p.tan[v] = tb.data();
    p.radj[v] = rb.data();
    if (data)  // written by its first consumer's rule (see Pass::radj_unset)
      p.radj_unset[v] = 1;
    else  // parameters: small, and their GEMM adjoints always accumulate
      cx_->fill(p.radj[v], size, T(0));
  }
  for (size_t v = 0; v < V; ++v) {
    const size_t o = size_t(plan_.values[v].storage);
    p.val[v] = p.val[o];
    p.adj[v] = p.adj[o];
    p.tan[v] = p.tan[o];
    p.radj[v] = p.radj[o];
  }
  p.argmax.assign(plan_.steps.size(), nullptr);
  p.deriv1.assign(plan_.steps.size(), nullptr);
  p.deriv2.assign(plan_.steps.size(), nullptr);
  for (size_t i = 0; i < plan_.steps.size(); ++i) {
    if (plan_.steps[i].kind == StepKind::MaxPool) p.argmax[i] = c.argmax[i].data();
    if (c.deriv1[i].size) p.deriv1[i] = c.deriv1[i].data();
    if (c.deriv2[i].size) p.deriv2[i] = c.deriv2[i].data();
  }
  set_indices(p, c.first);
  // Parameter tangents [k, numel] from the block's rows.
  for (size_t j = 0; j < plan_.params.size(); ++j) {
    const int v = plan_.params[j];
    const int64_t m = plan_.values[size_t(v)].numel();
    cx_->copy_2d(X.data + plan_.param_offset[j], X.ld, p.tan[v], m, m, k, false);
  }
  for (size_t i = 0; i < plan_.steps.size(); ++i)
    if (plan_.values[size_t(plan_.steps[i].out)].diff)
      graph_ops::step_rforward(p, plan_.steps[i], i);
  const int out = plan_.output;
  cx_->loss_curvature(opt_.loss, c.curv.data(), p.tan[out], p.radj[out], n * positions_,
                      plan_.output_dim / positions_, k, T(1.0 / double(n_ * positions_)));
  p.radj_unset[size_t(plan_.values[size_t(out)].storage)] = 0;  // written in full just now
  const bool hessian = opt_.curvature == Curvature::Hessian;
  for (size_t i = plan_.steps.size(); i-- > 0;) {
    const PlanStep& st = plan_.steps[i];
    if (!plan_.values[size_t(st.out)].diff) continue;
    zero_unset_radj(p, st, k);
    graph_ops::step_backward(p, st, i, k, p.radj);
    if (hessian) graph_ops::step_second_order(p, st, i);
  }
  for (size_t j = 0; j < plan_.params.size(); ++j) {
    const int v = plan_.params[j];
    const int64_t m = plan_.values[size_t(v)].numel();
    cx_->copy_2d(p.radj[v], m, Y.data + plan_.param_offset[j], Y.ld, m, k, true);
  }
}

template class GraphCurvatureOperator<float>;
template class GraphCurvatureOperator<double>;

}  // namespace hspec
