// run_analyze: option checks, file loading, backend choice and the Lanczos run.
#include "hspec/analyze.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include "hspec/cpu_hvp.hpp"
#include "hspec/cpu_space.hpp"
#include "hspec/cuda_backend.hpp"
#include "hspec/dataset.hpp"
#include "hspec/device.hpp"
#include "hspec/error.hpp"
#include "hspec/exact.hpp"

namespace hspec {
namespace {

struct DeviceChoice {
  bool cuda = false;
  int index = 0;
};

DeviceChoice choose_device(const std::string& d) {
  if (d == "cpu") return {};
  if (d == "auto") return {cuda_device_count() > 0, 0};
  if (d == "cuda" || d.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (d.size() > 5) {
      const std::string num = d.substr(5);
      if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos || num.size() > 4)
        throw UsageError("--device: bad device '" + d + "' (auto, cpu, cuda, cuda:N)");
      index = std::stoi(num);
    }
    if (!built_with_cuda())
      throw UsageError("--device " + d + ": this hspec was built without CUDA");
    const int count = cuda_device_count();
    if (index >= count)
      throw UsageError("--device " + d + ": " + std::to_string(count) + " CUDA device(s) visible");
    return {true, index};
  }
  throw UsageError("--device: bad device '" + d + "' (auto, cpu, cuda, cuda:N)");
}

Loss infer_loss(const AnalyzeOptions& opt, const Model& m, const Dataset& ds) {
  if (!opt.loss.empty()) return parse_loss(opt.loss);
  if (m.has_loss_hint) return m.loss_hint;
  if (!ds.targets.empty()) return Loss::MSE;
  return m.output_dim() == 1 ? Loss::BCE : Loss::CE;
}

uint64_t default_max_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return 4ull << 30;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / 2;
}

template <class T>
void run_solver(CurvatureOperator<T>& op, VectorSpace<T>& space, const AnalyzeOptions& opt,
                const LanczosOptions& lo, AnalyzeReport& rep) {
  if (opt.exact) {
    const uint64_t budget = opt.max_memory > 0 ? opt.max_memory : default_max_memory();
    ExactResult ex = exact_spectrum<T>(op, space, opt.top, opt.bottom, opt.tol, budget);
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
}

template <class T>
void solve(const AnalyzeOptions& opt, const Model& model, const Dataset& ds, Loss loss,
           const DeviceChoice& dev, AnalyzeReport& rep) {
  LanczosOptions lo;
  lo.top = opt.top;
  lo.bottom = opt.bottom;
  lo.block = opt.block;
  lo.tol = opt.tol;
  lo.max_products = opt.max_hvps;
  lo.max_basis = opt.max_basis;
  lo.seed = opt.seed;
  CpuOperatorOptions co;
  co.curvature = parse_curvature(opt.curvature);
  co.loss = loss;
  co.max_block = opt.exact ? std::max(opt.block, 16) : opt.block;
  if (opt.max_memory > 0) co.memory_budget = opt.max_memory / 2;
  if (dev.cuda) {
    CudaOperatorOptions cu;
    cu.base = co;
    cu.device = dev.index;
    cu.tf32 = opt.precision == "tf32";
    auto op = make_cuda_operator<T>(model, ds, cu);
    auto space = make_cuda_space<T>(dev.index);
    cu.max_memory = opt.max_memory;
    rep.loss_value = op->loss_value();
    rep.grad_norm = op->grad_norm();
    run_solver<T>(*op, *space, opt, lo, rep);
    rep.backend = "cuda";
    rep.device = "cuda:" + std::to_string(dev.index) + " (" + cuda_device_name(dev.index) + ")";
  } else {
    CpuCurvatureOperator<T> op(model, ds, co);
    CpuSpace<T> space;
    rep.loss_value = op.loss_value();
    rep.grad_norm = op.grad_norm();
    run_solver<T>(op, space, opt, lo, rep);
    rep.backend = "cpu";
    rep.device = "cpu";
  }
}

}  // namespace

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
  if (!(v > 0) || v * mult > 1e18) throw UsageError("bad byte count '" + s + "'");
  return static_cast<uint64_t>(v * mult);
}

AnalyzeReport run_analyze(const AnalyzeOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  if (opt.model_path.empty()) throw UsageError("--model is required");
  if (opt.data_path.empty()) throw UsageError("--data is required");
  if (opt.top < 0 || opt.bottom < 0 || opt.top + opt.bottom == 0)
    throw UsageError("--top and --bottom must be >= 0 and not both 0");
  if (opt.block < 1 || opt.block > 1024) throw UsageError("--block must be in [1, 1024]");
  if (!(opt.tol > 0) || !(opt.tol < 1)) throw UsageError("--tol must be in (0, 1)");
  if (opt.max_hvps < 0) throw UsageError("--max-hvps must be >= 0");
  if (opt.samples < 0) throw UsageError("--samples must be >= 0");
  const Curvature curvature = parse_curvature(opt.curvature);
  if (opt.precision != "fp32" && opt.precision != "fp64" && opt.precision != "tf32")
    throw UsageError("--precision must be fp32, fp64 or tf32");
  const DeviceChoice dev = choose_device(opt.device);
  if (opt.precision == "tf32" && !dev.cuda)
    throw UsageError("--precision tf32 needs a CUDA device (TF32 is a tensor-core format)");

  Model model = load_model(opt.model_path);
  if (!opt.activation.empty()) {
    model.activation = parse_activation(opt.activation);
  } else if (!model.has_activation_hint && model.layers.size() > 1) {
    throw UsageError(opt.model_path +
                     ": the checkpoint does not record its activation; pass --activation "
                     "(identity, relu, tanh, sigmoid, gelu)");
  }
  Dataset ds = load_dataset(opt.data_path, opt.labels_path);
  truncate_dataset(ds, opt.samples);
  const Loss loss = infer_loss(opt, model, ds);

  AnalyzeReport rep;
  rep.params = model.num_params();
  rep.samples = ds.n;
  rep.layer_sizes.push_back(model.input_dim());
  for (const Layer& l : model.layers) rep.layer_sizes.push_back(l.out);
  rep.activation = model.layers.size() > 1 ? activation_name(model.activation) : "none";
  rep.loss = loss_name(loss);
  rep.curvature = curvature_name(curvature);
  rep.precision = opt.precision;
  rep.block = opt.block;
  rep.tol = opt.tol;
  rep.seed = opt.seed;
  if (opt.precision == "fp64")
    solve<double>(opt, model, ds, loss, dev, rep);
  else
    solve<float>(opt, model, ds, loss, dev, rep);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace hspec
