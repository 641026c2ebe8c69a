// CPU benchmark of batched Hessian-vector products on the DESIGN.md workloads: checks the
// products first (batched == one-at-a-time, u.Hv == v.Hu), then times them and prints one
// JSON line per (workload, block size): ms per HVP (median), GFLOP/s at DESIGN.md's nominal
// 12 N P flops per HVP and at the flops really executed, and the latter as a fraction of the
// machine's sgemm rate measured in the same run.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "hspec/blas.hpp"
#include "hspec/cpu_hvp.hpp"
#include "hspec/random.hpp"
#include "hspec/workloads.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The machine's sgemm rate on square matrices (median of a few runs), in GFLOP/s.
double sgemm_rate(int64_t n) {
  std::vector<float> a(n * n, 1.0f), b(n * n, 0.5f), c(n * n);
  std::vector<double> t;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = Clock::now();
    hspec::blas::gemm('N', 'N', n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
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
          "[--samples N (0 = the workload's)] [--blocks 1,4,16] [--reps R]");
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
bool check(hspec::CpuCurvatureOperator<float>& op) {
  const int64_t p = op.dim(), k = 2;
  std::vector<float> x(p * k), y(p * k), y1(p);
  for (int64_t i = 0; i < p * k; ++i) x[i] = static_cast<float>(hspec::rng::gaussian(99, 0, i));
  op.apply(hspec::BlockView<const float>(x.data(), p, k), hspec::BlockView<float>(y.data(), p, k));
  double worst = 0, scale = 0;
  for (int64_t j = 0; j < k; ++j) {
    op.apply(hspec::BlockView<const float>(x.data() + j * p, p, 1),
             hspec::BlockView<float>(y1.data(), p, 1));
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

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args args = parse(argc, argv);
    const double gemm = sgemm_rate(2048);
    std::fprintf(stderr, "sgemm 2048^3: %.1f GFLOP/s\n", gemm);
    for (const hspec::Workload& w : hspec::benchmark_workloads()) {
      if (args.workload != "all" && args.workload != w.name) continue;
      const int64_t n = args.samples > 0 ? std::min(args.samples, w.samples) : w.samples;
      const hspec::Model teacher = hspec::random_mlp(w.sizes, w.activation, 2);
      const hspec::Dataset ds = hspec::teacher_dataset(teacher, n, 3);
      const hspec::Model model = hspec::random_mlp(w.sizes, w.activation, 1);
      const int64_t max_block = *std::max_element(args.blocks.begin(), args.blocks.end());
      hspec::CpuOperatorOptions opt;
      opt.loss = w.loss;
      opt.max_block = std::max<int64_t>(max_block, 2);  // check() applies two directions at once
      opt.memory_budget = 8ull << 30;
      const auto t0 = Clock::now();
      hspec::CpuCurvatureOperator<float> op(model, ds, opt);
      const double setup = seconds_since(t0);
      const int64_t p = op.dim();
      std::fprintf(stderr, "%s: %lld params, %lld samples, chunk %lld, primal %.2f s\n",
                   w.name.c_str(), (long long)p, (long long)n, (long long)op.chunk_size(), setup);
      if (!check(op)) {
        std::fprintf(stderr, "  products failed the check; not timing them\n");
        return 1;
      }
      std::vector<float> x(p * max_block), y(p * max_block);
      for (size_t i = 0; i < x.size(); ++i) x[i] = float(hspec::rng::gaussian(5, 0, i));
      for (int64_t k : args.blocks) {
        const hspec::BlockView<const float> xv(x.data(), p, k);
        const hspec::BlockView<float> yv(y.data(), p, k);
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
            "{\"workload\":\"%s\",\"backend\":\"cpu\",\"precision\":\"fp32\",\"params\":%lld,"
            "\"samples\":%lld,\"block\":%lld,\"ms_per_hvp\":%.3f,\"gflops\":%.2f,"
            "\"gflops_executed\":%.2f,\"sgemm_gflops\":%.2f,\"fraction_of_sgemm\":%.3f,"
            "\"reps\":%d}\n",
            w.name.c_str(), (long long)p, (long long)n, (long long)k, ms, gflops, real_gflops, gemm,
            real_gflops / gemm, args.reps);
        std::fflush(stdout);
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hspec_bench: %s\n", e.what());
    return 1;
  }
}
