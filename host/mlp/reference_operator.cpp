// MlpReferenceOperator (reference_operator.hpp): the R-operator (forward-over-reverse) for a
// Linear/activation chain, batched over k directions so the products are BLAS GEMMs; the
// primal pass is cached per chunk of samples once per run (or recomputed per chunk when the
// cache would not fit).
//
// Layout: activations are column-major features x samples; a layer's weight W [out, in]
// row-major is, read column-major, Wt = W^T (in x out). The k directions of a block are
// stacked along the sample axis: a tangent buffer is features x (n * k).
#include "hspec/mlp/reference_operator.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "../backends/cpu/tangent_passes.hpp"
#include "hspec/backends/cpu/blas.hpp"
#include "hspec/error.hpp"
#include "hspec/mlp/activation_math.hpp"

namespace hspec {

template <class T>
struct MlpReferenceOperator<T>::Chunk {
  int64_t first = 0, n = 0;
  std::vector<std::vector<T>> x;     // x[l]: input of layer l (x[0] points into inputs_)
  std::vector<std::vector<T>> dphi;  // per hidden layer: phi'(A)
  std::vector<std::vector<T>> s;     // per hidden layer: phi''(A) * dL/dX (Hessian only)
  std::vector<std::vector<T>> g;     // per layer: dL/dA
  std::vector<T> out_curv;           // ce: softmax probabilities; bce: p(1-p)
  const T* input(const MlpReferenceOperator& op, size_t l) const {
    return l == 0 ? op.inputs_.data() + first * op.model_.input_dim() : x[l].data();
  }
};

template <class T>
MlpReferenceOperator<T>::MlpReferenceOperator(const Model& model, const Dataset& data,
                                              const MlpReferenceOptions& opt)
    : model_(model), opt_(opt) {
  check_data_fits(model, data, opt.loss);
  if (opt_.max_block < 1) throw UsageError("block size must be at least 1");
  num_params_ = model.num_params();
  n_ = data.n;
  const size_t L = model.layers.size();
  inputs_.assign(data.inputs.begin(), data.inputs.end());
  labels_ = data.labels;
  targets_.assign(data.targets.begin(), data.targets.end());
  int64_t off = 0;
  for (const Layer& ly : model.layers) {
    // weight [out, in] row-major is already Wt (in x out) column-major.
    wt_.emplace_back(ly.weight.begin(), ly.weight.end());
    bias_.emplace_back(ly.bias.begin(), ly.bias.end());
    offset_.push_back(off);
    off += ly.num_params();
  }

  // Memory per sample: cached primal (x, dphi, s, g per hidden width, g and curvature at the
  // output) and tangent buffers (two per hidden width, one at the output, two scratch).
  int64_t hidden = 0, widest = model.input_dim();
  for (size_t l = 0; l < L; ++l) {
    widest = std::max(widest, model.layers[l].out);
    if (l + 1 < L) hidden += model.layers[l].out;
  }
  const int64_t out = model.output_dim();
  const uint64_t primal_per_sample = sizeof(T) * static_cast<uint64_t>(4 * hidden + 2 * out);
  const uint64_t tangent_per_sample = sizeof(T) * static_cast<uint64_t>(opt_.max_block) *
                                      static_cast<uint64_t>(2 * hidden + out + 2 * widest);
  if (opt_.chunk > 0) {
    chunk_ = std::min(opt_.chunk, n_);
  } else {
    const uint64_t budget_tangent = opt_.memory_budget / 4;
    chunk_ = static_cast<int64_t>(std::max<uint64_t>(1, budget_tangent / tangent_per_sample));
    chunk_ = std::min<int64_t>(std::min<int64_t>(chunk_, 4096), n_);
  }
  cache_all_ = primal_per_sample * static_cast<uint64_t>(n_) <= opt_.memory_budget / 2;

  grad_.assign(static_cast<size_t>(num_params_), 0.0);
  loss_ = 0;
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
MlpReferenceOperator<T>::~MlpReferenceOperator() = default;

template <class T>
void MlpReferenceOperator<T>::primal(int64_t first, int64_t n, Chunk& c, bool accumulate) {
  const size_t L = model_.layers.size();
  const Activation act = model_.activation;
  const bool hessian = opt_.curvature == Curvature::Hessian;
  c.first = first;
  c.n = n;
  c.x.resize(L);
  c.dphi.resize(L);
  c.s.resize(L);
  c.g.resize(L);
  std::vector<T> a;
  std::vector<std::vector<T>> d2(L);  // phi''(A) until the backward pass turns it into s
  for (size_t l = 0; l < L; ++l) {
    const Layer& ly = model_.layers[l];
    a.assign(static_cast<size_t>(ly.out * n), T(0));
    for (int64_t i = 0; i < n && ly.has_bias; ++i)
      std::copy(bias_[l].begin(), bias_[l].end(), a.begin() + i * ly.out);
    blas::gemm('T', 'N', ly.out, n, ly.in, T(1), wt_[l].data(), ly.in, c.input(*this, l), ly.in,
               T(1), a.data(), ly.out);
    if (l + 1 == L) break;
    std::vector<T>& xn = c.x[l + 1];
    xn.resize(a.size());
    c.dphi[l].resize(a.size());
    if (hessian) d2[l].resize(a.size());
    const int64_t size = static_cast<int64_t>(a.size());
    HSPEC_PARALLEL_FOR_IF(size >= 1 << 15)
    for (int64_t i = 0; i < size; ++i) {
      const ActValues<T> v = activation_values(act, a[i]);
      xn[i] = v.f;
      c.dphi[l][i] = v.d1;
      if (hessian) d2[l][i] = v.d2;
    }
  }

  // Output layer: per-sample loss, dL/dZ and what the output curvature needs.
  const int64_t out = model_.output_dim();
  std::vector<T>& g = c.g[L - 1];
  g.assign(a.size(), T(0));
  c.out_curv.assign(opt_.loss == Loss::MSE ? 0 : a.size(), T(0));
  const double inv_n = 1.0 / static_cast<double>(n_);
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T* z = a.data() + i * out;
    T* gi = g.data() + i * out;
    if (opt_.loss == Loss::CE) {
      const int64_t y = labels_[first + i];
      double zmax = z[0];
      for (int64_t o = 1; o < out; ++o) zmax = std::max(zmax, static_cast<double>(z[o]));
      double sum = 0;
      for (int64_t o = 0; o < out; ++o) sum += std::exp(static_cast<double>(z[o]) - zmax);
      loss_sum += zmax + std::log(sum) - static_cast<double>(z[y]);
      correct += std::max_element(z, z + out) - z == y ? 1 : 0;
      for (int64_t o = 0; o < out; ++o) {
        const double p = std::exp(static_cast<double>(z[o]) - zmax) / sum;
        c.out_curv[i * out + o] = static_cast<T>(p);
        gi[o] = static_cast<T>((p - (o == y ? 1.0 : 0.0)) * inv_n);
      }
    } else if (opt_.loss == Loss::BCE) {
      const double zz = z[0], y = static_cast<double>(labels_[first + i]);
      loss_sum += std::max(zz, 0.0) - zz * y + std::log1p(std::exp(-std::fabs(zz)));
      correct += (zz > 0) == (y > 0.5) ? 1 : 0;
      const double p = zz >= 0 ? 1.0 / (1.0 + std::exp(-zz)) : std::exp(zz) / (1.0 + std::exp(zz));
      c.out_curv[i] = static_cast<T>(p * (1.0 - p));
      gi[0] = static_cast<T>((p - y) * inv_n);
    } else {
      const double scale = 2.0 * inv_n / static_cast<double>(out);
      for (int64_t o = 0; o < out; ++o) {
        const double r =
            static_cast<double>(z[o]) - static_cast<double>(targets_[(first + i) * out + o]);
        loss_sum += r * r / static_cast<double>(out);
        gi[o] = static_cast<T>(scale * r);
      }
    }
  }

  // Backward: g[l] = phi'(A_l) * (W_{l+1}^T g[l+1]); s[l] = phi''(A_l) * (W_{l+1}^T g[l+1]).
  std::vector<T> dx;
  for (size_t l = L - 1; l >= 1; --l) {
    const Layer& ly = model_.layers[l];
    dx.assign(static_cast<size_t>(ly.in * n), T(0));
    blas::gemm('N', 'N', ly.in, n, ly.out, T(1), wt_[l].data(), ly.in, c.g[l].data(), ly.out, T(0),
               dx.data(), ly.in);
    c.g[l - 1].resize(dx.size());
    for (size_t i = 0; i < dx.size(); ++i) c.g[l - 1][i] = c.dphi[l - 1][i] * dx[i];
    if (hessian) {
      c.s[l - 1].resize(dx.size());
      for (size_t i = 0; i < dx.size(); ++i) c.s[l - 1][i] = d2[l - 1][i] * dx[i];
    }
  }

  if (!accumulate) return;
  loss_ += loss_sum * inv_n;
  correct_ += correct;
  // Gradient: dWt_l = X_{l-1} g_l^T (in x out), db_l = g_l 1.
  for (size_t l = 0; l < L; ++l) {
    const Layer& ly = model_.layers[l];
    std::vector<T> gw(static_cast<size_t>(ly.in * ly.out));
    blas::gemm('N', 'T', ly.in, ly.out, n, T(1), c.input(*this, l), ly.in, c.g[l].data(), ly.out,
               T(0), gw.data(), ly.in);
    double* gr = grad_.data() + offset_[l];
    for (size_t i = 0; i < gw.size(); ++i) gr[i] += static_cast<double>(gw[i]);
    if (ly.has_bias) {
      for (int64_t i = 0; i < n; ++i)
        for (int64_t o = 0; o < ly.out; ++o)
          gr[ly.in * ly.out + o] += static_cast<double>(c.g[l][i * ly.out + o]);
    }
  }
}

template <class T>
void MlpReferenceOperator<T>::apply(BlockView<const T> X, BlockView<T> Y) {
  if (X.rows != num_params_ || Y.rows != num_params_ || X.cols != Y.cols)
    throw Error("MlpReferenceOperator::apply: block shape mismatch");
  if (X.cols > opt_.max_block) throw Error("MlpReferenceOperator::apply: block wider than max");
  for (int64_t j = 0; j < Y.cols; ++j) std::fill(Y.col(j), Y.col(j) + num_params_, T(0));
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
    for (int64_t i = 0; i < num_params_; ++i)
      if (!std::isfinite(Y.col(j)[i]))
        throw NumericalError("a curvature-vector product produced NaN/Inf (parameter " +
                             std::to_string(i) + ")");
  this->count_products(X.cols);
}

template <class T>
void MlpReferenceOperator<T>::tangent(const Chunk& c, BlockView<const T> X, BlockView<T> Y) {
  const size_t L = model_.layers.size();
  const int64_t n = c.n, k = X.cols, nk = n * k;
  const bool hessian = opt_.curvature == Curvature::Hessian;
  // Scratch kept across calls: reallocating (and page-faulting) tens of MB per product
  // showed up as system time in the benchmark. rx[l] is the tangent of layer l's input.
  std::vector<std::vector<T>>& ra = scratch_ra_;
  std::vector<std::vector<T>>& rx = scratch_rx_;
  ra.resize(L);
  rx.resize(L);

  // The bias part of direction j in layer l (null without a bias): tangent input c_l, and
  // where its gradient goes.
  std::vector<const T*> bias_in(static_cast<size_t>(k));
  std::vector<T*> bias_out(static_cast<size_t>(k));
  auto point_at_biases = [&](size_t l) {
    const Layer& ly = model_.layers[l];
    for (int64_t j = 0; j < k; ++j) {
      const int64_t at = offset_[l] + ly.in * ly.out;
      bias_in[j] = ly.has_bias ? X.col(j) + at : nullptr;
      bias_out[j] = ly.has_bias ? Y.col(j) + at : nullptr;
    }
  };

  // Tangent forward: RA_l = W_l RX_{l-1} + V_l X_{l-1} + c_l, RX_l = phi'(A_l) * RA_l.
  for (size_t l = 0; l < L; ++l) {
    const Layer& ly = model_.layers[l];
    const T* xin = c.input(*this, l);
    ra[l].resize(static_cast<size_t>(ly.out * nk));
    if (l > 0)
      blas::gemm('T', 'N', ly.out, nk, ly.in, T(1), wt_[l].data(), ly.in, rx[l].data(), ly.in, T(0),
                 ra[l].data(), ly.out);
    const T beta = l > 0 ? T(1) : T(0);  // the first layer's input has no tangent
    for (int64_t j = 0; j < k; ++j)
      blas::gemm('T', 'N', ly.out, n, ly.in, T(1), X.col(j) + offset_[l], ly.in, xin, ly.in, beta,
                 ra[l].data() + j * ly.out * n, ly.out);
    point_at_biases(l);
    T* next = nullptr;
    if (l + 1 < L) {
      rx[l + 1].resize(ra[l].size());
      next = rx[l + 1].data();
    }
    cpu::forward_epilogue(ra[l].data(), next, l + 1 < L ? c.dphi[l].data() : nullptr, bias_in,
                          ly.out, n);
  }

  // Output curvature: RG_L = (d^2 loss / dZ^2) RZ per sample.
  const int64_t out = model_.output_dim();
  std::vector<T>& rg = scratch_rg_;
  rg.resize(ra[L - 1].size());
  const T inv_n = T(1.0 / static_cast<double>(n_));
  HSPEC_PARALLEL_FOR_IF(nk * out >= 1 << 15)
  for (int64_t col = 0; col < nk; ++col) {
    const int64_t i = col % n;
    const T* r = ra[L - 1].data() + col * out;
    T* dst = rg.data() + col * out;
    if (opt_.loss == Loss::CE) {
      const T* p = c.out_curv.data() + i * out;
      T pr = 0;
      for (int64_t o = 0; o < out; ++o) pr += p[o] * r[o];
      for (int64_t o = 0; o < out; ++o) dst[o] = (p[o] * r[o] - p[o] * pr) * inv_n;
    } else if (opt_.loss == Loss::BCE) {
      dst[0] = c.out_curv[i] * r[0] * inv_n;
    } else {
      const T scale = T(2.0 / (static_cast<double>(n_) * static_cast<double>(out)));
      for (int64_t o = 0; o < out; ++o) dst[o] = scale * r[o];
    }
  }
  point_at_biases(L - 1);
  cpu::add_column_sums(rg.data(), bias_out, out, n);

  // Second-order backward; each layer's bias gradient (the sum of its RG over the samples)
  // was added when that RG was made.
  std::vector<T>& rd = scratch_rd_;
  for (size_t l = L; l-- > 0;) {
    const Layer& ly = model_.layers[l];
    const T* xin = c.input(*this, l);
    for (int64_t j = 0; j < k; ++j) {
      T* yw = Y.col(j) + offset_[l];
      // R(dWt) = X_{l-1} RG^T (+ RX_{l-1} G^T for the Hessian).
      blas::gemm('N', 'T', ly.in, ly.out, n, T(1), xin, ly.in, rg.data() + j * ly.out * n, ly.out,
                 T(1), yw, ly.in);
      if (hessian && l > 0)
        blas::gemm('N', 'T', ly.in, ly.out, n, T(1), rx[l].data() + j * ly.in * n, ly.in,
                   c.g[l].data(), ly.out, T(1), yw, ly.in);
    }
    if (l == 0) break;
    // R(dL/dX_{l-1}) = W_l^T RG (+ V_l^T G for the Hessian).
    rd.resize(static_cast<size_t>(ly.in * nk));
    blas::gemm('N', 'N', ly.in, nk, ly.out, T(1), wt_[l].data(), ly.in, rg.data(), ly.out, T(0),
               rd.data(), ly.in);
    if (hessian)
      for (int64_t j = 0; j < k; ++j)
        blas::gemm('N', 'N', ly.in, n, ly.out, T(1), X.col(j) + offset_[l], ly.in, c.g[l].data(),
                   ly.out, T(1), rd.data() + j * ly.in * n, ly.in);
    // RG_{l-1} = phi'(A) * RD (+ phi''(A) * dL/dX * RA for the Hessian).
    rg.resize(rd.size());
    point_at_biases(l - 1);
    cpu::backward_epilogue(rg.data(), rd.data(), c.dphi[l - 1].data(),
                           hessian ? c.s[l - 1].data() : nullptr, ra[l - 1].data(), bias_out, ly.in,
                           n);
  }
}

template class MlpReferenceOperator<float>;
template class MlpReferenceOperator<double>;

}  // namespace hspec
