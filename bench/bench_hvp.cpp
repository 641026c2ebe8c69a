// CPU benchmark of batched Hessian-vector products on the benchmark workloads
// (include/hspec/mlp/workloads.hpp): checks the products first (batched == one-at-a-time, u.Hv ==
// v.Hu), then times them and prints one JSON line per (workload, block size): ms per HVP (median),
// GFLOP/s at the nominal 12 N P flops per HVP and at the flops really executed, and the latter as a
// fraction of the machine's GEMM rate (sgemm or dgemm, as the precision) measured in the same run,
// and the BLAS library and kernel that ran. The products are the graph operator's on the MLP as a
// graph (graph_from_mlp), what `hspec analyze` runs; --engine mlp times the MLP reference
// operator (include/hspec/mlp/reference_operator.hpp) instead, for comparing the two.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "hspec/backends/cpu/blas.hpp"
#include "hspec/backends/cpu/blas_runtime.hpp"
#include "hspec/graph/graph_operator.hpp"
#include "hspec/mlp/reference_operator.hpp"
#include "hspec/mlp/workloads.hpp"
#include "hspec/random.hpp"

namespace {

// Wall time, or with --cpu-time the process's CPU time: on a machine busy with other work a
// single-threaded run's CPU time still measures the kernels (wall time measures the queue).
bool g_cpu_time = false;

struct Clock {
  using time_point = double;
  static double now() {
    timespec t{};
    clock_gettime(g_cpu_time ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &t);
    return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
  }
};

double seconds_since(Clock::time_point t0) {
  return Clock::now() - t0;
}

// The machine's GEMM rate on square matrices (median of a few runs), in GFLOP/s.
template <class T>
double gemm_rate(int64_t n) {
  std::vector<T> a(n * n, T(1)), b(n * n, T(0.5)), c(n * n);
  std::vector<double> t;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = Clock::now();
    hspec::blas::gemm('N', 'N', n, n, n, T(1), a.data(), n, b.data(), n, T(0), c.data(), n);
    t.push_back(seconds_since(t0));
  }
  std::sort(t.begin(), t.end());
  return 2.0 * n * n * n / t[t.size() / 2] / 1e9;
}

struct Args {
  std::string workload = "all";
  int64_t samples = 1024;
  std::vector<int64_t> blocks = {1, 4, 16};
  int reps = 5;
  int threads = 0;  // 0: OMP_NUM_THREADS / the BLAS's default
  std::string precision = "fp32";
  std::string engine = "graph";
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value after " + s);
      return argv[++i];
    };
    if (s == "--workload") {
      a.workload = next();
    } else if (s == "--samples") {
      a.samples = std::stoll(next());
    } else if (s == "--cpu-time") {
      g_cpu_time = true;
    } else if (s == "--threads") {
      a.threads = std::stoi(next());
    } else if (s == "--precision") {
      a.precision = next();
      if (a.precision != "fp32" && a.precision != "fp64")
        throw std::runtime_error("--precision: fp32 or fp64");
    } else if (s == "--engine") {
      a.engine = next();
      if (a.engine != "mlp" && a.engine != "graph")
        throw std::runtime_error("--engine: mlp or graph");
    } else if (s == "--reps") {
      a.reps = std::stoi(next());
    } else if (s == "--blocks") {
      a.blocks.clear();
      std::string v = next();
      for (size_t p = 0; p < v.size();) {
        const size_t q = v.find(',', p);
        a.blocks.push_back(std::stoll(v.substr(p, q - p)));
        p = q == std::string::npos ? v.size() : q + 1;
      }
    } else {
      throw std::runtime_error(
          "usage: hspec_bench [--workload mlp_small|mlp_wide|all] "
          "[--samples N (0 = the workload's)] [--blocks 1,4,16] [--reps R] [--threads N] "
          "[--precision fp32|fp64] [--engine graph|mlp] [--cpu-time]");
    }
  }
  return a;
}

// Flops one Hessian-vector product really executes: 12 per weight and sample, except the
// first layer (its input has no tangent), which needs only V X and X RG^T: 4.
double hvp_flops(const hspec::Model& m, int64_t n) {
  double f = 0;
  for (size_t l = 0; l < m.layers.size(); ++l)
    f += (l == 0 ? 4.0 : 12.0) * static_cast<double>(m.layers[l].num_params()) * n;
  return f;
}

// Batched products must equal one-at-a-time products, and H must be symmetric.
template <class T>
bool check(hspec::CurvatureOperator<T>& op) {
  const int64_t p = op.dim(), k = 2;
  std::vector<T> x(p * k), y(p * k), y1(p);
  for (int64_t i = 0; i < p * k; ++i) x[i] = static_cast<T>(hspec::rng::gaussian(99, 0, i));
  op.apply(hspec::BlockView<const T>(x.data(), p, k), hspec::BlockView<T>(y.data(), p, k));
  double worst = 0, scale = 0;
  for (int64_t j = 0; j < k; ++j) {
    op.apply(hspec::BlockView<const T>(x.data() + j * p, p, 1),
             hspec::BlockView<T>(y1.data(), p, 1));
    for (int64_t i = 0; i < p; ++i) {
      worst = std::max(worst, std::fabs(double(y1[i]) - y[j * p + i]));
      scale = std::max(scale, std::fabs(double(y1[i])));
    }
  }
  double uhv = 0, vhu = 0, mag = 0;
  for (int64_t i = 0; i < p; ++i) {
    uhv += double(x[i]) * y[p + i];
    vhu += double(x[p + i]) * y[i];
    mag += std::fabs(double(x[i]) * y[p + i]);
  }
  const double batch_err = worst / std::max(scale, 1e-30), sym_err = std::fabs(uhv - vhu) / mag;
  std::fprintf(stderr, "  check: batched vs single max rel diff %.2e, u.Hv vs v.Hu rel diff %.2e\n",
               batch_err, sym_err);
  return batch_err < 1e-4 && sym_err < 1e-3;
}

template <class T>
int run(const Args& args) {
  const char* precision = sizeof(T) == 4 ? "fp32" : "fp64";
  const double gemm = gemm_rate<T>(2048);
  const hspec::cpu::KernelInfo& blas = hspec::cpu::kernel_info();
  std::fprintf(stderr, "%s 2048^3: %.1f GFLOP/s (%s)\n", sizeof(T) == 4 ? "sgemm" : "dgemm", gemm,
               hspec::cpu::kernel_summary().c_str());
  for (const hspec::Workload& w : hspec::benchmark_workloads()) {
    if (args.workload != "all" && args.workload != w.name) continue;
    const int64_t n = args.samples > 0 ? std::min(args.samples, w.samples) : w.samples;
    const hspec::Model teacher = hspec::random_mlp(w.sizes, w.activation, 2);
    const hspec::Dataset ds = hspec::teacher_dataset(teacher, n, 3);
    const hspec::Model model = hspec::random_mlp(w.sizes, w.activation, 1);
    const int64_t max_block = *std::max_element(args.blocks.begin(), args.blocks.end());
    hspec::MlpReferenceOptions opt;
    opt.loss = w.loss;
    opt.max_block = std::max<int64_t>(max_block, 2);  // the check applies 2 directions
    opt.memory_budget = 8ull << 30;
    const auto t0 = Clock::now();
    std::unique_ptr<hspec::CurvatureOperator<T>> owned;
    int64_t chunk = 0;
    if (args.engine == "graph") {
      hspec::GraphOperatorOptions gopt;
      gopt.loss = w.loss;
      gopt.max_block = opt.max_block;
      gopt.memory_budget = opt.memory_budget;
      auto g = std::make_unique<hspec::GraphCurvatureOperator<T>>(hspec::graph_from_mlp(model), ds,
                                                                  gopt);
      chunk = g->chunk_size();
      owned = std::move(g);
    } else {
      auto m = std::make_unique<hspec::MlpReferenceOperator<T>>(model, ds, opt);
      chunk = m->chunk_size();
      owned = std::move(m);
    }
    hspec::CurvatureOperator<T>& op = *owned;
    const double setup = seconds_since(t0);
    const int64_t p = op.dim();
    std::fprintf(stderr, "%s (%s engine): %lld params, %lld samples, chunk %lld, primal %.2f s\n",
                 w.name.c_str(), args.engine.c_str(), (long long)p, (long long)n, (long long)chunk,
                 setup);
    if (!check(op)) {
      std::fprintf(stderr, "  products failed the check; not timing them\n");
      return 1;
    }
    std::vector<T> x(p * max_block), y(p * max_block);
    for (size_t i = 0; i < x.size(); ++i) x[i] = T(hspec::rng::gaussian(5, 0, i));
    for (int64_t k : args.blocks) {
      const hspec::BlockView<const T> xv(x.data(), p, k);
      const hspec::BlockView<T> yv(y.data(), p, k);
      op.apply(xv, yv);  // warm-up
      std::vector<double> t;
      for (int r = 0; r < args.reps; ++r) {
        const auto t1 = Clock::now();
        op.apply(xv, yv);
        t.push_back(seconds_since(t1));
      }
      std::sort(t.begin(), t.end());
      const double ms = 1e3 * t[t.size() / 2] / k;
      const double gflops = 12.0 * n * p / (ms * 1e-3) / 1e9;
      const double real_gflops = hvp_flops(model, n) / (ms * 1e-3) / 1e9;
      std::printf(
          "{\"workload\":\"%s\",\"engine\":\"%s\",\"backend\":\"cpu\",\"precision\":\"%s\","
          "\"params\":%lld,"
          "\"samples\":%lld,\"block\":%lld,\"ms_per_hvp\":%.3f,\"gflops\":%.2f,"
          "\"gflops_executed\":%.2f,\"gemm_gflops\":%.2f,\"fraction_of_gemm\":%.3f,"
          "\"reps\":%d,\"threads\":%d,\"clock\":\"%s\",\"blas\":\"%s %s\",\"kernel\":\"%s\"}\n",
          w.name.c_str(), args.engine.c_str(), precision, (long long)p, (long long)n, (long long)k,
          ms, gflops, real_gflops, gemm, real_gflops / gemm, args.reps, blas.threads,
          g_cpu_time ? "cpu" : "wall", blas.library.c_str(), blas.version.c_str(),
          blas.kernel.c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  hspec::cpu::correct_openblas_core(argv);  // before any GEMM: may re-execute once
  try {
    const Args args = parse(argc, argv);
    if (args.threads > 0) hspec::cpu::set_threads(args.threads);
    const std::string& slow = hspec::cpu::kernel_info().warning;
    if (!slow.empty()) std::fprintf(stderr, "%s\n", slow.c_str());
    return args.precision == "fp64" ? run<double>(args) : run<float>(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hspec_bench: %s\n", e.what());
    return 1;
  }
}
