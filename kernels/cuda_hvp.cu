// The CUDA curvature operator: host/mlp/cpu_hvp.cpp's batched R-operator products on a device.
// The primal pass is cached per chunk on the device (or recomputed per chunk when it does not
// fit); per-direction products are strided-batched cuBLAS GEMMs, shared-weight products one
// GEMM over n * k columns, and the elementwise work is in hvp_kernels.cu.
//
// Layout (as on the CPU): activations features x samples column-major; weight [out, in]
// row-major read as Wt (in x out) column-major; the k directions stacked along the samples.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "cublas_ops.hpp"
#include "cuda_util.hpp"
#include "hspec/backends/cuda/cuda_backend.hpp"
#include "hspec/backends/cuda/cuda_check.hpp"
#include "hspec/error.hpp"
#include "hspec/mlp/cpu_hvp.hpp"
#include "hvp_kernels.hpp"
#include "row_sum_plan.hpp"

namespace hspec {
namespace {

using cuda::DeviceBuffer;

using cuda::upload;

template <class T, class S>
std::vector<T> converted(const std::vector<S>& v) {
  return std::vector<T>(v.begin(), v.end());
}

template <class T>
class CudaCurvatureOperator final : public CudaCurvature<T> {
 public:
  CudaCurvatureOperator(const Model& model, const Dataset& data, const CudaOperatorOptions& opt);
  ~CudaCurvatureOperator() override {
    cuda::DeviceGuard guard(device_, std::nothrow);
    res_.reset();
  }

  int64_t dim() const override { return num_params_; }
  int64_t max_block() const override { return opt_.max_block; }
  Where where() const override { return Where::Device; }
  void apply(BlockView<const T> X, BlockView<T> Y) override;
  double loss_value() const override { return loss_; }
  const std::vector<double>& gradient() const override { return grad_; }
  double grad_norm() const override {
    double s = 0;
    for (double v : grad_) s += v * v;
    return std::sqrt(s);
  }

 private:
  // The cached primal pass of samples [first, first + n), as in CpuCurvatureOperator.
  struct Chunk {
    int64_t first = 0, n = 0;
    std::vector<DeviceBuffer<T>> x;     // x[l]: input of layer l >= 1 (x[0] unused)
    std::vector<DeviceBuffer<T>> dphi;  // per hidden layer: phi'(A)
    std::vector<DeviceBuffer<T>> s;     // per hidden layer: phi''(A) * dL/dX (Hessian only)
    std::vector<DeviceBuffer<T>> g;     // per layer: dL/dA
    DeviceBuffer<T> out_curv;           // ce: softmax probabilities; bce: p(1-p)
  };
  // Everything on the device, created and destroyed with the device current.
  struct Resources {
    cuda::Stream stream;
    cuda::CublasHandle blas{stream.get()};
    DeviceBuffer<T> inputs;                      // d x N
    DeviceBuffer<int64_t> labels;                // N (ce, bce)
    DeviceBuffer<T> targets;                     // out x N (mse)
    std::vector<DeviceBuffer<T>> wt, bias;       // per layer
    std::vector<DeviceBuffer<T>> ra, rx;         // tangent buffers: out_l x chunk k, in_l x chunk k
    DeviceBuffer<T> rg, rd;                      // widest x chunk k; primal scratch too
    DeviceBuffer<double> grad;                   // the gradient, accumulated in double
    DeviceBuffer<double> row_sums;               // bias row sums' slice sums (pass 1)
    DeviceBuffer<double> sample_loss;            // chunk
    DeviceBuffer<unsigned long long> bad;        // first non-finite entry of a product
    std::vector<std::unique_ptr<Chunk>> chunks;  // all chunks when cached, else one scratch
  };

  cudaStream_t stream() const { return res_->stream.get(); }
  cublasHandle_t blas() const { return res_->blas.get(); }
  const T* input(const Chunk& c, size_t l) const {
    return l == 0 ? res_->inputs.get() + c.first * model_.input_dim() : c.x[l].get();
  }
  void setup(const Dataset& data, const CudaOperatorOptions& opt);
  std::unique_ptr<Chunk> make_chunk(int64_t capacity) const;
  void primal(int64_t first, int64_t n, Chunk& c, bool accumulate, T* gw);
  void tangent(const Chunk& c, BlockView<const T> X, BlockView<T> Y);

  Model model_;
  CpuOperatorOptions opt_;
  int device_ = 0;
  bool hessian_ = true;
  int64_t num_params_ = 0;
  int64_t n_ = 0;
  int64_t chunk_ = 0;
  bool cache_all_ = true;
  std::vector<int64_t> offset_;  // per layer: offset of the weight in the flat vector
  std::unique_ptr<Resources> res_;
  double loss_ = 0;
  std::vector<double> grad_;
};

template <class T>
CudaCurvatureOperator<T>::CudaCurvatureOperator(const Model& model, const Dataset& data,
                                                const CudaOperatorOptions& opt)
    : model_(model), opt_(opt.base), device_(opt.device) {
  // The data were checked against the model on the host (make_cuda_operator).
  if (opt_.max_block < 1) throw UsageError("block size must be at least 1");
  cuda::require_device(device_);
  cuda::DeviceGuard guard(device_);
  try {
    setup(data, opt);
  } catch (...) {
    res_.reset();  // free device memory while the device is current
    throw;
  }
}

template <class T>
void CudaCurvatureOperator<T>::setup(const Dataset& data, const CudaOperatorOptions& opt) {
  const Model& model = model_;
  hessian_ = opt_.curvature == Curvature::Hessian;
  num_params_ = 0;
  for (const Layer& ly : model.layers) num_params_ += ly.num_params();
  n_ = data.n;
  const size_t L = model.layers.size();
  const int64_t out = model.output_dim();

  res_ = std::make_unique<Resources>();
  Resources& r = *res_;
  if (std::is_same_v<T, float> && opt.tf32)
    CUBLAS_CHECK_THROW(cublasSetMathMode(blas(), CUBLAS_TF32_TENSOR_OP_MATH));

  // Data and weights live on the device for the whole run.
  if constexpr (std::is_same_v<T, float>) {
    r.inputs = upload(data.inputs, stream());
  } else {
    r.inputs = upload(converted<T>(data.inputs), stream());
  }
  if (opt_.loss == Loss::MSE) {
    r.targets = upload(converted<T>(data.targets), stream());
  } else {
    r.labels = upload(data.labels, stream());
  }
  int64_t off = 0;
  for (const Layer& ly : model.layers) {
    // weight [out, in] row-major is already Wt (in x out) column-major.
    r.wt.push_back(upload(converted<T>(ly.weight), stream()));
    r.bias.push_back(upload(converted<T>(ly.bias), stream()));
    offset_.push_back(off);
    off += ly.num_params();
  }
  res_->stream.sync();  // the host vectors above are temporaries

  // Memory per sample, counted as on the CPU: cached primal (x, dphi, s, g per hidden width,
  // g and curvature at the output) and tangent buffers (ra, rx, two scratch of the widest).
  int64_t hidden = 0, widest = model.input_dim();
  for (size_t l = 0; l < L; ++l) {
    widest = std::max(widest, model.layers[l].out);
    if (l + 1 < L) hidden += model.layers[l].out;
  }
  const uint64_t primal_per_sample = sizeof(T) * static_cast<uint64_t>(4 * hidden + 2 * out);
  const uint64_t tangent_per_sample = sizeof(T) * static_cast<uint64_t>(opt_.max_block) *
                                      static_cast<uint64_t>(2 * hidden + out + 2 * widest);
  uint64_t budget = opt.max_memory;
  if (budget == 0) {
    size_t free_bytes = 0, total_bytes = 0;
    CUDA_CHECK_THROW(cudaMemGetInfo(&free_bytes, &total_bytes));
    budget = static_cast<uint64_t>(0.6 * static_cast<double>(free_bytes));  // rest: solver
  }
  if (opt_.chunk > 0) {
    chunk_ = std::min(opt_.chunk, n_);
  } else {
    chunk_ = static_cast<int64_t>(std::max<uint64_t>(1, budget / 4 / tangent_per_sample));
    chunk_ = std::min<int64_t>(chunk_, n_);
  }
  cache_all_ = primal_per_sample * static_cast<uint64_t>(n_) <= budget / 2;

  const int64_t cols = chunk_ * opt_.max_block;
  for (size_t l = 0; l < L; ++l) {
    r.ra.emplace_back(model.layers[l].out * cols);
    r.rx.emplace_back(l == 0 ? 0 : model.layers[l].in * cols);
  }
  r.rg = DeviceBuffer<T>(widest * cols);
  r.rd = DeviceBuffer<T>(widest * cols);
  r.sample_loss = DeviceBuffer<double>(chunk_);
  // The bias row sums split a chunk's samples across blocks; their slice sums need room
  // for the widest layer and any block width up to max_block.
  int64_t row_sum_doubles = 0;
  for (const Layer& ly : model.layers)
    for (int64_t k = 1; k <= opt_.max_block; ++k)
      row_sum_doubles = std::max(row_sum_doubles, cuda::row_sum_scratch(ly.out, chunk_, k));
  r.row_sums = DeviceBuffer<double>(row_sum_doubles);
  r.bad = DeviceBuffer<unsigned long long>(1);
  r.grad = DeviceBuffer<double>(num_params_);
  CUDA_CHECK_THROW(cudaMemsetAsync(r.grad.get(), 0, sizeof(double) * num_params_, stream()));

  int64_t widest_weight = 0;
  for (const Layer& ly : model.layers) widest_weight = std::max(widest_weight, ly.in * ly.out);
  DeviceBuffer<T> gw(widest_weight);  // gradient scratch, construction only

  loss_ = 0;
  const int64_t nchunks = (n_ + chunk_ - 1) / chunk_;
  if (!cache_all_) r.chunks.push_back(make_chunk(chunk_));
  for (int64_t c = 0; c < nchunks; ++c) {
    const int64_t first = c * chunk_, count = std::min(chunk_, n_ - first);
    if (cache_all_) r.chunks.push_back(make_chunk(count));
    primal(first, count, *r.chunks.back(), true, gw.get());
  }
  grad_.assign(static_cast<size_t>(num_params_), 0.0);
  CUDA_CHECK_THROW(cudaMemcpyAsync(grad_.data(), r.grad.get(), sizeof(double) * grad_.size(),
                                   cudaMemcpyDeviceToHost, stream()));
  res_->stream.sync();
  for (double v : grad_)
    if (!std::isfinite(v)) throw NumericalError("the gradient at the checkpoint is not finite");
  if (!std::isfinite(loss_)) throw NumericalError("the loss at the checkpoint is not finite");
}

template <class T>
std::unique_ptr<typename CudaCurvatureOperator<T>::Chunk> CudaCurvatureOperator<T>::make_chunk(
    int64_t capacity) const {
  const size_t L = model_.layers.size();
  auto c = std::make_unique<Chunk>();
  c->x.resize(L);
  c->dphi.resize(L);
  c->s.resize(L);
  c->g.resize(L);
  for (size_t l = 0; l < L; ++l) {
    const int64_t rows = model_.layers[l].out;
    c->g[l] = DeviceBuffer<T>(rows * capacity);
    if (l + 1 == L) break;
    c->x[l + 1] = DeviceBuffer<T>(rows * capacity);
    c->dphi[l] = DeviceBuffer<T>(rows * capacity);
    if (hessian_) c->s[l] = DeviceBuffer<T>(rows * capacity);
  }
  const int64_t out = model_.output_dim();
  if (opt_.loss == Loss::CE) c->out_curv = DeviceBuffer<T>(out * capacity);
  if (opt_.loss == Loss::BCE) c->out_curv = DeviceBuffer<T>(capacity);
  return c;
}

template <class T>
void CudaCurvatureOperator<T>::primal(int64_t first, int64_t n, Chunk& c, bool accumulate, T* gw) {
  const size_t L = model_.layers.size();
  Resources& r = *res_;
  c.first = first;
  c.n = n;
  // Forward: A_l = W_l X_{l-1} + b_l into scratch rg; X_l = phi(A_l), phi'(A_l), phi''(A_l)
  // (phi'' goes into s, which the backward pass scales by dL/dX).
  T* a = r.rg.get();
  for (size_t l = 0; l < L; ++l) {
    const Layer& ly = model_.layers[l];
    cuda::broadcast_columns<T>(a, ly.out, n, 1, ly.has_bias ? r.bias[l].get() : nullptr, 0,
                               stream());
    cuda::gemm<T>(blas(), 'T', 'N', ly.out, n, ly.in, T(1), r.wt[l].get(), ly.in, input(c, l),
                  ly.in, T(1), a, ly.out);
    if (l + 1 == L) break;
    cuda::activation_forward<T>(model_.activation, a, ly.out * n, c.x[l + 1].get(), c.dphi[l].get(),
                                hessian_ ? c.s[l].get() : nullptr, stream());
  }

  // Output layer: per-sample loss, dL/dZ and what the output curvature needs.
  const int64_t out = model_.output_dim();
  const double inv_n = 1.0 / static_cast<double>(n_);
  cuda::output_primal<T>(opt_.loss, a, out, n,
                         opt_.loss == Loss::MSE ? nullptr : r.labels.get() + first,
                         opt_.loss == Loss::MSE ? r.targets.get() + first * out : nullptr, inv_n,
                         c.g[L - 1].get(), c.out_curv.get(), r.sample_loss.get(), stream());

  // Backward: g[l-1] = phi'(A) * (W_l^T g[l]); s[l-1] = phi''(A) * (W_l^T g[l]).
  T* dx = r.rd.get();
  for (size_t l = L - 1; l >= 1; --l) {
    const Layer& ly = model_.layers[l];
    cuda::gemm<T>(blas(), 'N', 'N', ly.in, n, ly.out, T(1), r.wt[l].get(), ly.in, c.g[l].get(),
                  ly.out, T(0), dx, ly.in);
    cuda::backward_primal<T>(c.dphi[l - 1].get(), dx, ly.in * n, c.g[l - 1].get(),
                             hessian_ ? c.s[l - 1].get() : nullptr, stream());
  }
  if (!accumulate) return;

  // Mean loss, summed on the host in sample order like the CPU.
  std::vector<double> sample_loss(static_cast<size_t>(n));
  CUDA_CHECK_THROW(cudaMemcpyAsync(sample_loss.data(), r.sample_loss.get(), sizeof(double) * n,
                                   cudaMemcpyDeviceToHost, stream()));
  // Gradient: dWt_l = X_{l-1} g_l^T (in x out), db_l = g_l 1, accumulated in double.
  for (size_t l = 0; l < L; ++l) {
    const Layer& ly = model_.layers[l];
    cuda::gemm<T>(blas(), 'N', 'T', ly.in, ly.out, n, T(1), input(c, l), ly.in, c.g[l].get(),
                  ly.out, T(0), gw, ly.in);
    double* gr = r.grad.get() + offset_[l];
    cuda::accumulate_double<T>(gr, gw, ly.in * ly.out, stream());
    if (ly.has_bias)
      cuda::bias_row_sums<T, double>(c.g[l].get(), ly.out, n, 1, gr + ly.in * ly.out, 0,
                                     r.row_sums.get(), r.row_sums.size(), stream());
  }
  res_->stream.sync();
  double loss_sum = 0;
  for (double v : sample_loss) loss_sum += v;
  loss_ += loss_sum * inv_n;
}

template <class T>
void CudaCurvatureOperator<T>::apply(BlockView<const T> X, BlockView<T> Y) {
  if (X.rows != num_params_ || Y.rows != num_params_ || X.cols != Y.cols)
    throw Error("CudaCurvatureOperator::apply: block shape mismatch");
  if (X.cols > opt_.max_block) throw Error("CudaCurvatureOperator::apply: block wider than max");
  if ((X.cols > 1 && X.ld < X.rows) || (Y.cols > 1 && Y.ld < Y.rows))
    throw Error("CudaCurvatureOperator::apply: leading dimension below dim()");
  const int64_t k = X.cols;
  if (k == 0) return;
  cuda::DeviceGuard guard(device_);
  Resources& r = *res_;
  cuda::zero_block<T>(Y.data, num_params_, k, Y.ld, stream());
  if (cache_all_) {
    for (const auto& c : r.chunks) tangent(*c, X, Y);
  } else {
    Chunk& c = *r.chunks.front();
    for (int64_t first = 0; first < n_; first += chunk_) {
      primal(first, std::min(chunk_, n_ - first), c, false, nullptr);
      tangent(c, X, Y);
    }
  }
  // NaN/Inf anywhere in the product: the first offending entry, found on the device.
  CUDA_CHECK_THROW(cudaMemsetAsync(r.bad.get(), 0xff, sizeof(unsigned long long), stream()));
  cuda::find_nonfinite<T>(Y.data, num_params_, k, Y.ld, r.bad.get(), stream());
  unsigned long long bad = 0;
  CUDA_CHECK_THROW(
      cudaMemcpyAsync(&bad, r.bad.get(), sizeof(bad), cudaMemcpyDeviceToHost, stream()));
  res_->stream.sync();
  if (bad != ~0ull) {
    throw NumericalError("a curvature-vector product produced NaN/Inf (parameter " +
                         std::to_string(static_cast<int64_t>(bad % num_params_)) + ")");
  }
  this->count_products(k);
}

template <class T>
void CudaCurvatureOperator<T>::tangent(const Chunk& c, BlockView<const T> X, BlockView<T> Y) {
  const size_t L = model_.layers.size();
  const int64_t n = c.n, k = X.cols, nk = n * k;
  Resources& r = *res_;

  // Tangent forward: RA_l = c_l + W_l RX_{l-1} + V_l X_{l-1}, RX_l = phi'(A_l) * RA_l.
  for (size_t l = 0; l < L; ++l) {
    const Layer& ly = model_.layers[l];
    const T* v = X.data + offset_[l];  // direction j's V_l: v + j * X.ld, in x out (ld in)
    T* ra = r.ra[l].get();
    cuda::broadcast_columns<T>(ra, ly.out, n, k, ly.has_bias ? v + ly.in * ly.out : nullptr, X.ld,
                               stream());
    if (l > 0)
      cuda::gemm<T>(blas(), 'T', 'N', ly.out, nk, ly.in, T(1), r.wt[l].get(), ly.in, r.rx[l].get(),
                    ly.in, T(1), ra, ly.out);
    cuda::gemm_batched<T>(blas(), 'T', 'N', ly.out, n, ly.in, T(1), v, ly.in, X.ld, input(c, l),
                          ly.in, 0, T(1), ra, ly.out, ly.out * n, k);
    if (l + 1 < L)
      cuda::scale_repeated<T>(c.dphi[l].get(), ra, ly.out * n, k, r.rx[l + 1].get(), stream());
  }

  // Output curvature: RG_L = (d^2 loss / dZ^2) RZ per sample.
  const int64_t out = model_.output_dim();
  const T inv_n = T(1.0 / static_cast<double>(n_));
  const T mse_scale = T(2.0 / (static_cast<double>(n_) * static_cast<double>(out)));
  T* rg = r.rg.get();
  T* rd = r.rd.get();
  cuda::output_curvature<T>(opt_.loss, r.ra[L - 1].get(), c.out_curv.get(), out, n, k, inv_n,
                            mse_scale, rg, stream());

  // Second-order backward.
  for (size_t l = L; l-- > 0;) {
    const Layer& ly = model_.layers[l];
    T* yw = Y.data + offset_[l];  // direction j's weight part: yw + j * Y.ld, in x out
    // R(dWt) = X_{l-1} RG^T (+ RX_{l-1} G^T for the Hessian), one GEMM per direction.
    cuda::gemm_batched<T>(blas(), 'N', 'T', ly.in, ly.out, n, T(1), input(c, l), ly.in, 0, rg,
                          ly.out, ly.out * n, T(1), yw, ly.in, Y.ld, k);
    if (hessian_ && l > 0)
      cuda::gemm_batched<T>(blas(), 'N', 'T', ly.in, ly.out, n, T(1), r.rx[l].get(), ly.in,
                            ly.in * n, c.g[l].get(), ly.out, 0, T(1), yw, ly.in, Y.ld, k);
    if (ly.has_bias)
      cuda::bias_row_sums<T, T>(rg, ly.out, n, k, yw + ly.in * ly.out, Y.ld, r.row_sums.get(),
                                r.row_sums.size(), stream());
    if (l == 0) break;
    // R(dL/dX_{l-1}) = W_l^T RG (+ V_l^T G for the Hessian).
    cuda::gemm<T>(blas(), 'N', 'N', ly.in, nk, ly.out, T(1), r.wt[l].get(), ly.in, rg, ly.out, T(0),
                  rd, ly.in);
    if (hessian_)
      cuda::gemm_batched<T>(blas(), 'N', 'N', ly.in, n, ly.out, T(1), X.data + offset_[l], ly.in,
                            X.ld, c.g[l].get(), ly.out, 0, T(1), rd, ly.in, ly.in * n, k);
    // RG_{l-1} = phi'(A) * RD (+ phi''(A) * dL/dX * RA for the Hessian).
    cuda::second_order_input<T>(c.dphi[l - 1].get(), hessian_ ? c.s[l - 1].get() : nullptr, rd,
                                r.ra[l - 1].get(), ly.in * n, k, rg, stream());
  }
}

}  // namespace

template <class T>
std::unique_ptr<CudaCurvature<T>> detail::make_checked_cuda_operator(
    const Model& model, const Dataset& data, const CudaOperatorOptions& opt) {
  return std::make_unique<CudaCurvatureOperator<T>>(model, data, opt);
}

template std::unique_ptr<CudaCurvature<float>> detail::make_checked_cuda_operator<float>(
    const Model&, const Dataset&, const CudaOperatorOptions&);
template std::unique_ptr<CudaCurvature<double>> detail::make_checked_cuda_operator<double>(
    const Model&, const Dataset&, const CudaOperatorOptions&);

}  // namespace hspec
