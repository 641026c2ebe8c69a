// GPU benchmark of batched Hessian-vector products on the benchmark workloads
// (include/hspec/mlp/workloads.hpp) (full size), each MLP run as a graph (graph_from_mlp) on the
// graph operator with the CUDA compute backend, as `hspec analyze --device cuda` runs it:
// measures the card's cuBLAS GEMM rates (sgemm,
// TF32, dgemm; CUDA events), checks the fp32 and tf32 products against the fp64 operator, then
// times fp64, fp32 and tf32 products at block sizes 1, 4, 16, 64 (median after warm-up; apply()
// returns after the device has finished) and prints one JSON line per (workload, precision, block)
// with the fraction of the GEMM rate of the same precision (and of fp32) that 12 N P flops per HVP
// represent. Usage: hspec_bench_gpu [mlp_small|mlp_wide|all]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "hspec/backends/cuda/cuda_backend.hpp"
#include "hspec/backends/cuda/cuda_compute.hpp"
#include "hspec/device.hpp"
#include "hspec/graph/graph_operator.hpp"
#include "hspec/mlp/workloads.hpp"
#include "hspec/random.hpp"

namespace {

using Clock = std::chrono::steady_clock;

template <class T>
std::vector<T> products(hspec::CurvatureOperator<T>& op, hspec::VectorSpace<T>& space,
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

// Times op.apply on k columns (median of `reps` after one warm-up; apply returns after the
// device has finished) and prints one JSON line.
template <class T>
void time_blocks(hspec::CurvatureOperator<T>& op, hspec::VectorSpace<T>& space,
                 const std::vector<double>& x, const hspec::Workload& w, const char* prec,
                 double own_rate, double fp32_rate, double err) {
  const int64_t p = op.dim();
  for (int64_t k : {1, 4, 16, 64}) {
    std::vector<T> hx(x.begin(), x.begin() + k * p);
    hspec::Matrix<T> dx = space.allocate(p, k), dy = space.allocate(p, k);
    space.from_host(hx.data(), p, dx.view());
    op.apply(dx.view(), dy.view());  // warm-up
    std::vector<double> t;
    const int reps = k >= 16 ? 5 : 7;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = Clock::now();
      op.apply(dx.view(), dy.view());
      t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    const double ms = 1e3 * t[t.size() / 2] / k;
    const double tflops = 12.0 * w.samples * p / (ms * 1e-3) / 1e12;
    std::printf(
        "{\"workload\":\"%s\",\"backend\":\"cuda\",\"device\":\"%s\",\"precision\":\"%s\","
        "\"params\":%lld,\"samples\":%lld,\"block\":%lld,\"ms_per_hvp\":%.4f,"
        "\"tflops_nominal\":%.2f,\"gemm_tflops\":%.2f,\"fraction_of_gemm\":%.3f,"
        "\"fp32_gemm_tflops\":%.2f,\"fraction_of_fp32_gemm\":%.3f,\"rel_error_vs_fp64\":%.3e}\n",
        w.name.c_str(), hspec::cuda_device_name(0).c_str(), prec, (long long)p,
        (long long)w.samples, (long long)k, ms, tflops, own_rate, tflops / own_rate, fp32_rate,
        tflops / fp32_rate, err);
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (hspec::cuda_device_count() == 0) {
      std::fprintf(stderr, "hspec_bench_gpu: no CUDA device (%s)\n",
                   hspec::cuda_probe_reason().c_str());
      return 1;
    }
    const std::string only = argc > 1 ? argv[1] : "all";
    using hspec::GemmPrecision;
    const double fp32_rate = hspec::cuda_gemm_tflops(0, GemmPrecision::FP32, 8192);
    const double tf32_rate = hspec::cuda_gemm_tflops(0, GemmPrecision::TF32, 8192);
    const double fp64_rate = hspec::cuda_gemm_tflops(0, GemmPrecision::FP64, 8192);
    std::fprintf(stderr, "%s: sgemm %.1f TFLOP/s, tf32 gemm %.1f TFLOP/s, dgemm %.1f TFLOP/s\n",
                 hspec::cuda_device_name(0).c_str(), fp32_rate, tf32_rate, fp64_rate);
    std::printf(
        "{\"gemm\":true,\"device\":\"%s\",\"n\":8192,\"fp32_tflops\":%.2f,\"tf32_tflops\":%.2f,"
        "\"fp64_tflops\":%.2f}\n",
        hspec::cuda_device_name(0).c_str(), fp32_rate, tf32_rate, fp64_rate);
    std::fflush(stdout);
    for (const hspec::Workload& w : hspec::benchmark_workloads()) {
      if (only != "all" && only != w.name) continue;
      const hspec::Model teacher = hspec::random_mlp(w.sizes, w.activation, 2);
      const hspec::Dataset ds = hspec::teacher_dataset(teacher, w.samples, 3);
      const hspec::Model model = hspec::random_mlp(w.sizes, w.activation, 1);
      const int64_t p = model.num_params();
      std::vector<double> x(static_cast<size_t>(p * 64));
      for (size_t i = 0; i < x.size(); ++i) x[i] = hspec::rng::gaussian(5, 0, i);
      // Correctness first: fp32 and tf32 products against fp64 on 2 directions.
      // Half the card's free memory for the operator's cache and tangents (the rest for the
      // other precision's operator, the blocks and cuBLAS).
      hspec::GraphOperatorOptions o;
      o.loss = w.loss;
      o.max_block = 64;
      o.memory_budget = hspec::cuda_free_memory(0) / 2;
      const hspec::Graph graph = hspec::graph_from_mlp(model);
      std::vector<double> x2(x.begin(), x.begin() + 2 * p);
      std::vector<double> y64;
      {
        auto op = std::make_unique<hspec::GraphCurvatureOperator<double>>(
            graph, ds, o, hspec::make_cuda_compute<double>(0));
        auto sp = hspec::make_cuda_space<double>(0);
        y64 = products<double>(*op, *sp, x2, 2);
        time_blocks<double>(*op, *sp, x, w, "fp64", fp64_rate, fp32_rate, 0.0);
      }
      for (bool tf32 : {false, true}) {
        auto op = std::make_unique<hspec::GraphCurvatureOperator<float>>(
            graph, ds, o, hspec::make_cuda_compute<float>(0, tf32));
        auto sp = hspec::make_cuda_space<float>(0);
        const double err = rel_error(products<float>(*op, *sp, x2, 2), y64);
        const char* prec = tf32 ? "tf32" : "fp32";
        std::fprintf(stderr, "%s %s: relative error vs fp64 %.2e\n", w.name.c_str(), prec, err);
        time_blocks<float>(*op, *sp, x, w, prec, tf32 ? tf32_rate : fp32_rate, fp32_rate, err);
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hspec_bench_gpu: %s\n", e.what());
    return 1;
  }
}
