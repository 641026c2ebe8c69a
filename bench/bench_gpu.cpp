// GPU benchmark of batched Hessian-vector products on the DESIGN.md workloads (full size):
// checks the products against the fp64 operator first (fp32 and tf32 relative errors),
// then times them at block sizes 1, 4, 16, 64 (median after warm-up; apply() returns after
// the device has finished) and prints one JSON line per (workload, precision, block) with
// the fraction of the card's measured fp32 GEMM rate that 12 N P flops per HVP represent.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "hspec/cuda_backend.hpp"
#include "hspec/device.hpp"
#include "hspec/random.hpp"
#include "hspec/workloads.hpp"

namespace {

using Clock = std::chrono::steady_clock;

template <class T>
std::vector<T> products(hspec::CudaCurvature<T>& op, hspec::VectorSpace<T>& space,
                        const std::vector<double>& x, int64_t k) {
  const int64_t p = op.dim();
  std::vector<T> hx(x.begin(), x.end()), hy(x.size());
  hspec::Matrix<T> dx = space.allocate(p, k), dy = space.allocate(p, k);
  space.from_host(hx.data(), p, dx.view());
  op.apply(dx.view(), dy.view());
  space.to_host(dy.view(), hy.data(), p);
  return hy;
}

template <class A, class B>
double rel_error(const std::vector<A>& y, const std::vector<B>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double d = double(y[i]) - double(ref[i]);
    num += d * d;
    den += double(ref[i]) * double(ref[i]);
  }
  return std::sqrt(num / den);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (hspec::cuda_device_count() == 0) {
      std::fprintf(stderr, "hspec_bench_gpu: no CUDA device\n");
      return 1;
    }
    const std::string only = argc > 1 ? argv[1] : "all";
    const double fp32_rate = hspec::cuda_gemm_tflops(0, false, 8192);
    const double tf32_rate = hspec::cuda_gemm_tflops(0, true, 8192);
    std::fprintf(stderr, "%s: sgemm %.1f TFLOP/s, tf32 gemm %.1f TFLOP/s\n",
                 hspec::cuda_device_name(0).c_str(), fp32_rate, tf32_rate);
    const std::vector<int64_t> blocks = {1, 4, 16, 64};
    for (const hspec::Workload& w : hspec::benchmark_workloads()) {
      if (only != "all" && only != w.name) continue;
      const hspec::Model teacher = hspec::random_mlp(w.sizes, w.activation, 2);
      const hspec::Dataset ds = hspec::teacher_dataset(teacher, w.samples, 3);
      const hspec::Model model = hspec::random_mlp(w.sizes, w.activation, 1);
      const int64_t p = model.num_params();
      std::vector<double> x(static_cast<size_t>(p * 64));
      for (size_t i = 0; i < x.size(); ++i) x[i] = hspec::rng::gaussian(5, 0, i);
      // Correctness first: fp32 and tf32 products against fp64 on 2 directions.
      hspec::CudaOperatorOptions o;
      o.base.loss = w.loss;
      o.base.max_block = 64;
      std::vector<double> x2(x.begin(), x.begin() + 2 * p);
      std::vector<double> y64;
      {
        auto op = hspec::make_cuda_operator<double>(model, ds, o);
        auto sp = hspec::make_cuda_space<double>(0);
        y64 = products<double>(*op, *sp, x2, 2);
      }
      for (bool tf32 : {false, true}) {
        o.tf32 = tf32;
        auto op = hspec::make_cuda_operator<float>(model, ds, o);
        auto sp = hspec::make_cuda_space<float>(0);
        const double err = rel_error(products<float>(*op, *sp, x2, 2), y64);
        const char* prec = tf32 ? "tf32" : "fp32";
        std::fprintf(stderr, "%s %s: relative error vs fp64 %.2e\n", w.name.c_str(), prec, err);
        for (int64_t k : blocks) {
          std::vector<float> hx(x.begin(), x.begin() + k * p);
          hspec::Matrix<float> dx = sp->allocate(p, k), dy = sp->allocate(p, k);
          sp->from_host(hx.data(), p, dx.view());
          op->apply(dx.view(), dy.view());  // warm-up
          std::vector<double> t;
          for (int r = 0; r < 7; ++r) {
            const auto t0 = Clock::now();
            op->apply(dx.view(), dy.view());
            t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
          }
          std::sort(t.begin(), t.end());
          const double ms = 1e3 * t[t.size() / 2] / k;
          const double tflops = 12.0 * w.samples * p / (ms * 1e-3) / 1e12;
          std::printf(
              "{\"workload\":\"%s\",\"backend\":\"cuda\",\"device\":\"%s\",\"precision\":"
              "\"%s\",\"params\":%lld,\"samples\":%lld,\"block\":%lld,\"ms_per_hvp\":%.4f,"
              "\"tflops_nominal\":%.2f,\"fp32_gemm_tflops\":%.2f,\"fraction_of_fp32_gemm\":"
              "%.3f,\"rel_error_vs_fp64\":%.3e}\n",
              w.name.c_str(), hspec::cuda_device_name(0).c_str(), prec, (long long)p,
              (long long)w.samples, (long long)k, ms, tflops, fp32_rate, tflops / fp32_rate, err);
          std::fflush(stdout);
        }
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hspec_bench_gpu: %s\n", e.what());
    return 1;
  }
}
