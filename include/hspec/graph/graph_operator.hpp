// The graph curvature operator: exact batched Hessian (or Gauss-Newton) vector products of
// the mean loss of a Graph over a Dataset, by the R-operator (forward-over-reverse) through
// the graph's ops, on a compute backend (the CPU one by default).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "hspec/formats/dataset.hpp"
#include "hspec/graph/compute.hpp"
#include "hspec/graph/graph.hpp"
#include "hspec/graph/plan.hpp"
#include "hspec/mlp/model.hpp"
#include "hspec/operator.hpp"

namespace hspec {
namespace graph_ops {
template <class T>
struct Pass;
}

struct GraphOperatorOptions {
  Curvature curvature = Curvature::Hessian;
  Loss loss = Loss::CE;
  int64_t max_block = 16;               // directions per apply()
  int64_t chunk = 0;                    // samples per chunk; 0 = derived from the memory budget
  uint64_t memory_budget = 2ull << 30;  // bytes for cached activations and tangent buffers
};

// Checks that the data fit the plan's input and the loss fits its output (ce: [N, C]
// output and labels [N] in [0, C), or [N, T, V] logits and labels [N, T] in [0, V); bce:
// one output, labels 0/1; mse: targets of the output's size), and that token ids are
// integers of the input's length within the embedding's rows. InputError naming the data
// source or the model.
void check_graph_data_fits(const Plan& plan, const Dataset& ds, Loss loss);

// Tokens per sample the loss averages over: T for cross-entropy on [N, T, V] logits, else 1.
int64_t loss_positions(const Plan& plan, Loss loss);

// Bytes per sample the operator holds: the cached primal pass (values, adjoints for the
// Hessian, argmax, output curvature) and the tangent pass for `max_block` directions (tangents,
// their adjoints, workspace). For memory planning before construction.
struct GraphMemory {
  uint64_t primal_per_sample = 0;
  uint64_t tangent_per_sample = 0;
};
GraphMemory graph_memory(const Plan& plan, int64_t max_block, size_t elem_size,
                         bool hessian = true);

template <class T>
class GraphCurvatureOperator final : public CurvatureOperator<T> {
 public:
  GraphCurvatureOperator(const Graph& graph, const Dataset& data, const GraphOperatorOptions& opt,
                         std::unique_ptr<Compute<T>> backend = nullptr);
  // From a plan already made (make_plan): what training uses to build an operator per
  // minibatch without lowering the graph again (set_parameters updates the plan's values).
  GraphCurvatureOperator(Plan plan, const Dataset& data, const GraphOperatorOptions& opt,
                         std::unique_ptr<Compute<T>> backend = nullptr);
  ~GraphCurvatureOperator() override;

  int64_t dim() const override { return plan_.num_params; }
  int64_t max_block() const override { return opt_.max_block; }
  Where where() const override { return cx_->where(); }
  void apply(BlockView<const T> X, BlockView<T> Y) override;

  // At the checkpoint: mean loss, its gradient (flat parameter order) and norm, in double.
  double loss_value() const { return loss_; }
  const std::vector<double>& gradient() const { return grad_; }
  double grad_norm() const { return gradient_norm(grad_); }
  int64_t correct() const { return correct_; }
  int64_t chunk_size() const { return chunk_; }
  bool primal_cached() const { return cache_all_; }
  const Plan& plan() const { return plan_; }

 private:
  struct Chunk;
  struct State;
  void primal(int64_t first, int64_t count, Chunk& c, bool accumulate_gradient);
  void tangent(const Chunk& c, BlockView<const T> X, BlockView<T> Y);
  void set_indices(graph_ops::Pass<T>& p, int64_t first) const;

  Plan plan_;
  GraphOperatorOptions opt_;
  std::unique_ptr<Compute<T>> cx_;
  std::unique_ptr<State> st_;
  int64_t n_ = 0, chunk_ = 0;
  int64_t positions_ = 1;  // loss terms per sample (tokens, for sequence cross-entropy)
  bool cache_all_ = true;
  std::vector<std::unique_ptr<Chunk>> chunks_;
  double loss_ = 0;
  int64_t correct_ = 0;
  std::vector<double> grad_;
};

extern template class GraphCurvatureOperator<float>;
extern template class GraphCurvatureOperator<double>;

}  // namespace hspec
