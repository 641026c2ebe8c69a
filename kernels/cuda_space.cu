// CudaSpace: the solver's block algebra (the VectorSpace seam) on device memory.
// cuBLAS GEMMs and norms, cuRAND fills, a column-scaling kernel; small k x k results cross to
// the host in double.
#include <curand.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cublas_ops.hpp"
#include "cuda_util.hpp"
#include "hspec/backends/cuda/cuda_backend.hpp"
#include "hspec/backends/cuda/cuda_check.hpp"
#include "hspec/error.hpp"

namespace hspec {
namespace {

// The kernels below cover a rows x cols block (leading dimension ld) with a 2-D grid
// (cuda::grid_2d): x strides over rows, y over columns.
#define HSPEC_FOR_EACH_ENTRY(i, j, rows, cols)                                                \
  for (int64_t j = blockIdx.y; j < (cols); j += gridDim.y)                                    \
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (rows); \
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// A(:, j) *= s[j].
template <class T>
__global__ void scale_columns_kernel(T* a, int64_t rows, int64_t cols, int64_t ld, const T* s) {
  HSPEC_FOR_EACH_ENTRY(i, j, rows, cols) a[i + j * ld] *= s[j];
}

// A = beta A, with beta == 0 writing zeros (as BLAS does, so NaNs in A do not survive).
template <class T>
__global__ void scale_block_kernel(T* a, int64_t rows, int64_t cols, int64_t ld, T beta) {
  HSPEC_FOR_EACH_ENTRY(i, j, rows, cols) {
    T& v = a[i + j * ld];
    v = beta == T(0) ? T(0) : beta * v;
  }
}

// A(i, j) = +-1 from the top bit of bits[i + j * rows].
template <class T>
__global__ void rademacher_kernel(T* a, int64_t rows, int64_t cols, int64_t ld,
                                  const unsigned* bits) {
  HSPEC_FOR_EACH_ENTRY(i, j, rows, cols) a[i + j * ld] = (bits[i + j * rows] >> 31) ? T(1) : T(-1);
}

#undef HSPEC_FOR_EACH_ENTRY

// A cuRAND Philox generator on a stream.
class CurandGenerator {
 public:
  explicit CurandGenerator(cudaStream_t stream) {
    CURAND_CHECK_THROW(curandCreateGenerator(&g_, CURAND_RNG_PSEUDO_PHILOX4_32_10));
    const curandStatus_t st = curandSetStream(g_, stream);
    if (st != CURAND_STATUS_SUCCESS) {
      curandDestroyGenerator(g_);
      CURAND_CHECK_THROW(st);
    }
  }
  ~CurandGenerator() {
    if (g_) curandDestroyGenerator(g_);
  }
  CurandGenerator(const CurandGenerator&) = delete;
  CurandGenerator& operator=(const CurandGenerator&) = delete;
  curandGenerator_t get() const { return g_; }

 private:
  curandGenerator_t g_ = nullptr;
};

void check_ld(int64_t rows, int64_t cols, int64_t ld, const char* what) {
  if (rows < 0 || cols < 0 || (cols > 1 && ld < rows))
    throw Error(std::string("CudaSpace::") + what + ": bad block shape or leading dimension");
}

// Whether two column-major blocks share any byte.
template <class T>
bool overlaps(const T* a, int64_t lda, const T* b, int64_t ldb, int64_t rows, int64_t cols) {
  const T* a_end = a + (cols - 1) * lda + rows;
  const T* b_end = b + (cols - 1) * ldb + rows;
  return a < b_end && b < a_end;
}

template <class T>
class CudaSpace final : public VectorSpace<T> {
 public:
  explicit CudaSpace(int device) : device_(device) {
    cuda::DeviceGuard guard(device_);
    res_ = std::make_unique<Resources>();
  }
  ~CudaSpace() override {
    cuda::DeviceGuard guard(device_, std::nothrow);
    res_.reset();
  }

  Where where() const override { return Where::Device; }

  Matrix<T> allocate(int64_t rows, int64_t cols) override {
    if (rows < 0 || cols < 0) throw Error("CudaSpace::allocate: negative shape");
    cuda::DeviceGuard guard(device_);
    const size_t count = static_cast<size_t>(rows) * static_cast<size_t>(cols);
    const size_t bytes = sizeof(T) * (count > 0 ? count : 1);
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw DeviceError("out of device memory allocating a " + std::to_string(rows) + " x " +
                        std::to_string(cols) + " block (" + std::to_string(bytes >> 20) +
                        " MiB): " + detail::cuda_error_text(e));
    }
    const int device = device_;
    std::shared_ptr<T> storage(static_cast<T*>(p), [device](T* q) {
      cuda::DeviceGuard g(device, std::nothrow);
      cuda::best_effort(cudaFree(q));
    });
    CUDA_CHECK_THROW(cudaMemsetAsync(p, 0, bytes, stream()));
    res_->stream.sync();
    return Matrix<T>(std::move(storage), rows, cols);
  }

  void gram(BlockView<const T> A, BlockView<const T> B, double* G, int64_t ldg) override {
    const int64_t p = A.cols, q = B.cols, n = A.rows;
    if (p == 0 || q == 0) return;
    if (B.rows != n) throw Error("CudaSpace::gram: A and B have different row counts");
    check_ld(A.rows, A.cols, A.ld, "gram");
    check_ld(B.rows, B.cols, B.ld, "gram");
    if (n == 0) {
      for (int64_t j = 0; j < q; ++j)
        for (int64_t i = 0; i < p; ++i) G[i + j * ldg] = 0.0;
      return;
    }
    cuda::DeviceGuard guard(device_);
    res_->work.reserve(p * q);
    cuda::gemm<T>(blas(), 'T', 'N', p, q, n, T(1), A.data, A.ld, B.data, B.ld, T(0),
                  res_->work.get(), p);
    stage_.resize(static_cast<size_t>(p * q));
    CUDA_CHECK_THROW(cudaMemcpyAsync(stage_.data(), res_->work.get(), sizeof(T) * stage_.size(),
                                     cudaMemcpyDeviceToHost, stream()));
    res_->stream.sync();
    for (int64_t j = 0; j < q; ++j)
      for (int64_t i = 0; i < p; ++i) G[i + j * ldg] = static_cast<double>(stage_[i + j * p]);
  }

  void update(BlockView<T> Y, BlockView<const T> A, const double* C, int64_t ldc, double alpha,
              double beta) override {
    const int64_t p = A.cols, q = Y.cols, n = Y.rows;
    if (q == 0 || n == 0) return;
    if (A.rows != n) throw Error("CudaSpace::update: A and Y have different row counts");
    check_ld(Y.rows, Y.cols, Y.ld, "update");
    check_ld(A.rows, A.cols, A.ld, "update");
    cuda::DeviceGuard guard(device_);
    if (p == 0) {
      if (beta != 1.0) {
        scale_block_kernel<T>
            <<<cuda::grid_2d(n, q), 256, 0, stream()>>>(Y.data, n, q, Y.ld, static_cast<T>(beta));
        CUDA_CHECK_LAUNCH();
      }
      res_->stream.sync();
      return;
    }
    stage_.resize(static_cast<size_t>(p * q));
    for (int64_t j = 0; j < q; ++j)
      for (int64_t i = 0; i < p; ++i) stage_[i + j * p] = static_cast<T>(C[i + j * ldc]);
    res_->work.reserve(p * q);
    CUDA_CHECK_THROW(cudaMemcpyAsync(res_->work.get(), stage_.data(), sizeof(T) * stage_.size(),
                                     cudaMemcpyHostToDevice, stream()));
    cuda::gemm<T>(blas(), 'N', 'N', n, q, p, static_cast<T>(alpha), A.data, A.ld, res_->work.get(),
                  p, static_cast<T>(beta), Y.data, Y.ld);
    res_->stream.sync();
  }

  void norms(BlockView<const T> A, double* out) override {
    if (A.cols == 0) return;
    check_ld(A.rows, A.cols, A.ld, "norms");
    if (A.rows == 0) {
      for (int64_t j = 0; j < A.cols; ++j) out[j] = 0.0;
      return;
    }
    cuda::DeviceGuard guard(device_);
    res_->work.reserve(A.cols);
    // cuBLAS nrm2 scales as LAPACK does (no overflow); results stay on the device until
    // one copy brings all of them back.
    {
      cuda::DevicePointerMode mode(blas());
      for (int64_t j = 0; j < A.cols; ++j)
        cuda::nrm2<T>(blas(), A.rows, A.col(j), res_->work.get() + j);
    }
    stage_.resize(static_cast<size_t>(A.cols));
    CUDA_CHECK_THROW(cudaMemcpyAsync(stage_.data(), res_->work.get(), sizeof(T) * stage_.size(),
                                     cudaMemcpyDeviceToHost, stream()));
    res_->stream.sync();
    for (int64_t j = 0; j < A.cols; ++j) out[j] = static_cast<double>(stage_[j]);
  }

  void scale_columns(BlockView<T> A, const double* s) override {
    if (A.cols == 0 || A.rows == 0) return;
    check_ld(A.rows, A.cols, A.ld, "scale_columns");
    cuda::DeviceGuard guard(device_);
    stage_.resize(static_cast<size_t>(A.cols));
    for (int64_t j = 0; j < A.cols; ++j) stage_[j] = static_cast<T>(s[j]);
    res_->work.reserve(A.cols);
    CUDA_CHECK_THROW(cudaMemcpyAsync(res_->work.get(), stage_.data(), sizeof(T) * stage_.size(),
                                     cudaMemcpyHostToDevice, stream()));
    scale_columns_kernel<T><<<cuda::grid_2d(A.rows, A.cols), 256, 0, stream()>>>(
        A.data, A.rows, A.cols, A.ld, res_->work.get());
    CUDA_CHECK_LAUNCH();
    res_->stream.sync();
  }

  void copy(BlockView<const T> src, BlockView<T> dst) override {
    if (src.rows != dst.rows || src.cols != dst.cols)
      throw Error("CudaSpace::copy: shape mismatch");
    if (src.rows == 0 || src.cols == 0) return;
    check_ld(src.rows, src.cols, src.ld, "copy");
    check_ld(dst.rows, dst.cols, dst.ld, "copy");
    if (src.data == dst.data && (src.ld == dst.ld || src.cols == 1)) return;
    cuda::DeviceGuard guard(device_);
    const int64_t rows = src.rows, cols = src.cols;
    if (overlaps<T>(src.data, src.ld, dst.data, dst.ld, rows, cols)) {
      // cudaMemcpy2D leaves overlapping copies undefined: go through a scratch block.
      res_->work.reserve(rows * cols);
      cuda::copy_2d<T>(res_->work.get(), rows, src.data, src.ld, rows, cols,
                       cudaMemcpyDeviceToDevice, stream());
      cuda::copy_2d<T>(dst.data, dst.ld, res_->work.get(), rows, rows, cols,
                       cudaMemcpyDeviceToDevice, stream());
    } else {
      cuda::copy_2d<T>(dst.data, dst.ld, src.data, src.ld, rows, cols, cudaMemcpyDeviceToDevice,
                       stream());
    }
    res_->stream.sync();
  }

  void fill_random(BlockView<T> A, Distribution dist, uint64_t seed) override {
    if (A.rows == 0 || A.cols == 0) return;
    check_ld(A.rows, A.cols, A.ld, "fill_random");
    cuda::DeviceGuard guard(device_);
    curandGenerator_t gen = res_->rng.get();
    // Restart the Philox sequence at (seed, 0): the values depend only on seed and shape.
    CURAND_CHECK_THROW(curandSetPseudoRandomGeneratorSeed(gen, seed));
    CURAND_CHECK_THROW(curandSetGeneratorOffset(gen, 0));
    const int64_t count = A.rows * A.cols;
    if (dist == Distribution::Gaussian) {
      const int64_t even = count + (count & 1);  // Box-Muller makes pairs
      res_->work.reserve(even);
      if constexpr (std::is_same_v<T, double>) {
        CURAND_CHECK_THROW(
            curandGenerateNormalDouble(gen, res_->work.get(), static_cast<size_t>(even), 0.0, 1.0));
      } else {
        CURAND_CHECK_THROW(
            curandGenerateNormal(gen, res_->work.get(), static_cast<size_t>(even), 0.0f, 1.0f));
      }
      cuda::copy_2d<T>(A.data, A.ld, res_->work.get(), A.rows, A.rows, A.cols,
                       cudaMemcpyDeviceToDevice, stream());
    } else {
      res_->bits.reserve(count);
      CURAND_CHECK_THROW(curandGenerate(gen, res_->bits.get(), static_cast<size_t>(count)));
      rademacher_kernel<T><<<cuda::grid_2d(A.rows, A.cols), 256, 0, stream()>>>(
          A.data, A.rows, A.cols, A.ld, res_->bits.get());
      CUDA_CHECK_LAUNCH();
    }
    res_->stream.sync();
  }

  void to_host(BlockView<const T> src, T* host, int64_t ldh) override {
    if (src.rows == 0 || src.cols == 0) return;
    check_ld(src.rows, src.cols, src.ld, "to_host");
    check_ld(src.rows, src.cols, ldh, "to_host");
    cuda::DeviceGuard guard(device_);
    cuda::copy_2d<T>(host, ldh, src.data, src.ld, src.rows, src.cols, cudaMemcpyDeviceToHost,
                     stream());
    res_->stream.sync();
  }

  void from_host(const T* host, int64_t ldh, BlockView<T> dst) override {
    if (dst.rows == 0 || dst.cols == 0) return;
    check_ld(dst.rows, dst.cols, dst.ld, "from_host");
    check_ld(dst.rows, dst.cols, ldh, "from_host");
    cuda::DeviceGuard guard(device_);
    cuda::copy_2d<T>(dst.data, dst.ld, host, ldh, dst.rows, dst.cols, cudaMemcpyHostToDevice,
                     stream());
    res_->stream.sync();
  }

 private:
  // Everything that lives on the device, created and destroyed with the device current.
  // Every public operation ends with a stream synchronisation, so blocks it wrote are
  // ready for the operator (which runs on its own stream) and scratch can be reused.
  struct Resources {
    cuda::Stream stream;
    cuda::CublasHandle blas{stream.get()};
    CurandGenerator rng{stream.get()};
    cuda::DeviceBuffer<T> work;
    cuda::DeviceBuffer<unsigned> bits;
  };

  cudaStream_t stream() const { return res_->stream.get(); }
  cublasHandle_t blas() const { return res_->blas.get(); }

  int device_;
  std::unique_ptr<Resources> res_;
  std::vector<T> stage_;  // host staging for small matrices
};

}  // namespace

template <class T>
std::unique_ptr<VectorSpace<T>> make_cuda_space(int device) {
  cuda::require_device(device);
  return std::make_unique<CudaSpace<T>>(device);
}

template std::unique_ptr<VectorSpace<float>> make_cuda_space<float>(int);
template std::unique_ptr<VectorSpace<double>> make_cuda_space<double>(int);

}  // namespace hspec
