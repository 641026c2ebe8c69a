// Graph-engine benchmark: one Hessian-vector product through a small ResNet-style net
// (conv-BN-relu, a residual block of two conv-BN, maxpool, global average pool, Gemm) on
// seeded 28x28 inputs. Prints the loss, the median ms per product for blocks of 1 and 8
// directions, and with --dump PATH writes weights, data, directions and the products to a
// safetensors file, so bench/graph_vs_torch.py can check and time PyTorch on the same.
// With --model M.onnx --data D.safetensors [--params P.safetensors] it times any exported
// graph instead (token-id inputs and per-position labels as `hspec analyze` reads them), and
// --dump then writes every initializer, the directions, the products and the gradient
// (bench/transformer_vs_torch.py). --threads N sets the BLAS's and hspec's loops' threads.
// --device cuda runs the op rules on the CUDA compute backend with the blocks on the card
// (scripts/gpu-check.sh's bench step); a product returns after its finiteness check has
// synchronised the card, so the wall times are whole products.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "hspec/backends/cpu/blas_runtime.hpp"
#include "hspec/backends/cuda/cuda_compute.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/formats/onnx.hpp"
#include "hspec/formats/safetensors.hpp"
#include "hspec/graph/graph_operator.hpp"
#include "hspec/random.hpp"

namespace {

using namespace hspec;
using Clock = std::chrono::steady_clock;

struct Net {
  Graph g;
  uint64_t stream = 0;
  void tensor(const std::string& name, Shape shape, bool param, double scale, double shift) {
    GraphTensor t;
    t.shape = std::move(shape);
    for (int64_t i = 0; i < t.numel(); ++i)
      t.values.push_back(
          shift + scale * (param ? rng::gaussian(7, stream, i) : rng::uniform(7, stream, i) - 0.5));
    ++stream;
    g.initializers[name] = t;
    if (param) g.parameters.push_back(name);
  }
  GraphNode& node(const std::string& op, std::vector<std::string> in, const std::string& out) {
    GraphNode n;
    n.op = op;
    n.name = out;
    n.inputs = std::move(in);
    n.outputs = {out};
    g.nodes.push_back(n);
    return g.nodes.back();
  }
  GraphAttribute ints(std::vector<int64_t> v) {
    GraphAttribute a;
    a.kind = GraphAttribute::Kind::Ints;
    a.ints = std::move(v);
    return a;
  }
  std::string conv_bn(const std::string& x, const std::string& name, int64_t cin, int64_t cout) {
    tensor(name + ".conv.weight", {cout, cin, 3, 3}, true, 1.0 / (3.0 * std::sqrt(double(cin))), 0);
    node("Conv", {x, name + ".conv.weight"}, name + ".conv").attrs["pads"] = ints({1, 1, 1, 1});
    tensor(name + ".bn.weight", {cout}, true, 0.1, 1.0);
    tensor(name + ".bn.bias", {cout}, true, 0.1, 0.0);
    tensor(name + ".bn.running_mean", {cout}, false, 0.2, 0.0);
    tensor(name + ".bn.running_var", {cout}, false, 1.0, 1.0);
    node("BatchNormalization",
         {name + ".conv", name + ".bn.weight", name + ".bn.bias", name + ".bn.running_mean",
          name + ".bn.running_var"},
         name + ".bn");
    return name + ".bn";
  }
};

Graph resnet(int64_t width) {
  Net n;
  n.g.source = "resnet-bench";
  n.g.input = "x";
  n.g.input_shape = {1, 28, 28};
  n.node("Relu", {n.conv_bn("x", "stem", 1, width)}, "a1");
  n.node("Relu", {n.conv_bn("a1", "block.0", width, width)}, "a2");
  n.node("Add", {n.conv_bn("a2", "block.1", width, width), "a1"}, "res");
  n.node("Relu", {"res"}, "a3");
  GraphNode& mp = n.node("MaxPool", {"a3"}, "mp");
  mp.attrs["kernel_shape"] = n.ints({2, 2});
  mp.attrs["strides"] = n.ints({2, 2});
  n.node("GlobalAveragePool", {"mp"}, "gap");
  n.node("Flatten", {"gap"}, "flat");
  n.tensor("fc.weight", {10, width}, true, 1.0 / std::sqrt(double(width)), 0);
  n.tensor("fc.bias", {10}, true, 0.1, 0);
  GraphAttribute one;
  one.i = 1;
  n.node("Gemm", {"flat", "fc.weight", "fc.bias"}, "y").attrs["transB"] = one;
  n.g.output = "y";
  return n.g;
}

template <class T>
void run(const Graph& g, const Dataset& ds, int reps, const std::string& dump, uint64_t budget,
         bool cuda) {
  GraphOperatorOptions o;
  o.loss = Loss::CE;
  o.max_block = 8;
  o.memory_budget = budget;
  const auto t0 = Clock::now();
  GraphCurvatureOperator<T> op(g, ds, o, cuda ? make_cuda_compute<T>(0) : nullptr);
  const double setup = std::chrono::duration<double>(Clock::now() - t0).count();
  const int64_t P = op.dim();
  std::vector<T> x(size_t(P * 8)), y(size_t(P * 8));
  for (int64_t i = 0; i < P * 8; ++i) x[size_t(i)] = T(rng::gaussian(9, 1, i));
  // The blocks where the operator reads and writes them: host vectors, or device copies.
  std::unique_ptr<Compute<T>> blocks = cuda ? make_cuda_compute<T>(0) : nullptr;
  Buffer<T> dx, dy;
  T* xp = x.data();
  T* yp = y.data();
  if (blocks) {
    dx = blocks->template alloc<T>(P * 8);
    dy = blocks->template alloc<T>(P * 8);
    blocks->upload(x.data(), dx.data(), P * 8);
    xp = dx.data();
    yp = dy.data();
  }
  for (int64_t k : {1, 8}) {
    op.apply(BlockView<const T>(xp, P, k), BlockView<T>(yp, P, k));  // warm-up
    std::vector<double> ms, cpu;
    for (int r = 0; r < reps; ++r) {
      const auto t1 = Clock::now();
      const std::clock_t c1 = std::clock();
      op.apply(BlockView<const T>(xp, P, k), BlockView<T>(yp, P, k));
      cpu.push_back(1e3 * double(std::clock() - c1) / CLOCKS_PER_SEC);
      ms.push_back(1e3 * std::chrono::duration<double>(Clock::now() - t1).count());
    }
    std::sort(ms.begin(), ms.end());
    std::sort(cpu.begin(), cpu.end());
    // Wall time is disturbed by other processes on a shared machine; process CPU time less.
    std::printf(
        "{\"device\": \"%s\", \"precision\": \"%s\", \"params\": %lld, \"samples\": %lld, "
        "\"block\": %lld, "
        "\"wall_ms_per_product\": %.2f, \"cpu_ms_per_product\": %.2f, \"setup_s\": %.3f, "
        "\"loss\": %.15g, \"chunk\": %lld, \"primal_cached\": %s}\n",
        cuda ? "cuda" : "cpu", sizeof(T) == 4 ? "fp32" : "fp64", (long long)P, (long long)ds.n,
        (long long)k, ms[ms.size() / 2] / double(k), cpu[cpu.size() / 2] / double(k), setup,
        op.loss_value(), (long long)op.chunk_size(), op.primal_cached() ? "true" : "false");
    std::fflush(stdout);
  }
  if (dump.empty()) return;
  op.apply(BlockView<const T>(xp, P, 8), BlockView<T>(yp, P, 8));
  if (blocks) blocks->download(yp, y.data(), P * 8);
  std::vector<TensorData> t;
  for (const auto& [name, tensor] : g.initializers)
    if (int64_t(tensor.values.size()) == tensor.numel())  // not the integer shape constants
      t.push_back(make_tensor(name, tensor.shape, tensor.values));
  if (g.source == "resnet-bench") {  // an exported model's data is its --data file
    t.push_back(make_tensor("inputs", {ds.n, 1, 28, 28}, ds.inputs));
    t.push_back(make_tensor("labels", {ds.n}, ds.labels));
  }
  t.push_back(make_tensor("directions", {8, P}, std::vector<double>(x.begin(), x.end())));
  t.push_back(make_tensor("products", {8, P}, std::vector<double>(y.begin(), y.end())));
  t.push_back(make_tensor("gradient", {P}, op.gradient()));
  std::string order;
  for (const auto& p : g.parameters) order += (order.empty() ? "" : ",") + p;
  write_safetensors(dump, t, {{"parameters", order}, {"loss", std::to_string(op.loss_value())}});
}

}  // namespace

int main(int argc, char** argv) {
  std::string dump, precision = "fp32", device = "cpu", model, data, params;
  int threads = 0;
  int64_t samples = 1024, width = 16;
  int reps = 5;
  uint64_t budget = 2ull << 30;  // the operator's default; --budget-mib to change
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--dump")
      dump = v;
    else if (a == "--precision")
      precision = v;
    else if (a == "--samples")
      samples = std::stoll(v);
    else if (a == "--width")
      width = std::stoll(v);
    else if (a == "--budget-mib")
      budget = std::stoull(v) << 20;
    else if (a == "--reps")
      reps = std::stoi(v);
    else if (a == "--device")
      device = v;
    else if (a == "--model")
      model = v;
    else if (a == "--data")
      data = v;
    else if (a == "--params")
      params = v;
    else if (a == "--threads")
      threads = std::stoi(v);
    else {
      std::fprintf(stderr, "hspec_bench_graph: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (model.empty() != data.empty()) {
    std::fprintf(stderr, "hspec_bench_graph: --model and --data go together\n");
    return 2;
  }
  if (threads > 0) cpu::set_threads(threads);
  if (device != "cpu" && device != "cuda") {
    std::fprintf(stderr, "hspec_bench_graph: --device cpu|cuda\n");
    return 2;
  }
  try {
    Graph g;
    Dataset ds;
    if (!model.empty()) {
      g = load_onnx(model);
      if (!params.empty()) apply_params(g, params);
      DatasetOptions dopt;
      dopt.token_ids = g.input_is_int;
      dopt.position_labels = true;
      ds = load_dataset(data, "", dopt);
      truncate_dataset(ds, samples);
    } else {
      g = resnet(width);
      ds.n = samples;
      ds.d = 28 * 28;
      ds.source = "bench";
      for (int64_t i = 0; i < samples * ds.d; ++i)
        ds.inputs.push_back(float(rng::uniform(11, 0, i)));
      for (int64_t i = 0; i < samples; ++i) ds.labels.push_back(int64_t(rng::bits(11, 1, i) % 10));
    }
    if (precision == "fp64")
      run<double>(g, ds, reps, dump, budget, device == "cuda");
    else
      run<float>(g, ds, reps, dump, budget, device == "cuda");
  } catch (const std::exception& e) {  // e.g. no usable CUDA device, an unreadable model
    std::fprintf(stderr, "hspec_bench_graph: %s\n", e.what());
    return 1;
  }
  return 0;
}
