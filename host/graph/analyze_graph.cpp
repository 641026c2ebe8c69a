// run_analyze for graph models: option checks that differ from the MLP path (activation),
// data and loss against the graph's output, the memory check of a graph run (host RAM, or
// the card's free memory with --device cuda), and the GraphCurvatureOperator on the CPU or
// the CUDA compute backend under the shared solver and estimators.
#include "hspec/graph/analyze_graph.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>

#include "hspec/analysis/analyze_estimators.hpp"
#include "hspec/analysis/memory_plan.hpp"
#include "hspec/analysis/progress.hpp"
#include "hspec/backends/cpu/cpu_space.hpp"
#include "hspec/backends/cuda/cuda_backend.hpp"
#include "hspec/backends/cuda/cuda_compute.hpp"
#include "hspec/device.hpp"
#include "hspec/error.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/graph/graph_operator.hpp"
#include "hspec/graph/plan.hpp"

namespace hspec {
namespace {

// The graph counterpart of the MLP run's memory plan: the solver's basis (or the trace and
// density storage that takes its place), the operator's copies of the data, parameters and
// gradient, and one sample's worth of its buffers must fit the budget; what is left goes to
// the operator's chunks. With --device cuda all of it lives on the card, so the budget is
// the card's free memory (and --max-memory when smaller), as for the MLP path.
template <class T>
uint64_t graph_fit_memory(const AnalyzeOptions& opt, const LanczosOptions& lo, const Plan& plan,
                          const Dataset& ds, int64_t max_block, const DeviceChoice& dev) {
  RunMemoryNeed need = lanczos_basis_need(lo, plan.num_params, sizeof(T), max_block, dev.cuda);
  need.after = estimator_bytes(opt, plan.num_params, sizeof(T));
  const double n = double(plan.num_params), t = sizeof(T);
  const GraphMemory gm =
      graph_memory(plan, max_block, sizeof(T), opt.curvature == Curvature::Hessian);
  need.fixed = t * (double(ds.inputs.size() + ds.targets.size()) + n +
                    2.0 * double(plan.param_value_elems)) +
               8.0 * double(ds.labels.size() + ds.ids.size()) + 8.0 * n +
               double(gm.primal_per_sample + gm.tangent_per_sample);
  if (opt.distributed != nullptr)  // a data-parallel rank's staging block and gradient
    need.fixed += data_parallel_bytes(plan.num_params, max_block, sizeof(T));
  MemoryLimits limits;
  limits.max_memory = opt.max_memory;
  limits.host_default = default_host_budget();
  limits.on_device = dev.cuda;
  limits.device = dev.index;
  if (dev.cuda) limits.device_free = cuda_free_memory(dev.index);
  return std::max<uint64_t>(plan_operator_memory(need, limits), 1);
}

}  // namespace

template <class T>
void solve_graph(const AnalyzeOptions& opt, const Graph& graph, const Plan& plan, const Dataset& ds,
                 Loss loss, const DeviceChoice& dev, AnalyzeReport& rep) {
  const LanczosOptions lo = analyze_lanczos_options(opt);
  GraphOperatorOptions go;
  go.curvature = opt.curvature;
  go.loss = loss;
  go.max_block = opt.exact ? std::max(opt.block, 16) : opt.block;
  go.max_block = std::max<int64_t>(go.max_block, estimator_block(opt));
  check_estimator_memory(opt, plan.num_params, sizeof(T));
  if (opt.exact) {
    if (opt.max_memory > 0) go.memory_budget = opt.max_memory / 2;
  } else {
    go.memory_budget = graph_fit_memory<T>(opt, lo, plan, ds, go.max_block, dev);
  }
  report_phase(opt.progress, "primal pass");  // the operator's constructor: loss and gradient
  if (dev.cuda) {
    // The op rules run on the card; the solver's basis lives there too.
    auto space = make_cuda_space<T>(dev.index);
    const auto build = [&]() {
      return shard_operator<T>(std::make_unique<GraphCurvatureOperator<T>>(
          graph, ds, go, make_cuda_compute<T>(dev.index, opt.precision == Precision::Tf32)));
    };
    run_analyze_operator<T>(build, *space, opt, lo, cuda_eigensolver(dev.index), dev.index, rep);
    rep.backend = "cuda";
    rep.device = "cuda:" + std::to_string(dev.index) + " (" + cuda_device_name(dev.index) + ")";
    return;
  }
  CpuSpace<T> space;
  const auto build = [&]() {
    return shard_operator<T>(std::make_unique<GraphCurvatureOperator<T>>(graph, ds, go));
  };
  run_analyze_operator<T>(build, space, opt, lo, lapack_eigensolver(), -1, rep);
  rep.backend = "cpu";
  rep.device = dev.fallback.empty() ? "cpu" : "cpu (CUDA unavailable: " + dev.fallback + ")";
}
template void solve_graph<float>(const AnalyzeOptions&, const Graph&, const Plan&, const Dataset&,
                                 Loss, const DeviceChoice&, AnalyzeReport&);
template void solve_graph<double>(const AnalyzeOptions&, const Graph&, const Plan&, const Dataset&,
                                  Loss, const DeviceChoice&, AnalyzeReport&);

bool is_graph_model(const std::string& path) {
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".onnx") == 0) return true;
  // A safetensors file starts with its header length (8 bytes, little-endian, whose low
  // byte may well be 0x08) and then '{'; an ONNX ModelProto with the varint tag 0x08.
  std::ifstream f(path, std::ios::binary);
  char head[9] = {0};
  f.read(head, sizeof head);
  if (f.gcount() < 2) return false;
  if (f.gcount() == 9 && head[8] == '{') return false;
  return static_cast<unsigned char>(head[0]) == 0x08;
}

AnalyzeReport run_analyze_graph(const AnalyzeOptions& opt, const Graph& graph,
                                double load_seconds) {
  const auto t0 = std::chrono::steady_clock::now();
  check_analyze_options(opt);
  const DeviceChoice dev = choose_device(opt.device);
  if (opt.precision == Precision::Tf32 && !dev.cuda)
    throw UsageError("--precision tf32 needs a CUDA device (TF32 is a tensor-core format)");
  if (opt.activation)
    throw UsageError("--activation applies to MLP checkpoints only; " + graph.source +
                     " defines its activations as graph nodes");
  const Plan plan = make_plan(graph);
  if (opt.precision != Precision::Fp64) {
    for (const auto& [name, t] : graph.initializers)
      for (size_t i = 0; i < t.values.size(); ++i)
        if (std::fabs(t.values[i]) > std::numeric_limits<float>::max())
          throw InputError(graph.source + ": tensor '" + name + "' value at index " +
                           std::to_string(i) + " is beyond fp32 range (use --precision fp64)");
  }
  DatasetOptions dopt;
  dopt.token_ids = plan.input_is_int;
  dopt.position_labels = true;
  Dataset ds = load_dataset(opt.data_path, opt.labels_path, dopt);
  truncate_dataset(ds, opt.samples);
  const int64_t samples = ds.n;
  Loss loss;
  if (opt.loss)
    loss = *opt.loss;
  else if (!ds.targets.empty())
    loss = Loss::MSE;
  else
    loss = plan.output_dim == 1 ? Loss::BCE : Loss::CE;
  if (opt.distributed != nullptr) shard_for_run(ds, *opt.distributed);

  AnalyzeReport rep;
  rep.params = plan.num_params;
  rep.samples = samples;
  rep.graph_source = graph.source;
  rep.graph_nodes = int64_t(graph.nodes.size());
  for (const std::string& p : graph.parameters)
    rep.parameters.emplace_back(p, graph.initializers.at(p).shape);
  report_run_settings(opt, loss, rep);
  try {
    if (opt.precision == Precision::Fp64)
      solve_graph<double>(opt, graph, plan, ds, loss, dev, rep);
    else  // fp32, and tf32 (fp32 numbers, TF32 GEMMs on the card)
      solve_graph<float>(opt, graph, plan, ds, loss, dev, rep);
  } catch (const NumericalError& e) {
    throw NumericalError(std::string(e.what()) +
                         (opt.precision == Precision::Fp64
                              ? " (overflow in fp64: check the model's scale)"
                              : " (overflow in " + std::string(precision_name(opt.precision)) +
                                    "? try --precision fp64)"));
  }
  rep.verdict = verdict_of(rep, opt.lr);
  rep.seconds =
      load_seconds + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace hspec
