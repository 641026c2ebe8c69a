// CudaCompute, part 6: row gathers (embedding lookups by token id, Gather with constant
// indices) and their scatter-add adjoint. The adjoint is written as a gather so that it is
// deterministic without float atomics: the indices are grouped by table row on the host
// (a stable sort, so each row's terms keep the CPU's order i = 0, 1, ...), and one thread per
// (row, column, repetition) adds its row's terms in that order, starting from the table's
// value as the CPU loop does: the same bits as the CPU. CPU reference:
// host/backends/cpu/cpu_compute_gather.cpp.
#include <algorithm>
#include <numeric>
#include <vector>

#include "cuda_compute.hpp"

namespace hspec::cuda {
namespace {

template <class T>
__global__ void gather_rows_kernel(const T* table, int64_t table_stride, const int64_t* idx,
                                   int64_t count, int64_t width, T* out, int64_t reps,
                                   bool accumulate) {
  HSPEC_GRID_LOOP(e, reps * count * width) {
    const int64_t c = e % width, ri = e / width, i = ri % count, r = ri / count;
    const T v = table[r * table_stride + idx[i] * width + c];
    out[e] = accumulate ? out[e] + v : v;
  }
}

// Segment u holds positions order[start[u] .. start[u + 1]) of the indices equal to row[u].
template <class T>
__global__ void scatter_rows_kernel(const T* src, const int64_t* order, const int64_t* start,
                                    const int64_t* row, int64_t segments, int64_t count,
                                    int64_t width, T* table, int64_t table_stride, int64_t reps) {
  HSPEC_GRID_LOOP(e, reps * segments * width) {
    const int64_t c = e % width, ru = e / width, u = ru % segments, r = ru / segments;
    T* cell = table + r * table_stride + row[u] * width + c;
    T acc = *cell;
    const T* s = src + r * count * width + c;
    for (int64_t j = start[u]; j < start[u + 1]; ++j) acc += s[order[j] * width];
    *cell = acc;
  }
}

}  // namespace

template <class T>
void CudaCompute<T>::gather_rows(const T* table, int64_t table_stride, const int64_t* idx,
                                 int64_t count, int64_t width, T* out, int64_t reps,
                                 bool accumulate) {
  const int64_t n = reps * count * width;
  if (n == 0) return;
  DeviceGuard guard(device_);
  gather_rows_kernel<<<grid_for(n, kGraphThreads), kGraphThreads, 0, stream()>>>(
      table, table_stride, idx, count, width, out, reps, accumulate);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void CudaCompute<T>::scatter_add_rows(const T* src, const int64_t* idx, int64_t count,
                                      int64_t width, T* table, int64_t table_stride, int64_t reps) {
  if (reps * count * width == 0) return;
  DeviceGuard guard(device_);
  // Group the positions by row on the host: count indices, small next to the rows they move.
  std::vector<int64_t> ids(static_cast<size_t>(count)), order(ids.size());
  CUDA_CHECK_THROW(cudaMemcpyAsync(ids.data(), idx, sizeof(int64_t) * ids.size(),
                                   cudaMemcpyDeviceToHost, stream()));
  CUDA_CHECK_THROW(cudaStreamSynchronize(stream()));
  std::iota(order.begin(), order.end(), int64_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return ids[size_t(a)] < ids[size_t(b)]; });
  std::vector<int64_t> start, row;
  for (size_t j = 0; j < order.size(); ++j)
    if (j == 0 || ids[size_t(order[j])] != ids[size_t(order[j - 1])]) {
      start.push_back(int64_t(j));
      row.push_back(ids[size_t(order[j])]);
    }
  start.push_back(count);
  const int64_t segments = int64_t(row.size());
  // One device buffer for the three arrays; the copy is ordered before the kernel on the
  // stream, and the host vectors outlive it (synchronised below).
  DeviceBuffer<int64_t> meta(count + 2 * segments + 1);
  int64_t* d_order = meta.get();
  int64_t* d_start = d_order + count;
  int64_t* d_row = d_start + segments + 1;
  CUDA_CHECK_THROW(cudaMemcpyAsync(d_order, order.data(), sizeof(int64_t) * order.size(),
                                   cudaMemcpyHostToDevice, stream()));
  CUDA_CHECK_THROW(cudaMemcpyAsync(d_start, start.data(), sizeof(int64_t) * start.size(),
                                   cudaMemcpyHostToDevice, stream()));
  CUDA_CHECK_THROW(cudaMemcpyAsync(d_row, row.data(), sizeof(int64_t) * row.size(),
                                   cudaMemcpyHostToDevice, stream()));
  const int64_t n = reps * segments * width;
  scatter_rows_kernel<<<grid_for(n, kGraphThreads), kGraphThreads, 0, stream()>>>(
      src, d_order, d_start, d_row, segments, count, width, table, table_stride, reps);
  CUDA_CHECK_LAUNCH();
  // meta is freed on return: wait for the kernel that reads it.
  CUDA_CHECK_THROW(cudaStreamSynchronize(stream()));
}

#define HSPEC_GATHER_MEMBERS(T)                                                                  \
  template void CudaCompute<T>::gather_rows(const T*, int64_t, const int64_t*, int64_t, int64_t, \
                                            T*, int64_t, bool);                                  \
  template void CudaCompute<T>::scatter_add_rows(const T*, const int64_t*, int64_t, int64_t, T*, \
                                                 int64_t, int64_t);
HSPEC_GATHER_MEMBERS(float)
HSPEC_GATHER_MEMBERS(double)
#undef HSPEC_GATHER_MEMBERS

}  // namespace hspec::cuda
