// RAII wrappers and small helpers of the CUDA backend (private to kernels/): device guard,
// device buffers, stream, cuBLAS handle, uploads, launch sizes and strided 2-D copies.
#pragma once
#include <cublas_v2.h>
#include <cuda.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "hspec/backends/cuda/cuda_check.hpp"
#include "hspec/error.hpp"

namespace hspec::cuda {

// Best-effort calls (destructors, deleters) must not leave their error behind: the next
// CUDA_CHECK_LAUNCH would report it as a failure of an unrelated kernel.
inline void best_effort(cudaError_t e) {
  if (e != cudaSuccess) cudaGetLastError();
}

// Whether `device`'s primary context is active. Asked of the driver through the runtime's
// entry-point query, so nothing links libcuda (a machine without a driver must still load
// hspec); false whenever the driver cannot say.
inline bool primary_context_active(int device) {
  using DeviceGetFn = CUresult (*)(CUdevice*, int);
  using StateFn = CUresult (*)(CUdevice, unsigned int*, int*);
  struct Entry {
    DeviceGetFn get = nullptr;
    StateFn state = nullptr;
  };
  static const Entry entry = [] {
    Entry e;
    void* get = nullptr;
    void* state = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuDeviceGet", &get, 12000, cudaEnableDefault, &found) ==
            cudaSuccess &&
        found == cudaDriverEntryPointSuccess)
      e.get = reinterpret_cast<DeviceGetFn>(get);
    found = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuDevicePrimaryCtxGetState", &state, 12000,
                                         cudaEnableDefault, &found) == cudaSuccess &&
        found == cudaDriverEntryPointSuccess)
      e.state = reinterpret_cast<StateFn>(state);
    cudaGetLastError();
    return e;
  }();
  if (!entry.get || !entry.state) return false;
  CUdevice dev = 0;
  unsigned int flags = 0;
  int active = 0;
  if (entry.get(&dev, device) != CUDA_SUCCESS) return false;
  return entry.state(dev, &flags, &active) == CUDA_SUCCESS && active != 0;
}

// Makes `device` current for the lifetime of the guard. The previous device is made current
// again only when its primary context is active: since CUDA 12 cudaSetDevice creates the
// context of the device it selects, so restoring a device nobody used (device 0, the
// runtime's default) would occupy a second GPU for a run on `--device cuda:1`.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    CUDA_CHECK_THROW(cudaGetDevice(&previous_));
    if (previous_ != device) {
      CUDA_CHECK_THROW(cudaSetDevice(device));
      restore_ = primary_context_active(previous_);
    }
  }
  // For destructors and deleters: best effort, never throws, leaves no error behind.
  DeviceGuard(int device, std::nothrow_t) {
    if (cudaGetDevice(&previous_) == cudaSuccess && previous_ != device &&
        cudaSetDevice(device) == cudaSuccess)
      restore_ = primary_context_active(previous_);
    cudaGetLastError();
  }
  ~DeviceGuard() {
    if (restore_) best_effort(cudaSetDevice(previous_));
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool restore_ = false;
};

// Checks that `device` names a usable device; throws DeviceError otherwise.
inline void require_device(int device) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw DeviceError("no usable CUDA device: " + detail::cuda_error_text(e));
  }
  if (device < 0 || device >= count)
    throw DeviceError("CUDA device " + std::to_string(device) + " does not exist (" +
                      std::to_string(count) + " visible)");
}

// An owning device allocation of `count` elements of T (on the device current at creation).
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(int64_t count) { allocate(count); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), count_(o.count_) {
    o.ptr_ = nullptr;
    o.count_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      count_ = std::exchange(o.count_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return ptr_; }
  int64_t size() const { return count_; }

  // Ensures room for `count` elements; the old contents are discarded when it grows.
  void reserve(int64_t count) {
    if (count > count_) {
      release();
      allocate(count);
    }
  }

 private:
  void allocate(int64_t count) {
    const size_t bytes = sizeof(T) * static_cast<size_t>(std::max<int64_t>(count, 1));
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
      cudaGetLastError();  // out-of-memory is not sticky; clear it
      throw DeviceError("cudaMalloc of " + std::to_string(bytes >> 20) +
                        " MiB failed: " + detail::cuda_error_text(e));
    }
    ptr_ = static_cast<T*>(p);
    count_ = count;
  }
  void release() {
    if (ptr_) best_effort(cudaFree(ptr_));
    ptr_ = nullptr;
    count_ = 0;
  }

  T* ptr_ = nullptr;
  int64_t count_ = 0;
};

// A blocking stream: it is ordered with the legacy default stream, so plain cudaMemcpy
// calls by other code stay correctly ordered with our work.
class Stream {
 public:
  Stream() { CUDA_CHECK_THROW(cudaStreamCreate(&s_)); }
  ~Stream() {
    if (s_) best_effort(cudaStreamDestroy(s_));
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  void sync() const { CUDA_CHECK_THROW(cudaStreamSynchronize(s_)); }

 private:
  cudaStream_t s_ = nullptr;
};

// A CUDA event (default flags: it records timing), destroyed on every path out.
class Event {
 public:
  Event() { CUDA_CHECK_THROW(cudaEventCreate(&e_)); }
  ~Event() {
    if (e_) best_effort(cudaEventDestroy(e_));
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

// A cuBLAS handle bound to a stream, host pointer mode.
class CublasHandle {
 public:
  explicit CublasHandle(cudaStream_t stream) {
    CUBLAS_CHECK_THROW(cublasCreate(&h_));
    const cublasStatus_t st = cublasSetStream(h_, stream);
    if (st != CUBLAS_STATUS_SUCCESS) {
      cublasDestroy(h_);
      CUBLAS_CHECK_THROW(st);
    }
  }
  ~CublasHandle() {
    if (h_) cublasDestroy(h_);
  }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const { return h_; }

 private:
  cublasHandle_t h_ = nullptr;
};

// A device copy of a host vector (asynchronous on `stream`; the host vector may be released
// as soon as this returns, pageable copies are staged before the call returns).
template <class T>
DeviceBuffer<T> upload(const std::vector<T>& host, cudaStream_t stream) {
  DeviceBuffer<T> d(static_cast<int64_t>(host.size()));
  if (!host.empty())
    CUDA_CHECK_THROW(cudaMemcpyAsync(d.get(), host.data(), sizeof(T) * host.size(),
                                     cudaMemcpyHostToDevice, stream));
  return d;
}

// Blocks for a grid-stride loop over `count` items with `threads` per block.
inline unsigned grid_for(int64_t count, int threads = 256) {
  const int64_t blocks = (count + threads - 1) / threads;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, 65535));
}

// A 2-D grid for a rows x cols block: x strides over rows, y over columns.
inline dim3 grid_2d(int64_t rows, int64_t cols, int threads = 256) {
  return dim3(grid_for(rows, threads), static_cast<unsigned>(std::clamp<int64_t>(cols, 1, 65535)));
}

// Copies a rows x cols column-major block between pitched buffers (leading dimensions in
// elements), asynchronously on `stream`. Falls back to one copy per column when a pitch
// is beyond what cudaMemcpy2D accepts.
template <class T>
void copy_2d(T* dst, int64_t ldd, const T* src, int64_t lds, int64_t rows, int64_t cols,
             cudaMemcpyKind kind, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  const size_t width = sizeof(T) * static_cast<size_t>(rows);
  if (cols == 1) {
    CUDA_CHECK_THROW(cudaMemcpyAsync(dst, src, width, kind, stream));
    return;
  }
  const size_t dpitch = sizeof(T) * static_cast<size_t>(ldd);
  const size_t spitch = sizeof(T) * static_cast<size_t>(lds);
  if (dpitch < width || spitch < width) throw Error("copy_2d: leading dimension below rows");
  if (dpitch == width && spitch == width) {
    CUDA_CHECK_THROW(cudaMemcpyAsync(dst, src, width * static_cast<size_t>(cols), kind, stream));
  } else if (dpitch <= static_cast<size_t>(INT_MAX) && spitch <= static_cast<size_t>(INT_MAX)) {
    CUDA_CHECK_THROW(cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, static_cast<size_t>(cols),
                                       kind, stream));
  } else {
    for (int64_t j = 0; j < cols; ++j)
      CUDA_CHECK_THROW(cudaMemcpyAsync(dst + j * ldd, src + j * lds, width, kind, stream));
  }
}

}  // namespace hspec::cuda
