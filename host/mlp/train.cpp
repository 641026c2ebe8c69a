// `hspec train`: minibatch SGD whose loss and gradient come from the graph operator's primal
// pass on the MLP as a graph (the same forward/backward `analyze` runs), so the loss a
// checkpoint is trained to is the loss `analyze` reports at it.
#include "hspec/mlp/train.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <type_traits>

#include "hspec/error.hpp"
#include "hspec/graph/graph_operator.hpp"
#include "hspec/mlp/model.hpp"
#include "hspec/mlp/workloads.hpp"
#include "hspec/random.hpp"

namespace hspec {
namespace {

// A stream of the counter-based generator that random_mlp's streams (2l, 2l+1) never reach.
constexpr uint64_t kShuffleStream = 0x5348554646000000ull;

// The shortest of %.15g..%.17g that reads back as v: "0.1", not "0.10000000000000001".
std::string fmt(double v) {
  char buf[40];
  for (int prec = 15; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

// The checkpoint stores float32; rounding the weights we hold keeps "the model" and "the
// checkpoint" the same thing, so the final loss is the loss at the bytes we write.
void round_to_float(std::vector<double>& theta) {
  for (double& v : theta) v = static_cast<double>(static_cast<float>(v));
}

// Fisher-Yates with the counter-based generator: the order depends only on (seed, epoch).
void shuffle(std::vector<int64_t>& order, uint64_t seed, int epoch) {
  for (size_t i = order.size(); i-- > 1;) {
    const uint64_t r = rng::bits(seed, kShuffleStream + static_cast<uint64_t>(epoch), i);
    std::swap(order[i], order[r % (i + 1)]);
  }
}

void gather(const Dataset& src, const std::vector<int64_t>& order, size_t first, size_t count,
            Dataset& dst) {
  dst.n = static_cast<int64_t>(count);
  dst.inputs.resize(count * static_cast<size_t>(src.d));
  if (!src.labels.empty()) dst.labels.resize(count);
  if (!src.targets.empty()) dst.targets.resize(count * static_cast<size_t>(src.target_dim));
  for (size_t b = 0; b < count; ++b) {
    const size_t s = static_cast<size_t>(order[first + b]);
    std::copy_n(src.inputs.begin() + s * src.d, src.d, dst.inputs.begin() + b * src.d);
    if (!src.labels.empty()) dst.labels[b] = src.labels[s];
    if (!src.targets.empty())
      std::copy_n(src.targets.begin() + s * src.target_dim, src.target_dim,
                  dst.targets.begin() + b * src.target_dim);
  }
}

}  // namespace

std::vector<int64_t> parse_layers(const std::string& s) {
  const std::string usage =
      "--layers: bad layer list '" + s + "' (widths joined by '-', e.g. 784-128-10)";
  std::vector<int64_t> sizes;
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t dash = std::min(s.find('-', pos), s.size());
    const std::string part = s.substr(pos, dash - pos);
    if (part.empty() || part.size() > 9 || part.find_first_not_of("0123456789") != part.npos)
      throw UsageError(usage);
    sizes.push_back(std::stoll(part));
    if (sizes.back() < 1) throw UsageError(usage);
    pos = dash + 1;
  }
  if (sizes.size() < 2) throw UsageError(usage + ": need at least an input and an output width");
  return sizes;
}

template <class T>
TrainResult train_sgd(const TrainOptions& opt, const Dataset& train, const Dataset* eval,
                      const std::function<void(const EpochStats&)>& progress) {
  const bool fp32 = std::is_same<T, float>::value;
  TrainResult r;
  r.loss = opt.loss;
  r.classification = r.loss != Loss::MSE;
  r.samples = train.n;
  r.model = random_mlp(parse_layers(opt.layers), opt.activation, opt.seed);
  check_data_fits(r.model, train, r.loss);
  if (eval) check_data_fits(r.model, *eval, r.loss);
  std::vector<double> theta = r.model.flatten();
  if (fp32) round_to_float(theta);
  r.model.unflatten(theta);

  // Training needs only the primal pass: Gauss-Newton skips the phi'' terms the Hessian's
  // cache would hold, and one direction keeps the tangent buffers it sizes small.
  Plan plan = make_plan(graph_from_mlp(r.model));  // lowered once; each step sets theta
  GraphOperatorOptions step_opt;
  step_opt.curvature = Curvature::GGN;
  step_opt.loss = r.loss;
  step_opt.max_block = 1;
  std::vector<int64_t> order(static_cast<size_t>(train.n));
  std::iota(order.begin(), order.end(), 0);
  Dataset batch;
  batch.d = train.d;
  batch.target_dim = train.target_dim;
  batch.source = train.source;
  const size_t n = order.size(), bsz = static_cast<size_t>(opt.batch);
  for (int e = 1; e <= opt.epochs; ++e) {
    const auto t0 = std::chrono::steady_clock::now();
    shuffle(order, opt.seed, e);
    double loss_sum = 0;
    int64_t correct = 0;
    for (size_t first = 0; first < n; first += bsz) {
      const size_t count = std::min(bsz, n - first);
      gather(train, order, first, count, batch);
      try {
        set_parameters(plan, theta);
        const GraphCurvatureOperator<T> op(plan, batch, step_opt);
        loss_sum += op.loss_value() * static_cast<double>(count);
        correct += op.correct();
        const std::vector<double>& g = op.gradient();
        for (size_t i = 0; i < theta.size(); ++i) theta[i] -= opt.lr * g[i];
      } catch (const NumericalError&) {
        throw NumericalError("training diverged in epoch " + std::to_string(e) + " at step " +
                             std::to_string(r.steps + 1) +
                             " (loss or gradient not finite); try a smaller --lr");
      }
      if (fp32) round_to_float(theta);  // SGD in float32 arithmetic, as PyTorch's would be
      ++r.steps;
    }
    EpochStats st;
    st.epoch = e;
    st.loss = loss_sum / static_cast<double>(n);
    st.accuracy = static_cast<double>(correct) / static_cast<double>(n);
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.epochs.push_back(st);
    if (progress) progress(st);
  }

  round_to_float(theta);  // a no-op for fp32; fp64 runs are evaluated at what we store
  r.model.unflatten(theta);
  // The operator `analyze` runs, with its default block (1), so the loss is summed in the
  // same chunks and order.
  GraphOperatorOptions final_opt;
  final_opt.loss = r.loss;
  final_opt.max_block = 1;
  set_parameters(plan, theta);
  const GraphCurvatureOperator<T> fin(plan, train, final_opt);
  r.final_loss = fin.loss_value();
  r.final_grad_norm = fin.grad_norm();
  r.final_accuracy = static_cast<double>(fin.correct()) / static_cast<double>(train.n);
  if (eval) {
    const GraphCurvatureOperator<T> ev(plan, *eval, final_opt);
    r.has_eval = true;
    r.eval_samples = eval->n;
    r.eval_loss = ev.loss_value();
    r.eval_accuracy = static_cast<double>(ev.correct()) / static_cast<double>(eval->n);
  }
  return r;
}

template TrainResult train_sgd<float>(const TrainOptions&, const Dataset&, const Dataset*,
                                      const std::function<void(const EpochStats&)>&);
template TrainResult train_sgd<double>(const TrainOptions&, const Dataset&, const Dataset*,
                                       const std::function<void(const EpochStats&)>&);

std::map<std::string, std::string> train_metadata(const TrainOptions& opt, const TrainResult& r) {
  std::map<std::string, std::string> m = {
      {"hspec.version", HSPEC_VERSION},
      {"hspec.train.layers", opt.layers},
      {"hspec.train.optimizer", "sgd"},
      {"hspec.train.lr", fmt(opt.lr)},
      {"hspec.train.batch", std::to_string(opt.batch)},
      {"hspec.train.epochs", std::to_string(opt.epochs)},
      {"hspec.train.steps", std::to_string(r.steps)},
      {"hspec.train.seed", std::to_string(opt.seed)},
      {"hspec.train.samples", std::to_string(r.samples)},
      {"hspec.train.precision", precision_name(opt.precision)},
      {"hspec.train.final_loss", fmt(r.final_loss)},
  };
  if (r.classification) m["hspec.train.final_accuracy"] = fmt(r.final_accuracy);
  if (r.has_eval) {
    m["hspec.train.eval_samples"] = std::to_string(r.eval_samples);
    m["hspec.train.eval_loss"] = fmt(r.eval_loss);
    if (r.classification) m["hspec.train.eval_accuracy"] = fmt(r.eval_accuracy);
  }
  return m;
}

void check_train_options(const TrainOptions& opt) {
  if (opt.data_path.empty()) throw UsageError("--data is required");
  parse_layers(opt.layers);
  if (opt.batch < 1) throw UsageError("--batch must be at least 1");
  if (!(opt.lr > 0) || !std::isfinite(opt.lr)) throw UsageError("--lr must be a positive number");
  if (opt.epochs < 1) throw UsageError("--epochs must be at least 1");
  if (opt.samples < 0 || opt.eval_samples < 0) throw UsageError("--samples must be >= 0");
  if (opt.precision == Precision::Tf32) throw UsageError("--precision must be fp32 or fp64");
  if (opt.device.cuda())
    throw UsageError("--device " + opt.device.text() +
                     ": training on CUDA is not available yet (use --device cpu or auto)");
  if (opt.eval_data_path.empty() && !opt.eval_labels_path.empty())
    throw UsageError("--eval-labels needs --eval-data");
  if (!opt.out_path.empty()) {
    // Fail before training, not after minutes of it.
    const auto dir = std::filesystem::path(opt.out_path).parent_path();
    if (!dir.empty() && !std::filesystem::is_directory(dir))
      throw UsageError("--out: directory '" + dir.string() + "' does not exist");
  }
}

TrainResult run_train(const TrainOptions& opt,
                      const std::function<void(const EpochStats&)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  check_train_options(opt);

  Dataset train = load_dataset(opt.data_path, opt.labels_path);
  truncate_dataset(train, opt.samples);
  Dataset eval;
  if (!opt.eval_data_path.empty()) {
    eval = load_dataset(opt.eval_data_path, opt.eval_labels_path);
    truncate_dataset(eval, opt.eval_samples);
  }
  const Dataset* ev = opt.eval_data_path.empty() ? nullptr : &eval;
  TrainResult r = opt.precision == Precision::Fp64 ? train_sgd<double>(opt, train, ev, progress)
                                                   : train_sgd<float>(opt, train, ev, progress);
  if (!opt.out_path.empty()) save_model(opt.out_path, r.model, r.loss, train_metadata(opt, r));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace hspec
