// Where a Lanczos run's time goes on the CPU: runs what `hspec analyze --top T --bottom B`
// runs (BlockLanczos on the graph operator, the MLP as a graph) on a benchmark workload and splits
// wall and process CPU time between the products (inside apply) and the solver's vector algebra
// (gram, update, norms, ...), each timed through a wrapper of the operator and the space.
// `--diagonal` swaps the products for a diagonal operator of the same dimension, which
// isolates the algebra; `--products-only` times the same number of bare products in a row.
// One JSON line per run on stdout.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "hspec/backends/cpu/blas_runtime.hpp"
#include "hspec/backends/cpu/cpu_space.hpp"
#include "hspec/dense_operator.hpp"
#include "hspec/graph/graph_operator.hpp"
#include "hspec/mlp/workloads.hpp"
#include "hspec/random.hpp"
#include "hspec/solvers/lanczos.hpp"

namespace {

double clock_seconds(clockid_t id) {
  timespec t{};
  clock_gettime(id, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// Wall and process CPU time of what runs while it is alive, added to a named account.
struct Account {
  double wall = 0, cpu = 0;
  long calls = 0;
};
struct Timed {
  Account& acc;
  double w0 = clock_seconds(CLOCK_MONOTONIC), c0 = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
  explicit Timed(Account& a) : acc(a) {}
  ~Timed() {
    acc.wall += clock_seconds(CLOCK_MONOTONIC) - w0;
    acc.cpu += clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
    ++acc.calls;
  }
};
std::map<std::string, Account> g_accounts;

template <class T>
class TimedOperator final : public hspec::CurvatureOperator<T> {
 public:
  explicit TimedOperator(hspec::CurvatureOperator<T>& op) : op_(op) {}
  int64_t dim() const override { return op_.dim(); }
  int64_t max_block() const override { return op_.max_block(); }
  hspec::Where where() const override { return op_.where(); }
  void apply(hspec::BlockView<const T> X, hspec::BlockView<T> Y) override {
    Timed t(g_accounts["product"]);
    op_.apply(X, Y);
    this->count_products(X.cols);
  }

 private:
  hspec::CurvatureOperator<T>& op_;
};

template <class T>
class TimedSpace final : public hspec::VectorSpace<T> {
  using V = hspec::BlockView<T>;
  using C = hspec::BlockView<const T>;

 public:
  hspec::Where where() const override { return s_.where(); }
  hspec::Matrix<T> allocate(int64_t r, int64_t c) override {
    Timed t(g_accounts["allocate"]);
    return s_.allocate(r, c);
  }
  void gram(C A, C B, double* G, int64_t ldg) override {
    Timed t(g_accounts["gram"]);
    s_.gram(A, B, G, ldg);
  }
  void update(V Y, C A, const double* Cm, int64_t ldc, double al, double be) override {
    Timed t(g_accounts["update"]);
    s_.update(Y, A, Cm, ldc, al, be);
  }
  void norms(C A, double* out) override {
    Timed t(g_accounts["norms"]);
    s_.norms(A, out);
  }
  void scale_columns(V A, const double* s) override {
    Timed t(g_accounts["scale"]);
    s_.scale_columns(A, s);
  }
  void copy(C src, V dst) override {
    Timed t(g_accounts["copy"]);
    s_.copy(src, dst);
  }
  void fill_random(V A, hspec::Distribution d, uint64_t seed) override {
    Timed t(g_accounts["random"]);
    s_.fill_random(A, d, seed);
  }
  void to_host(C src, T* h, int64_t ldh) override { s_.to_host(src, h, ldh); }
  void from_host(const T* h, int64_t ldh, V dst) override { s_.from_host(h, ldh, dst); }

 private:
  hspec::CpuSpace<T> s_;
};

struct Args {
  std::string workload = "mlp_small", activation, precision = "fp32";
  int64_t samples = 4096;
  int top = 5, bottom = 1, block = 1, threads = 0;
  double tol = 1e-3;
  bool diagonal = false, products_only = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value after " + s);
      return argv[++i];
    };
    if (s == "--workload")
      a.workload = next();
    else if (s == "--samples")
      a.samples = std::stoll(next());
    else if (s == "--activation")
      a.activation = next();
    else if (s == "--precision")
      a.precision = next();
    else if (s == "--top")
      a.top = std::stoi(next());
    else if (s == "--bottom")
      a.bottom = std::stoi(next());
    else if (s == "--block")
      a.block = std::stoi(next());
    else if (s == "--tol")
      a.tol = std::stod(next());
    else if (s == "--threads")
      a.threads = std::stoi(next());
    else if (s == "--diagonal")
      a.diagonal = true;
    else if (s == "--products-only")
      a.products_only = true;
    else
      throw std::runtime_error(
          "usage: hspec_bench_solver [--workload mlp_small|mlp_wide] [--samples N] "
          "[--activation A] [--precision fp32|fp64] [--top T] [--bottom B] [--block B] "
          "[--tol T] [--threads N] [--diagonal | --products-only]");
  }
  return a;
}

template <class T>
int run(const Args& a) {
  const hspec::Workload* w = nullptr;
  for (const hspec::Workload& x : hspec::benchmark_workloads())
    if (x.name == a.workload) w = &x;
  if (w == nullptr) throw std::runtime_error("unknown workload " + a.workload);
  const hspec::Activation act =
      a.activation.empty() ? w->activation : hspec::parse_activation(a.activation);
  const hspec::Model teacher = hspec::random_mlp(w->sizes, act, 2);
  const hspec::Dataset ds = hspec::teacher_dataset(teacher, a.samples, 3);
  const hspec::Model model = hspec::random_mlp(w->sizes, act, 1);
  hspec::GraphOperatorOptions opt;
  opt.loss = w->loss;
  opt.max_block = a.block;
  opt.memory_budget = 8ull << 30;
  hspec::GraphCurvatureOperator<T> hvp(hspec::graph_from_mlp(model), ds, opt);
  std::vector<double> diag(static_cast<size_t>(hvp.dim()));
  for (size_t i = 0; i < diag.size(); ++i) diag[i] = hspec::rng::gaussian(7, 0, i);
  hspec::DiagonalOperator<T> dop(diag, a.block);
  hspec::CurvatureOperator<T>& inner =
      a.diagonal ? static_cast<hspec::CurvatureOperator<T>&>(dop) : hvp;
  TimedOperator<T> op(inner);
  TimedSpace<T> space;
  hspec::LanczosOptions lo;
  lo.top = a.top;
  lo.bottom = a.bottom;
  lo.block = a.block;
  lo.tol = a.tol;
  const double w0 = clock_seconds(CLOCK_MONOTONIC), c0 = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
  int64_t products = 0;
  if (a.products_only) {
    // As many products as a solver run of these options takes (measured before), in a row.
    hspec::Matrix<T> x = hspec::CpuSpace<T>().allocate(hvp.dim(), a.block);
    hspec::Matrix<T> y = hspec::CpuSpace<T>().allocate(hvp.dim(), a.block);
    hspec::CpuSpace<T>().fill_random(x.view(), hspec::Distribution::Gaussian, 5);
    for (int r = 0; r < 20; ++r) op.apply(x.view(), y.view());
    products = op.products();
  } else {
    products = hspec::BlockLanczos<T>(op, space).compute(lo).products;
  }
  const double wall = clock_seconds(CLOCK_MONOTONIC) - w0;
  const double cpu = clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
  std::printf(
      "{\"workload\":\"%s\",\"precision\":\"%s\",\"samples\":%lld,\"operator\":\"%s\","
      "\"threads\":%d,\"products\":%lld,\"wall_s\":%.3f,\"cpu_s\":%.3f",
      w->name.c_str(), sizeof(T) == 4 ? "fp32" : "fp64", (long long)a.samples,
      a.diagonal ? "diagonal" : "hvp", hspec::cpu::kernel_info().threads, (long long)products, wall,
      cpu);
  Account rest{wall, cpu, 0};
  for (const auto& [name, acc] : g_accounts) {
    std::printf(",\"%s\":{\"calls\":%ld,\"wall_ms_per_product\":%.2f,\"cpu_ms_per_product\":%.2f}",
                name.c_str(), acc.calls, 1e3 * acc.wall / products, 1e3 * acc.cpu / products);
    rest.wall -= acc.wall;
    rest.cpu -= acc.cpu;
  }
  std::printf(",\"other\":{\"wall_ms_per_product\":%.2f,\"cpu_ms_per_product\":%.2f}}\n",
              1e3 * rest.wall / products, 1e3 * rest.cpu / products);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  hspec::cpu::correct_openblas_core(argv);  // before any GEMM: may re-execute once
  try {
    const Args a = parse(argc, argv);
    if (a.threads > 0) hspec::cpu::set_threads(a.threads);
    return a.precision == "fp64" ? run<double>(a) : run<float>(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hspec_bench_solver: %s\n", e.what());
    return 1;
  }
}
