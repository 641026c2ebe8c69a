// run_analyze: option checks, file loading, backend choice and the Lanczos run.
#include "hspec/analysis/analyze.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <memory>

#include "hspec/analysis/analyze_estimators.hpp"
#include "hspec/analysis/memory_plan.hpp"
#include "hspec/backends/cpu/blas_runtime.hpp"
#include "hspec/backends/cuda/cuda_backend.hpp"
#include "hspec/device.hpp"
#include "hspec/error.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/formats/onnx.hpp"
#include "hspec/graph/analyze_graph.hpp"
#include "hspec/mlp/model.hpp"
#include "hspec/solvers/exact.hpp"

namespace hspec {

// On several ranks, `cuda` and `auto` mean the rank's own card: its local rank (its index
// among the ranks on its node) modulo the node's device count.
int rank_device(int count) {
  return world() != nullptr && count > 0 ? local_rank() % count : 0;
}

// Shared with the graph path (host/graph/analyze_graph.cpp).
DeviceChoice choose_device(const DeviceRequest& d) {
  if (d.kind == DeviceRequest::Kind::Cpu) return {};
  if (d.kind == DeviceRequest::Kind::Auto) {
    if (const int count = cuda_device_count(); count > 0) return {true, rank_device(count), ""};
    // A driver too old for the runtime must not pass for "no GPU" silently.
    return {false, 0, built_with_cuda() ? cuda_probe_reason() : ""};
  }
  if (!built_with_cuda())
    throw UsageError("--device " + d.text() + ": this hspec was built without CUDA");
  const int count = cuda_device_count();
  if (count == 0)
    throw UsageError("--device " + d.text() + ": no usable CUDA device (" + cuda_probe_reason() +
                     ")");
  const int index = d.index < 0 ? rank_device(count) : d.index;  // plain `cuda`: the rank's card
  if (index >= count)
    throw UsageError("--device " + d.text() + ": " + std::to_string(count) +
                     " CUDA device(s) visible");
  return {true, index, ""};
}

SymmetricEigensolver cuda_eigensolver(int device) {
  return {"cuSOLVER syevd on cuda:" + std::to_string(device),
          [device](int64_t n, double* a, int64_t lda, double* w) {
            cuda_symmetric_eigensolve(device, n, a, lda, w);
          }};
}

namespace {

Loss infer_loss(const AnalyzeOptions& opt, const Model& m, const Dataset& ds) {
  if (opt.loss) return *opt.loss;
  if (m.has_loss_hint) return m.loss_hint;
  if (!ds.targets.empty()) return Loss::MSE;
  return m.output_dim() == 1 ? Loss::BCE : Loss::CE;
}

uint64_t default_max_memory() {
  return default_host_budget();
}

template <class T>
void run_solver(CurvatureOperator<T>& op, VectorSpace<T>& space, const AnalyzeOptions& opt,
                const LanczosOptions& lo, const SymmetricEigensolver& eig, AnalyzeReport& rep) {
  if (opt.exact) {
    report_phase(opt.progress, "exact");  // dense build and solve: elapsed time only
    const uint64_t budget = opt.max_memory > 0 ? opt.max_memory : default_max_memory();
    ExactResult ex = exact_spectrum<T>(op, space, opt.top, opt.bottom, opt.tol, budget, eig);
    rep.exact_solver = ex.solver;
    rep.exact = true;
    rep.top = ex.top;
    rep.bottom = ex.bottom;
    rep.hvps = ex.products;
    rep.eigenvalues = std::move(ex.eigenvalues);
    rep.trace = ex.trace;
    rep.asymmetry = ex.asymmetry;
    rep.converged = true;
    for (const auto& v : rep.top) rep.converged &= v.converged;
    for (const auto& v : rep.bottom) rep.converged &= v.converged;
    return;
  }
  LanczosResult<T> res = BlockLanczos<T>(op, space).compute(lo);
  rep.top = res.top;
  rep.bottom = res.bottom;
  rep.hvps = res.products;
  rep.restarts = res.restarts;
  rep.converged = res.converged;
  rep.interrupted = res.interrupted;
}

// The solver and estimators on the operator `build` makes: directly in a single-process run;
// on several ranks, on the data-parallel operator over every rank's shard operator.
template <class T>
void run_operator(const std::function<ShardOperator<T>()>& build, VectorSpace<T>& space,
                  const AnalyzeOptions& opt, const LanczosOptions& lo,
                  const SymmetricEigensolver& eig, int device, AnalyzeReport& rep) {
  if (opt.distributed == nullptr) {
    ShardOperator<T> s = build();
    rep.loss_value = s.loss;
    rep.grad_norm = gradient_norm(s.gradient);
    run_solver<T>(*s.op, space, opt, lo, eig, rep);
    run_estimators<T>(*s.op, space, opt, rep);
    return;
  }
  DataParallelRun& run = *opt.distributed;
  DataParallelOperator<T> op(*run.comm, *run.agreement, run.total, run.shard.count, build, device);
  rep.loss_value = op.loss_value();
  rep.grad_norm = op.grad_norm();
  run_solver<T>(op, space, opt, lo, eig, rep);
  run_estimators<T>(op, space, opt, rep);
  rep.ranks = run.comm->size();
  rep.data_parallel = op.info();
}

// An MLP checkpoint runs as a graph (graph_from_mlp) on the graph operator, the one operator
// every model runs on, with the CPU or the CUDA compute backend.
template <class T>
void solve(const AnalyzeOptions& opt, const Model& model, const Dataset& ds, Loss loss,
           const DeviceChoice& dev, AnalyzeReport& rep) {
  Graph graph = graph_from_mlp(model);
  graph.source = opt.model_path;
  check_data_fits(model, ds, loss);  // the MLP path's own messages, before the graph's
  // Every rank runs the same kernels: rank 0 alone warns.
  if (!dev.cuda && is_output_rank()) cpu::warn_if_slow_kernels(model.num_params(), ds.n);
  solve_graph<T>(opt, graph, make_plan(graph), ds, loss, dev, rep);
}

}  // namespace

void report_run_settings(const AnalyzeOptions& opt, Loss loss, AnalyzeReport& rep) {
  rep.loss = loss_name(loss);
  rep.curvature = curvature_name(opt.curvature);
  rep.precision = precision_name(opt.precision);
  rep.block = opt.block;
  rep.tol = opt.tol;
  rep.seed = opt.seed;
  rep.timings = opt.timings;
}

// Shared with the graph path (host/graph/analyze_graph.cpp).
LanczosOptions analyze_lanczos_options(const AnalyzeOptions& opt) {
  LanczosOptions lo;
  lo.top = opt.top;
  lo.bottom = opt.bottom;
  lo.block = opt.block;
  lo.tol = opt.tol;
  lo.max_products = opt.max_hvps;
  lo.max_basis = opt.max_basis;
  lo.seed = opt.seed;
  lo.cancel = opt.cancel;
  lo.progress = opt.progress;
  return lo;
}

uint64_t analyze_memory_budget(const AnalyzeOptions& opt) {
  return opt.max_memory > 0 ? opt.max_memory : default_max_memory();
}
template <class T>
void run_analyze_operator(const std::function<ShardOperator<T>()>& build, VectorSpace<T>& space,
                          const AnalyzeOptions& opt, const LanczosOptions& lo,
                          const SymmetricEigensolver& eig, int device, AnalyzeReport& rep) {
  run_operator<T>(build, space, opt, lo, eig, device, rep);
}
template void run_analyze_operator<float>(const std::function<ShardOperator<float>()>&,
                                          VectorSpace<float>&, const AnalyzeOptions&,
                                          const LanczosOptions&, const SymmetricEigensolver&, int,
                                          AnalyzeReport&);
template void run_analyze_operator<double>(const std::function<ShardOperator<double>()>&,
                                           VectorSpace<double>&, const AnalyzeOptions&,
                                           const LanczosOptions&, const SymmetricEigensolver&, int,
                                           AnalyzeReport&);

uint64_t parse_bytes(const std::string& s) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    throw UsageError("bad byte count '" + s + "' (e.g. 512M, 8G)");
  }
  const std::string unit = s.substr(used);
  double mult = 1;
  if (unit == "K" || unit == "KiB" || unit == "k")
    mult = 1024.0;
  else if (unit == "M" || unit == "MiB")
    mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB")
    mult = 1024.0 * 1024 * 1024;
  else if (!unit.empty())
    throw UsageError("bad byte count '" + s + "' (e.g. 512M, 8G)");
  // Below one byte would truncate to 0, which means "default" downstream.
  if (!(v * mult >= 1) || v * mult > 1e18) throw UsageError("bad byte count '" + s + "'");
  return static_cast<uint64_t>(v * mult);
}

void check_analyze_options(const AnalyzeOptions& opt) {
  if (opt.model_path.empty()) throw UsageError("--model is required");
  if (opt.data_path.empty()) throw UsageError("--data is required");
  // In int64: with both near INT_MAX, top + bottom would overflow int (undefined behaviour).
  if (opt.top < 0 || opt.bottom < 0 || int64_t{opt.top} + opt.bottom == 0)
    throw UsageError("--top and --bottom must be >= 0 and not both 0");
  if (opt.block < 1 || opt.block > 1024) throw UsageError("--block must be in [1, 1024]");
  if (!(opt.tol > 0) || !(opt.tol < 1)) throw UsageError("--tol must be in (0, 1)");
  if (opt.max_hvps < 0) throw UsageError("--max-hvps must be >= 0");
  if (opt.max_basis < 0) throw UsageError("--max-basis must be >= 0");
  if (opt.samples < 0) throw UsageError("--samples must be >= 0");
  check_estimator_options(opt);
}

namespace {

AnalyzeReport run_analyze_here(const AnalyzeOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  check_analyze_options(opt);
  const bool graph_model = is_graph_model(opt.model_path);
  if (!opt.params_path.empty() && !graph_model)
    throw UsageError("--params replaces an ONNX graph's initializers: it needs --model M.onnx");
  if (graph_model) {  // ONNX: the graph engine (host/graph/)
    Graph graph = load_onnx(opt.model_path);
    if (!opt.params_path.empty()) apply_params(graph, opt.params_path);
    return run_analyze_graph(
        opt, graph, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const DeviceChoice dev = choose_device(opt.device);
  if (opt.precision == Precision::Tf32 && !dev.cuda)
    throw UsageError("--precision tf32 needs a CUDA device (TF32 is a tensor-core format)");

  report_phase(opt.progress, "loading");
  Model model = load_model(opt.model_path);
  if (opt.activation) {
    model.activation = *opt.activation;
  } else if (!model.has_activation_hint && model.layers.size() > 1) {
    throw UsageError(opt.model_path +
                     ": the checkpoint does not record its activation; pass --activation "
                     "(identity, relu, tanh, sigmoid, gelu)");
  }
  // fp32 compute: a weight beyond float range would become Inf in the operator's copy.
  if (opt.precision != Precision::Fp64) {
    for (const Layer& l : model.layers) {
      for (const auto* v : {&l.weight, &l.bias}) {
        for (size_t i = 0; i < v->size(); ++i) {
          if (std::fabs((*v)[i]) > std::numeric_limits<float>::max())
            throw InputError(opt.model_path + ": tensor '" + (l.name.empty() ? "" : l.name + ".") +
                             (v == &l.weight ? "weight" : "bias") + "' value at index " +
                             std::to_string(i) + " is beyond fp32 range (use --precision fp64)");
        }
      }
    }
  }
  Dataset ds = load_dataset(opt.data_path, opt.labels_path);
  truncate_dataset(ds, opt.samples);
  const Loss loss = infer_loss(opt, model, ds);  // from the whole data: the same on every rank
  const int64_t samples = ds.n;
  if (opt.distributed != nullptr) shard_for_run(ds, *opt.distributed);

  AnalyzeReport rep;
  rep.params = model.num_params();
  rep.samples = samples;
  rep.layer_sizes.push_back(model.input_dim());
  for (const Layer& l : model.layers) rep.layer_sizes.push_back(l.out);
  rep.activation = model.layers.size() > 1 ? activation_name(model.activation) : "none";
  report_run_settings(opt, loss, rep);
  try {
    if (opt.precision == Precision::Fp64)
      solve<double>(opt, model, ds, loss, dev, rep);
    else
      solve<float>(opt, model, ds, loss, dev, rep);
  } catch (const NumericalError& e) {
    // Inputs were checked finite, so NaN/Inf here is overflow during the run; say what helps.
    throw NumericalError(std::string(e.what()) +
                         (opt.precision == Precision::Fp64
                              ? " (overflow in fp64: check the checkpoint's scale)"
                              : " (overflow in " + std::string(precision_name(opt.precision)) +
                                    "? try --precision fp64)"));
  }
  rep.verdict = verdict_of(rep, opt.lr);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace

AnalyzeReport run_analyze(const AnalyzeOptions& opt) {
  Communicator* comm = world();
  if (comm == nullptr) return run_analyze_here(opt);
  // Every rank runs the whole analysis on its shard; see include/hspec/distributed/.
  RankAgreement agreement(*comm, opt.cancel);
  DataParallelRun run;
  run.comm = comm;
  run.agreement = &agreement;
  AnalyzeOptions o = opt;
  o.distributed = &run;
  o.cancel = agreement.cancel_flag();  // changes at the same product on every rank
  if (!is_output_rank()) o.progress = nullptr;
  try {
    AnalyzeReport rep = run_analyze_here(o);
    agreement.checkpoint();  // a rank that failed after the last product is heard here
    return rep;
  } catch (...) {
    if (agreement.failed()) throw;
    agreement.fail(std::current_exception());
  }
}

}  // namespace hspec
