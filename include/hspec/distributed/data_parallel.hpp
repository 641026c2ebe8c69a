// The data-parallel curvature operator: each rank holds a contiguous shard of the samples
// and the usual operator (MLP or graph, CPU or CUDA) on it; a product is the sum over the
// ranks of the shard products weighted by shard/N. It is a layer on the operator seam, so
// the solvers and estimators run unchanged, the same iteration on every rank.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "hspec/distributed/agreement.hpp"
#include "hspec/distributed/communicator.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/operator.hpp"

namespace hspec {

// Why every rank runs the same solver from the same seed rather than rank 0 broadcasting
// the basis: the solver's only input that depends on the data is the operator's output,
// and that output is made identical on every rank (below), so the same deterministic
// solver code produces bitwise the same basis, Ritz values and decisions (convergence,
// restarts, stopping) everywhere, without sending the basis (P x m numbers) over the network.
// The identity is checked, not assumed: MPI does not promise that an allreduce leaves the
// same bits on every rank (recursive-doubling sums in rank-dependent order), so after each
// reduction the ranks compare a 63-bit hash of the result (one 2-number allreduce) and, if
// they differ, take rank 0's copy (a broadcast), counted as a resync in the report.
// Open MPI 4.1 on one node never needed one in the tests (resyncs: 0).

// What the run needs from a shard's operator: the operator and its results at the checkpoint.
template <class T>
struct ShardOperator {
  std::unique_ptr<CurvatureOperator<T>> op;
  double loss = 0;
  std::vector<double> gradient;  // mean over the shard, flat parameter order
};

// The shard operator of a concrete operator: its loss and gradient, read once.
template <class T, class Op>
ShardOperator<T> shard_operator(std::unique_ptr<Op> op) {
  ShardOperator<T> s;
  s.loss = op->loss_value();
  s.gradient = op->gradient();
  s.op = std::move(op);
  return s;
}

// Counters of a data-parallel run, for the report.
struct DataParallelInfo {
  int ranks = 1;
  std::string library;    // e.g. "Open MPI v4.1.4"
  int64_t shard_min = 0;  // samples of the smallest and the largest shard
  int64_t shard_max = 0;
  int64_t reductions = 0;      // allreduce calls of products (one per apply)
  double reduced_bytes = 0;    // payload of those, per rank
  int64_t resyncs = 0;         // reductions whose result differed between ranks (see above)
  double reduce_seconds = 0;   // wall time inside the product reductions (incl. staging)
  std::string device_staging;  // "" on the CPU; how device blocks reach MPI
};

// Keeps samples [first, first + count) of ds.
void keep_shard(Dataset& ds, const Shard& shard);

// A run on several ranks, as run_analyze sets it up (AnalyzeOptions::distributed).
struct DataParallelRun {
  Communicator* comm = nullptr;
  RankAgreement* agreement = nullptr;
  int64_t total = 0;  // samples over all ranks
  Shard shard;        // this rank's
};

// Records the data set's size in `run` and keeps this rank's shard of it; UsageError when
// there are fewer samples than ranks (a shard would be empty).
void shard_for_run(Dataset& ds, DataParallelRun& run);

template <class T>
class DataParallelOperator final : public CurvatureOperator<T> {
 public:
  // `build` constructs this rank's shard operator. It runs under the agreement: a throw on
  // any rank ends every rank with that error. `shard` is this rank's sample count out of
  // `total`. device >= 0: the shard operator's blocks live on that CUDA device and are
  // staged through pinned host memory.
  DataParallelOperator(Communicator& comm, RankAgreement& agreement, int64_t total, int64_t shard,
                       const std::function<ShardOperator<T>()>& build, int device = -1);
  ~DataParallelOperator() override;

  int64_t dim() const override { return local_.op->dim(); }
  int64_t max_block() const override { return local_.op->max_block(); }
  Where where() const override { return local_.op->where(); }
  void apply(BlockView<const T> X, BlockView<T> Y) override;

  // Over all samples: the mean loss and its gradient.
  double loss_value() const { return loss_; }
  const std::vector<double>& gradient() const { return grad_; }
  double grad_norm() const { return gradient_norm(grad_); }
  const DataParallelInfo& info() const { return info_; }

 private:
  template <class U>
  void reduce(U* data, int64_t n);

  Communicator& comm_;
  RankAgreement& agreement_;
  ShardOperator<T> local_;
  double weight_ = 1;  // shard / total
  int device_ = -1;
  T* staging_ = nullptr;  // dim x max_block, pinned on a device run
  std::vector<T> host_staging_;
  double loss_ = 0;
  std::vector<double> grad_;
  DataParallelInfo info_;
};

extern template class DataParallelOperator<float>;
extern template class DataParallelOperator<double>;

// Bytes a rank holds for the reductions besides its shard operator (host memory).
double data_parallel_bytes(int64_t params, int64_t max_block, size_t elem);

}  // namespace hspec
