// Replacing a loaded graph's initializers with a checkpoint's tensors (a PyTorch state_dict
// saved as safetensors), so one exported graph serves many checkpoints.
#include <map>

#include "hspec/error.hpp"
#include "hspec/formats/onnx.hpp"
#include "hspec/formats/safetensors.hpp"

namespace hspec {
namespace {

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

bool is_float_dtype(DType d) {
  return d == DType::F64 || d == DType::F32 || d == DType::F16 || d == DType::BF16;
}

}  // namespace

void apply_params(Graph& g, const std::string& safetensors_path) {
  const SafeTensorsFile file(safetensors_path);
  const std::string both = safetensors_path + " (for " + g.source + ")";
  // Check everything before changing anything, so a failure leaves the graph as it was.
  for (const auto& [name, info] : file.tensors()) {
    auto it = g.initializers.find(name);
    if (it == g.initializers.end()) {
      // Eval-mode graphs never read the BatchNorm step counter.
      const std::string tail = "num_batches_tracked";
      if (name.size() >= tail.size() &&
          name.compare(name.size() - tail.size(), tail.size(), tail) == 0)
        continue;
      throw InputError(both + ": tensor '" + name +
                       "' is not in the graph (the exporter folded or renamed it; export "
                       "without folding: torch.onnx.export(model, (x,), path, dynamo=True, "
                       "optimize=False))");
    }
    const GraphTensor& t = it->second;
    if (info.shape != t.shape)
      throw InputError(both + ": tensor '" + name + "' has shape " + shape_text(info.shape) +
                       ", the graph's has " + shape_text(t.shape));
    if (is_float_dtype(info.dtype) != t.is_float())
      throw InputError(both + ": tensor '" + name + "' is " + dtype_name(info.dtype) +
                       ", the graph's is " + (t.is_float() ? "floating point" : "integer"));
  }
  std::map<std::string, GraphTensor> read;
  for (const auto& [name, info] : file.tensors()) {
    auto it = g.initializers.find(name);
    if (it == g.initializers.end()) continue;
    GraphTensor t = it->second;
    if (t.is_float())
      t.values = file.read_double(name);  // rejects NaN/Inf
    else
      t.ints = file.read_int(name);
    read[name] = std::move(t);
  }
  for (auto& [name, t] : read) g.initializers[name] = std::move(t);
}

}  // namespace hspec
