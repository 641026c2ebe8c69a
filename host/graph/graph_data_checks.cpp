// What the graph operator checks and plans before it is built: the data against the plan's
// input and the loss (shapes, label and token-id ranges), the tokens a sequence loss averages
// over, and the bytes per sample its primal cache and tangent pass hold (for memory planning).
#include <algorithm>
#include <string>

#include "hspec/error.hpp"
#include "hspec/graph/graph_operator.hpp"

namespace hspec {

int64_t loss_positions(const Plan& plan, Loss loss) {
  const Shape& out = plan.values[size_t(plan.output)].shape;
  return loss == Loss::CE && out.size() == 2 ? out[0] : 1;
}

namespace {
// Token ids: integers for an integer input, of the graph's sequence length, each a row of
// the embedding table (checked here once, so the products never index out of range).
void check_token_ids(const Plan& plan, const Dataset& ds) {
  const std::string& src = ds.source;
  const PlanValue& in = plan.values[size_t(plan.input)];
  if (!plan.input_is_int) {
    if (!ds.ids.empty())
      throw InputError(src + ": 'inputs' holds integer token ids but " + plan.source +
                       " takes floating-point features");
    return;
  }
  if (ds.ids.empty())
    throw InputError(src + ": 'inputs' holds floating-point values but " + plan.source +
                     " takes integer token ids (int64 or int32 [N, T] in safetensors)");
  if (ds.d != in.numel())
    throw InputError(src + ": sequences have " + std::to_string(ds.d) + " tokens but " +
                     plan.source + " takes " + std::to_string(in.numel()) + " per sample");
  for (size_t i = 0; i < ds.ids.size(); ++i)
    if (ds.ids[i] < 0 || ds.ids[i] >= plan.id_limit)
      throw InputError(src + ": token id " + std::to_string(ds.ids[i]) + " at sample " +
                       std::to_string(ds.first_sample + int64_t(i) / ds.d) + ", position " +
                       std::to_string(int64_t(i) % ds.d) + " is out of range [0, " +
                       std::to_string(plan.id_limit) + ") of '" + plan.id_table + "'");
}
}  // namespace

void check_graph_data_fits(const Plan& plan, const Dataset& ds, Loss loss) {
  const std::string& src = ds.source;
  if (ds.n <= 0) throw InputError(src + ": holds no samples");
  check_token_ids(plan, ds);
  const int64_t d = plan.values[size_t(plan.input)].numel();
  if (ds.d != d)
    throw InputError(src + ": samples have " + std::to_string(ds.d) + " features but " +
                     plan.source + " takes " + std::to_string(d) + " per sample");
  const int64_t out = plan.output_dim;
  if (loss == Loss::MSE) {
    if (ds.targets.empty()) throw InputError(src + ": loss mse needs a 'targets' tensor");
    if (ds.target_dim != out)
      throw InputError(src + ": targets have " + std::to_string(ds.target_dim) +
                       " columns but the model has " + std::to_string(out) + " outputs");
    return;
  }
  if (ds.labels.empty()) throw InputError(src + ": loss " + loss_name(loss) + " needs labels");
  const Shape& oshape = plan.values[size_t(plan.output)].shape;
  if (loss == Loss::CE && oshape.size() != 1 && oshape.size() != 2)
    throw InputError(plan.source + ": loss ce needs a [N, C] or [N, T, V] output");
  if (loss == Loss::BCE && out != 1)
    throw InputError("loss bce needs a model with 1 output, this one has " + std::to_string(out));
  // Sequence cross-entropy: logits [N, T, V] need labels [N, T]; [N, C] needs labels [N].
  const int64_t positions = loss_positions(plan, loss);
  if (loss == Loss::CE && oshape.size() == 2 && ds.label_dim != positions)
    throw InputError(
        src + ": " + plan.source + " gives per-token logits [N, " + std::to_string(positions) +
        ", " + std::to_string(oshape[1]) + "], which need labels [N, " + std::to_string(positions) +
        "]" + (ds.label_dim ? ", not [N, " + std::to_string(ds.label_dim) + "]" : ", not [N]"));
  if (positions == 1 && ds.label_dim > 0 && !(oshape.size() == 2 && ds.label_dim == 1))
    throw InputError(src + ": labels are [N, " + std::to_string(ds.label_dim) + "] but " +
                     plan.source + " gives one prediction per sample (labels [N])");
  const int64_t limit = loss == Loss::BCE ? 2 : out / positions;
  for (size_t i = 0; i < ds.labels.size(); ++i)
    if (ds.labels[i] < 0 || ds.labels[i] >= limit)
      throw InputError(
          src + ": label " + std::to_string(ds.labels[i]) + " at sample " +
          std::to_string(ds.first_sample + int64_t(i) / positions) +
          (positions > 1 ? ", position " + std::to_string(int64_t(i) % positions) : std::string()) +
          " is out of range [0, " + std::to_string(limit) + ") for loss " + loss_name(loss));
}

GraphMemory graph_memory(const Plan& plan, int64_t max_block, size_t elem, bool hessian) {
  GraphMemory m;
  const uint64_t e = elem, k = uint64_t(std::max<int64_t>(max_block, 1));
  const uint64_t data = uint64_t(plan.data_elems_per_sample),
                 ws = uint64_t(plan.workspace_per_sample);
  // Unary steps keep f'(x) and, for the Hessian, f''(x) g_y.
  uint64_t unary = 0;
  for (const PlanStep& s : plan.steps)
    if (s.kind == StepKind::Unary && plan.values[size_t(s.out)].diff &&
        plan.values[size_t(s.in[0])].batched())
      unary += uint64_t(plan.values[size_t(s.in[0])].numel());
  m.primal_per_sample = e * (2 * data + uint64_t(plan.output_dim) + (hessian ? 2 : 1) * unary) +
                        8 * uint64_t(plan.argmax_per_sample);
  // Tangents and their adjoints, and the rules' scratch (about two workspaces per direction
  // plus the primal one, as the convolutions hold columns of both).
  m.tangent_per_sample = e * (2 * k * data + 2 * (k + 1) * ws);
  return m;
}

}  // namespace hspec
