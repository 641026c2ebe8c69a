// The graph engine on CUDA against the same engine on the CPU: loss, gradient, Hessian and
// Gauss-Newton products of seeded conv/residual/pooling and GELU graphs (built here, so they
// run without ONNX support) and of the PyTorch ONNX fixtures (against their float64
// references too), fp64 to 1e-10 relative and fp32 to fp32 rounding; chunked recomputation;
// and whole `analyze` runs (Lanczos and exact mode) on --device cuda against --device cpu.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../cli_test_util.hpp"
#include "../graph_test_util.hpp"
#include "gpu_test_util.hpp"
#include "hspec/backends/cuda/cuda_compute.hpp"
#include "hspec/error.hpp"
#include "hspec/formats/safetensors.hpp"
#include "hspec/graph/analyze_graph.hpp"
#include "hspec/graph/graph_operator.hpp"
#if HSPEC_WITH_ONNX
#include "hspec/formats/onnx.hpp"
#endif

namespace hspec {
namespace {

using graphtest::attr_f;
using graphtest::attr_i;
using graphtest::attr_is;
using graphtest::Builder;

// x [2, 8, 8] -> Conv 3x3 -> BatchNorm -> Relu -> MaxPool 3x3/1 (overlapping windows) ->
// Conv 3x3 + the pooled skip -> Relu -> grouped, strided, dilated Conv -> AveragePool ->
// GlobalAveragePool -> Gemm [out].
Graph residual_net(int64_t out, uint64_t seed) {
  Builder b({2, 8, 8}, seed);
  b.node("Conv", {"x", b.param("c1.w", {4, 2, 3, 3}, 0.4), b.param("c1.b", {4}, 0.1)}, "c1")
      .attrs["pads"] = attr_is({1, 1, 1, 1});
  b.node("BatchNormalization",
         {"c1", b.param("bn.weight", {4}, 1.0), b.param("bn.bias", {4}, 0.2),
          b.constant("bn.mean", {4}, {0.1, -0.2, 0.05, 0.0}),
          b.constant("bn.var", {4}, {1.5, 0.7, 2.0, 1.0})},
         "bn")
      .attrs["epsilon"] = attr_f(1e-5);
  b.node("Relu", {"bn"}, "r1");
  GraphNode& mp = b.node("MaxPool", {"r1"}, "mp");
  mp.attrs["kernel_shape"] = attr_is({3, 3});
  mp.attrs["pads"] = attr_is({1, 1, 1, 1});
  b.node("Conv", {"mp", b.param("c2.w", {4, 4, 3, 3}, 0.3)}, "c2").attrs["pads"] =
      attr_is({1, 1, 1, 1});
  b.node("Add", {"c2", "mp"}, "res");
  b.node("Relu", {"res"}, "r2");
  GraphNode& c3 = b.node("Conv", {"r2", b.param("c3.w", {4, 2, 2, 3}, 0.4)}, "c3");
  c3.attrs["group"] = attr_i(2);
  c3.attrs["strides"] = attr_is({2, 1});
  c3.attrs["dilations"] = attr_is({1, 2});
  c3.attrs["pads"] = attr_is({0, 1, 1, 1});
  b.node("Tanh", {"c3"}, "t3");
  GraphNode& ap = b.node("AveragePool", {"t3"}, "ap");
  ap.attrs["kernel_shape"] = attr_is({2, 2});
  ap.attrs["pads"] = attr_is({1, 1, 0, 0});
  b.node("GlobalAveragePool", {"ap"}, "gap");
  b.node("Flatten", {"gap"}, "f");
  b.node("Gemm", {"f", b.param("fc.w", {out, 4}, 0.8), b.param("fc.b", {out}, 0.2)}, "y")
      .attrs["transB"] = attr_i(1);
  return b.g;
}

// x [6] -> Gemm -> Gelu (tanh) -> Reshape [3, 4] -> ReduceMean, and a Sigmoid/Erf branch
// multiplied in and divided by a constant -> Gemm [out].
Graph gelu_net(int64_t out, uint64_t seed) {
  Builder b({6}, seed);
  b.node("Gemm", {"x", b.param("w1", {12, 6}, 0.5), b.param("b1", {12}, 0.2)}, "z")
      .attrs["transB"] = attr_i(1);
  b.node("Gelu", {"z"}, "g").attrs["approximate"] = graphtest::attr_s("tanh");
  b.node("Reshape", {"g", b.ints("shape", {0, 3, -1})}, "r");
  GraphNode& rm = b.node("ReduceMean", {"r"}, "m");
  rm.attrs["axes"] = attr_is({-1});
  rm.attrs["keepdims"] = attr_i(0);  // [N, 3]
  b.node("Sigmoid", {"z"}, "s");
  b.node("Erf", {"s"}, "e");
  b.node("Gemm", {"e", b.param("w2", {12, 3}, 0.4)}, "p");
  b.node("Mul", {"m", "p"}, "mp");
  b.node("Div", {"mp", b.constant("two", {1}, {2.0})}, "d");
  b.node("Sub", {"d", "m"}, "q");
  b.node("Gemm", {"q", b.param("w3", {3, out}, 0.7), b.param("b3", {out}, 0.1)}, "y");
  return b.g;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}
double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::fabs(v));
  return m;
}

// Y = C X on `op`, with X and Y in the operator's memory (device memory for CUDA).
template <class T>
std::vector<double> products(GraphCurvatureOperator<T>& op, Compute<T>* cx,
                             const std::vector<double>& x, int64_t k) {
  const int64_t p = op.dim();
  std::vector<T> xt(x.begin(), x.end()), y(size_t(p * k));
  if (!cx) {
    op.apply(BlockView<const T>(xt.data(), p, k), BlockView<T>(y.data(), p, k));
  } else {
    Buffer<T> dx = cx->template alloc<T>(p * k), dy = cx->template alloc<T>(p * k);
    cx->upload(xt.data(), dx.data(), p * k);
    op.apply(BlockView<const T>(dx.data(), p, k), BlockView<T>(dy.data(), p, k));
    cx->download(dy.data(), y.data(), p * k);
  }
  return std::vector<double>(y.begin(), y.end());
}

// The same operator on the CPU and on the card: loss, gradient and k = 3 products agree.
template <class T>
void expect_backends_agree(const Graph& g, const Dataset& ds, Loss loss, Curvature c, double rel,
                           int64_t chunk = 0) {
  SCOPED_TRACE(std::string(loss_name(loss)) + " " + curvature_name(c) + (chunk ? " chunked" : ""));
  GraphOperatorOptions o = graphtest::gopt(loss, c, 3);
  GraphCurvatureOperator<T> cpu(g, ds, o);
  if (chunk) {  // the primal pass recomputed per chunk on the card
    o.chunk = chunk;
    o.memory_budget = 1;
  }
  // A second compute object on the same device holds the blocks (a different stream).
  auto blocks = make_cuda_compute<T>(0);
  GraphCurvatureOperator<T> gpu(g, ds, o, make_cuda_compute<T>(0));
  EXPECT_EQ(gpu.where(), Where::Device);
  if (chunk) {
    EXPECT_FALSE(gpu.primal_cached());
  }
  EXPECT_NEAR(gpu.loss_value(), cpu.loss_value(), rel * std::max(1.0, cpu.loss_value()));
  EXPECT_EQ(gpu.correct(), cpu.correct());
  EXPECT_LE(max_abs_diff(gpu.gradient(), cpu.gradient()),
            rel * std::max(1e-3, max_abs(cpu.gradient())));
  const std::vector<double> x = graphtest::gauss(3 * cpu.dim(), 5, 6);
  const std::vector<double> want = products<T>(cpu, nullptr, x, 3);
  const std::vector<double> got = products<T>(gpu, blocks.get(), x, 3);
  EXPECT_LE(max_abs_diff(got, want), rel * max_abs(want)) << "products";
}

TEST(CudaGraphOperator, BuiltGraphsMatchTheCpuBackend) {
  HSPEC_REQUIRE_DEVICE();
  struct Case {
    const char* name;
    Graph g;
    Loss loss;
    int64_t out, d;
  };
  const Case cases[] = {{"residual ce", residual_net(3, 81), Loss::CE, 3, 128},
                        {"residual mse", residual_net(2, 82), Loss::MSE, 2, 128},
                        {"gelu bce", gelu_net(1, 83), Loss::BCE, 1, 6},
                        {"gelu ce", gelu_net(4, 84), Loss::CE, 4, 6}};
  for (const Case& cs : cases) {
    SCOPED_TRACE(cs.name);
    const Dataset ds = graphtest::data(37, cs.d, cs.loss, cs.out, 85);
    for (Curvature c : {Curvature::Hessian, Curvature::GGN}) {
      expect_backends_agree<double>(cs.g, ds, cs.loss, c, 1e-10);
      expect_backends_agree<float>(cs.g, ds, cs.loss, c, 2e-4);
    }
    expect_backends_agree<double>(cs.g, ds, cs.loss, Curvature::Hessian, 1e-10, 5);
  }
}

#if HSPEC_WITH_ONNX
std::string fixture(const std::string& name) {
  return std::string(HSPEC_FIXTURES) + "/onnx/" + name;
}

// The PyTorch exports: cuda against cpu, and cuda against the float64 references.
TEST(CudaGraphOperator, OnnxFixturesMatchTheCpuAndPyTorch) {
  HSPEC_REQUIRE_DEVICE();
  for (const char* model : {"cnn", "gelu", "resnet"}) {
    SCOPED_TRACE(model);
    const Graph g = load_onnx(fixture(std::string(model) + "_dynamo.onnx"));
    const Dataset ds = load_dataset(fixture(std::string(model) + "_data.safetensors"));
    for (Curvature c : {Curvature::Hessian, Curvature::GGN}) {
      expect_backends_agree<double>(g, ds, Loss::CE, c, 1e-10);
      expect_backends_agree<float>(g, ds, Loss::CE, c, 2e-4);
    }
    const SafeTensorsFile ref(fixture(std::string(model) + "_ref.safetensors"));
    GraphOperatorOptions o = graphtest::gopt(Loss::CE, Curvature::Hessian, 8);
    GraphCurvatureOperator<double> op(g, ds, o, make_cuda_compute<double>(0));
    EXPECT_NEAR(op.loss_value(), ref.read_double("loss")[0], 1e-10);
    const auto dirs = ref.read_double("directions"), want = ref.read_double("hvp");
    auto blocks = make_cuda_compute<double>(0);
    const std::vector<double> got =
        products<double>(op, blocks.get(), dirs, int64_t(dirs.size()) / op.dim());
    EXPECT_LE(max_abs_diff(got, want), 1e-9 * std::max(1.0, max_abs(want)));
  }
}
#endif

// Whole analyze runs of a residual net, cuda against cpu.
struct RunFiles {
  std::string data = testutil::scratch("gpu_graph_", "data.safetensors");
  RunFiles() {
    const Dataset ds = graphtest::data(64, 128, Loss::CE, 3, 91);
    write_safetensors(data, {make_tensor("inputs", {ds.n, ds.d}, ds.inputs),
                             make_tensor("labels", {ds.n}, ds.labels)});
  }
};

AnalyzeOptions run_options(const RunFiles& f, const std::string& device) {
  AnalyzeOptions o;
  o.model_path = "residual.onnx";
  o.data_path = f.data;
  o.top = 3;
  o.bottom = 1;
  o.precision = Precision::Fp64;
  o.tol = 1e-12;
  o.block = 2;
  o.seed = 4;
  o.timings = false;
  o.device = parse_device(device);
  return o;
}

void expect_same_values(const AnalyzeReport& a, const AnalyzeReport& b, double rel) {
  ASSERT_EQ(a.top.size(), b.top.size());
  ASSERT_EQ(a.bottom.size(), b.bottom.size());
  const double scale = std::max(std::fabs(b.top.front().value), std::fabs(b.bottom.front().value));
  for (size_t i = 0; i < a.top.size(); ++i)
    EXPECT_NEAR(a.top[i].value, b.top[i].value, rel * scale) << "top " << i;
  for (size_t i = 0; i < a.bottom.size(); ++i)
    EXPECT_NEAR(a.bottom[i].value, b.bottom[i].value, rel * scale) << "bottom " << i;
}

TEST(CudaGraphAnalyze, CudaRunsMatchCpuRuns) {
  HSPEC_REQUIRE_DEVICE();
  const RunFiles f;
  const Graph g = residual_net(3, 92);
  const AnalyzeReport cpu = run_analyze_graph(run_options(f, "cpu"), g);
  const AnalyzeReport gpu = run_analyze_graph(run_options(f, "cuda"), g);
  EXPECT_EQ(gpu.backend, "cuda");
  EXPECT_EQ(gpu.device.rfind("cuda:0 (", 0), 0u) << gpu.device;
  EXPECT_TRUE(gpu.converged);
  EXPECT_NEAR(gpu.loss_value, cpu.loss_value, 1e-12);
  expect_same_values(gpu, cpu, 1e-10);
  // Exact mode: the dense matrix from products on the card, cuSOLVER's solve.
  AnalyzeOptions ex = run_options(f, "cuda");
  ex.exact = true;
  const AnalyzeReport exact = run_analyze_graph(ex, g);
  EXPECT_NE(exact.exact_solver.find("cuSOLVER"), std::string::npos) << exact.exact_solver;
  expect_same_values(exact, cpu, 1e-9);
  // fp32 and tf32 on the card: fp32 rounding, and TF32's 10-bit mantissa.
  AnalyzeOptions lo = run_options(f, "cuda");
  lo.precision = Precision::Fp32;
  lo.tol = 1e-4;
  expect_same_values(run_analyze_graph(lo, g), cpu, 1e-3);
  lo.precision = Precision::Tf32;
  lo.tol = 1e-2;  // TF32 products carry ~1e-3 relative error: a tighter tol cannot be met
  expect_same_values(run_analyze_graph(lo, g), cpu, 3e-2);
}

TEST(CudaGraphAnalyze, MaxMemoryOnTheCardIsChecked) {
  HSPEC_REQUIRE_DEVICE();
  const RunFiles f;
  AnalyzeOptions o = run_options(f, "cuda:0");
  o.max_memory = 4096;  // not even the data fits
  EXPECT_THROW(run_analyze_graph(o, residual_net(3, 93)), UsageError);
}

}  // namespace
}  // namespace hspec
