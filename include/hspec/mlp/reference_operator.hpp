// The MLP reference operator: exact batched Hessian (or Gauss-Newton) vector products of an
// MLP's mean loss by the R-operator, written for the Linear/activation chain alone (GEMMs
// with fused epilogues), with the primal pass cached once per run. `analyze` and `train` run
// MLP checkpoints on the graph operator (as graphs, graph_from_mlp), the one operator of
// every model and backend; this second, independent implementation is what the graph
// engine's MLP products and the CUDA compute backend are tested against, what the solver
// and estimator tests run on, and the baseline of `hspec_bench --engine mlp`.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "hspec/formats/dataset.hpp"
#include "hspec/mlp/model.hpp"
#include "hspec/operator.hpp"

namespace hspec {

struct MlpReferenceOptions {
  Curvature curvature = Curvature::Hessian;
  Loss loss = Loss::CE;
  int64_t max_block = 16;               // directions per apply()
  int64_t chunk = 0;                    // samples per chunk; 0 = derived from the memory budget
  uint64_t memory_budget = 2ull << 30;  // bytes for cached activations and tangent buffers
};

template <class T>
class MlpReferenceOperator final : public CurvatureOperator<T> {
 public:
  MlpReferenceOperator(const Model& model, const Dataset& data, const MlpReferenceOptions& opt);
  ~MlpReferenceOperator() override;

  int64_t dim() const override { return num_params_; }
  int64_t max_block() const override { return opt_.max_block; }
  Where where() const override { return Where::Host; }
  void apply(BlockView<const T> X, BlockView<T> Y) override;

  // At the checkpoint: mean loss, its gradient (flat parameter order) and their norms,
  // accumulated in double.
  double loss_value() const { return loss_; }
  const std::vector<double>& gradient() const { return grad_; }
  double grad_norm() const { return gradient_norm(grad_); }
  // Samples whose prediction (argmax of the outputs for ce, output > 0 for bce) matches
  // the label; 0 for mse. Lets training report accuracy without a second forward pass.
  int64_t correct() const { return correct_; }
  int64_t chunk_size() const { return chunk_; }
  bool primal_cached() const { return cache_all_; }

 private:
  struct Chunk;
  void primal(int64_t first, int64_t count, Chunk& c, bool accumulate_gradient);
  void tangent(const Chunk& c, BlockView<const T> X, BlockView<T> Y);

  Model model_;
  MlpReferenceOptions opt_;
  int64_t num_params_ = 0;
  int64_t n_ = 0;
  int64_t chunk_ = 0;
  bool cache_all_ = true;
  std::vector<T> inputs_;  // d x N
  std::vector<int64_t> labels_;
  std::vector<T> targets_;          // out x N
  std::vector<std::vector<T>> wt_;  // per layer: weight as in x out column-major
  std::vector<std::vector<T>> bias_;
  std::vector<int64_t> offset_;  // per layer: offset of the weight in the flat vector
  std::vector<std::unique_ptr<Chunk>> chunks_;  // all chunks when cached, else one scratch
  double loss_ = 0;
  int64_t correct_ = 0;
  std::vector<double> grad_;
  // Tangent-pass buffers reused by every apply().
  std::vector<std::vector<T>> scratch_ra_, scratch_rx_;
  std::vector<T> scratch_rg_, scratch_rd_;
};

extern template class MlpReferenceOperator<float>;
extern template class MlpReferenceOperator<double>;

}  // namespace hspec
