// CudaCompute, part 4: the loss head over logits z [n, out]. One thread per sample computes
// its loss term (double), gradient, curvature data and whether the prediction is right; the
// host adds the terms in sample order, as the CPU backend does, so the sum is deterministic.
// The curvature product is one thread per (direction, sample). CPU reference:
// host/backends/cpu/cpu_compute_window.cpp (loss_forward, loss_curvature).
#include <vector>

#include "cuda_compute.hpp"

namespace hspec::cuda {
namespace {

template <class T>
__global__ void loss_forward_kernel(Loss loss, const T* z, int64_t n, int64_t out,
                                    const int64_t* labels, const T* targets, T scale, T* grad,
                                    T* curv, double* sample_loss, int* right) {
  HSPEC_GRID_LOOP(i, n) {
    const T* zi = z + i * out;
    T* gi = grad + i * out;
    double l = 0;
    int ok = 0;
    if (loss == Loss::CE) {
      const int64_t y = labels[i];
      double zmax = zi[0];
      int64_t first_max = 0;  // the first maximal logit, as std::max_element
      for (int64_t o = 1; o < out; ++o) {
        if (zi[o] > zi[first_max]) first_max = o;
        zmax = fmax(zmax, double(zi[o]));
      }
      double s = 0;
      for (int64_t o = 0; o < out; ++o) s += exp(double(zi[o]) - zmax);
      l = zmax + log(s) - double(zi[y]);
      ok = first_max == y;
      for (int64_t o = 0; o < out; ++o) {
        const double p = exp(double(zi[o]) - zmax) / s;
        curv[i * out + o] = T(p);
        gi[o] = T((p - (o == y ? 1.0 : 0.0)) * double(scale));
      }
    } else if (loss == Loss::BCE) {
      const double zz = zi[0], y = double(labels[i]);
      l = fmax(zz, 0.0) - zz * y + log1p(exp(-fabs(zz)));
      ok = (zz > 0) == (y > 0.5);
      const double p = zz >= 0 ? 1.0 / (1.0 + exp(-zz)) : exp(zz) / (1.0 + exp(zz));
      curv[i] = T(p * (1.0 - p));
      gi[0] = T((p - y) * double(scale));
    } else {
      for (int64_t o = 0; o < out; ++o) {
        const double r = double(zi[o]) - double(targets[i * out + o]);
        l += r * r / double(out);
        gi[o] = T(2.0 * r * double(scale) / double(out));
      }
    }
    sample_loss[i] = l;
    right[i] = ok;
  }
}

// out = scale (d^2 l / dz^2) rz for sample i of direction r.
template <class T>
__global__ void loss_curvature_kernel(Loss loss, const T* curv, const T* rz, T* out, int64_t n,
                                      int64_t out_dim, int64_t reps, T scale) {
  HSPEC_GRID_LOOP(e, reps * n) {
    const int64_t i = e % n;
    const T* x = rz + e * out_dim;
    T* dst = out + e * out_dim;
    if (loss == Loss::CE) {
      const T* p = curv + i * out_dim;
      T pr = 0;
      for (int64_t o = 0; o < out_dim; ++o) pr += p[o] * x[o];
      for (int64_t o = 0; o < out_dim; ++o) dst[o] = (p[o] * x[o] - p[o] * pr) * scale;
    } else if (loss == Loss::BCE) {
      dst[0] = curv[i] * x[0] * scale;
    } else {
      for (int64_t o = 0; o < out_dim; ++o) dst[o] = T(2) * x[o] * scale / T(out_dim);
    }
  }
}

}  // namespace

template <class T>
double CudaCompute<T>::loss_forward(Loss loss, const T* z, int64_t n, int64_t out,
                                    const int64_t* labels, const T* targets, T scale, T* grad,
                                    T* curv, int64_t* correct) {
  *correct = 0;
  if (n <= 0) return 0.0;
  DeviceGuard guard(device_);
  sample_loss_.reserve(n);
  flags_.reserve(n);
  loss_forward_kernel<<<grid_for(n, kGraphThreads), kGraphThreads, 0, stream()>>>(
      loss, z, n, out, labels, targets, scale, grad, curv, sample_loss_.get(), flags_.get());
  CUDA_CHECK_LAUNCH();
  std::vector<double> terms(static_cast<size_t>(n));
  std::vector<int> right(static_cast<size_t>(n));
  CUDA_CHECK_THROW(cudaMemcpyAsync(terms.data(), sample_loss_.get(), sizeof(double) * size_t(n),
                                   cudaMemcpyDeviceToHost, stream()));
  CUDA_CHECK_THROW(cudaMemcpyAsync(right.data(), flags_.get(), sizeof(int) * size_t(n),
                                   cudaMemcpyDeviceToHost, stream()));
  stream_->sync();
  double sum = 0;
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    sum += terms[size_t(i)];
    count += right[size_t(i)];
  }
  *correct = count;
  return sum;
}

template <class T>
void CudaCompute<T>::loss_curvature(Loss loss, const T* curv, const T* rz, T* out, int64_t n,
                                    int64_t out_dim, int64_t reps, T scale) {
  if (n <= 0 || reps <= 0) return;
  DeviceGuard guard(device_);
  loss_curvature_kernel<<<grid_for(reps * n, kGraphThreads), kGraphThreads, 0, stream()>>>(
      loss, curv, rz, out, n, out_dim, reps, scale);
  CUDA_CHECK_LAUNCH();
}

#define HSPEC_LOSS_MEMBERS(T)                                                                    \
  template double CudaCompute<T>::loss_forward(Loss, const T*, int64_t, int64_t, const int64_t*, \
                                               const T*, T, T*, T*, int64_t*);                   \
  template void CudaCompute<T>::loss_curvature(Loss, const T*, const T*, T*, int64_t, int64_t,   \
                                               int64_t, T);
HSPEC_LOSS_MEMBERS(float)
HSPEC_LOSS_MEMBERS(double)
#undef HSPEC_LOSS_MEMBERS

}  // namespace hspec::cuda
