// DataParallelOperator: shard products summed over the ranks, with the checks that keep
// every rank's solver on the same bits (include/hspec/distributed/data_parallel.hpp).
#include "hspec/distributed/data_parallel.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "hspec/backends/cuda/cuda_backend.hpp"
#include "hspec/error.hpp"

namespace hspec {
namespace {

// A 63-bit hash of the bytes (its negation fits an int64), word by word in four independent
// lanes so that it runs at memory speed: one more pass over the block, like the scaling.
int64_t hash63(const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  const uint64_t prime = 1099511628211ull;
  uint64_t h[4] = {1469598103934665603ull, 2, 3, 4};
  size_t i = 0;
  for (; i + 32 <= bytes; i += 32) {
    for (int l = 0; l < 4; ++l) {
      uint64_t w;
      std::memcpy(&w, p + i + 8 * l, 8);
      h[l] = (h[l] ^ w) * prime;
    }
  }
  for (; i < bytes; ++i) h[0] = (h[0] ^ p[i]) * prime;
  uint64_t r = h[0];
  for (int l = 1; l < 4; ++l) r = (r ^ (h[l] + (r << 6) + (r >> 2))) * prime;
  return static_cast<int64_t>(r >> 1);
}

}  // namespace

void keep_shard(Dataset& ds, const Shard& s) {
  if (s.first == 0 && s.count == ds.n) return;
  const auto cut = [&s](auto& v, int64_t width) {
    if (v.empty()) return;
    std::memmove(v.data(), v.data() + s.first * width, sizeof(v[0]) * size_t(s.count * width));
    v.resize(size_t(s.count * width));
    v.shrink_to_fit();  // the other ranks' samples are not kept
  };
  cut(ds.inputs, ds.d);
  cut(ds.ids, ds.d);                                   // token ids: d per sample, like features
  cut(ds.labels, std::max<int64_t>(ds.label_dim, 1));  // [N] or per-position [N, T]
  cut(ds.targets, ds.target_dim);
  ds.n = s.count;
  ds.first_sample += s.first;
}

void shard_for_run(Dataset& ds, DataParallelRun& run) {
  const int ranks = run.comm->size();
  run.total = ds.n;
  if (ds.n < ranks)
    throw UsageError(std::to_string(ds.n) + " samples cannot be shared by " +
                     std::to_string(ranks) + " ranks: run fewer ranks");
  run.shard = shard_of(ds.n, ranks, run.comm->rank());
  keep_shard(ds, run.shard);
}

double data_parallel_bytes(int64_t params, int64_t max_block, size_t elem) {
  // The packed staging block, and the loss and gradient being reduced (double).
  return double(params) * double(max_block) * double(elem) + 8.0 * double(params + 1);
}

template <class T>
DataParallelOperator<T>::DataParallelOperator(Communicator& comm, RankAgreement& agreement,
                                              int64_t total, int64_t shard,
                                              const std::function<ShardOperator<T>()>& build,
                                              int device)
    : comm_(comm), agreement_(agreement), device_(device) {
  try {
    local_ = build();
  } catch (...) {
    agreement_.fail(std::current_exception());
  }
  agreement_.checkpoint();
  weight_ = double(shard) / double(total);
  info_.ranks = comm_.size();
  info_.library = comm_.library();
  int64_t sizes[2] = {-shard, shard};
  comm_.allreduce_max(sizes, 2);
  info_.shard_min = -sizes[0];
  info_.shard_max = sizes[1];
  // The loss and gradient: each shard's mean, weighted by its share of the samples.
  const int64_t p = local_.op->dim();
  std::vector<double> buf(size_t(p + 1));
  buf[0] = weight_ * local_.loss;
  for (int64_t i = 0; i < p; ++i) buf[size_t(i + 1)] = weight_ * local_.gradient[size_t(i)];
  reduce(buf.data(), p + 1);
  loss_ = buf[0];
  grad_.assign(buf.begin() + 1, buf.end());
  const size_t block = size_t(p) * size_t(local_.op->max_block());
  if (device_ >= 0) {
    staging_ = static_cast<T*>(cuda_pinned_alloc(block * sizeof(T)));
    info_.device_staging = "pinned host buffers (cudaMemcpy2D), reduced on the host";
  } else {
    host_staging_.resize(block);
    staging_ = host_staging_.data();
  }
}

template <class T>
DataParallelOperator<T>::~DataParallelOperator() {
  if (device_ >= 0 && staging_ != nullptr) cuda_pinned_free(staging_);
}

template <class T>
template <class U>
void DataParallelOperator<T>::reduce(U* data, int64_t n) {
  comm_.allreduce_sum(data, n);
  const int64_t h = hash63(data, sizeof(U) * size_t(n));
  int64_t hs[2] = {h, -h};  // max of h and of -h: equal on every rank iff min == max
  comm_.allreduce_max(hs, 2);
  if (hs[0] != -hs[1]) {
    comm_.broadcast(data, int64_t(sizeof(U)) * n, 0);
    ++info_.resyncs;
  }
}

template <class T>
void DataParallelOperator<T>::apply(BlockView<const T> X, BlockView<T> Y) {
  agreement_.checkpoint();  // a failure or a stop signal elsewhere is seen here by all
  try {
    local_.op->apply(X, Y);
  } catch (...) {
    agreement_.fail(std::current_exception());
  }
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t rows = Y.rows, cols = Y.cols, n = rows * cols;
  if (device_ >= 0) {
    cuda_block_to_host<T>(device_, BlockView<const T>(Y.data, rows, cols, Y.ld), staging_);
  } else {
    for (int64_t j = 0; j < cols; ++j)
      std::memcpy(staging_ + j * rows, Y.col(j), sizeof(T) * size_t(rows));
  }
  const T w = static_cast<T>(weight_);
  for (int64_t i = 0; i < n; ++i) staging_[i] *= w;
  reduce(staging_, n);
  if (device_ >= 0) {
    cuda_block_from_host<T>(device_, staging_, Y);
  } else {
    for (int64_t j = 0; j < cols; ++j)
      std::memcpy(Y.col(j), staging_ + j * rows, sizeof(T) * size_t(rows));
  }
  ++info_.reductions;
  info_.reduced_bytes += double(sizeof(T)) * double(n);
  info_.reduce_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  this->count_products(cols);
}

template class DataParallelOperator<float>;
template class DataParallelOperator<double>;

}  // namespace hspec
