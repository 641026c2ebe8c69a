// Model names, checkpoint loading (Linear layers found by name and ordered naturally) and
// writing in the layout PyTorch's nn.Sequential state_dict uses.
#include "hspec/mlp/model.hpp"

#include <algorithm>
#include <cctype>
#include <map>

#include "hspec/error.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/formats/safetensors.hpp"

namespace hspec {

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::Identity:
      return "identity";
    case Activation::Relu:
      return "relu";
    case Activation::Tanh:
      return "tanh";
    case Activation::Sigmoid:
      return "sigmoid";
    case Activation::Gelu:
      return "gelu";
  }
  return "?";
}

const char* loss_name(Loss l) {
  switch (l) {
    case Loss::CE:
      return "ce";
    case Loss::MSE:
      return "mse";
    case Loss::BCE:
      return "bce";
  }
  return "?";
}

const char* curvature_name(Curvature c) {
  return c == Curvature::Hessian ? "hessian" : "ggn";
}

Activation parse_activation(const std::string& s) {
  for (Activation a : {Activation::Identity, Activation::Relu, Activation::Tanh,
                       Activation::Sigmoid, Activation::Gelu})
    if (s == activation_name(a)) return a;
  throw UsageError("unknown activation '" + s + "' (identity, relu, tanh, sigmoid, gelu)");
}

Loss parse_loss(const std::string& s) {
  for (Loss l : {Loss::CE, Loss::MSE, Loss::BCE})
    if (s == loss_name(l)) return l;
  throw UsageError("unknown loss '" + s + "' (ce, mse, bce)");
}

Curvature parse_curvature(const std::string& s) {
  if (s == "hessian") return Curvature::Hessian;
  if (s == "ggn") return Curvature::GGN;
  throw UsageError("unknown curvature '" + s + "' (hessian, ggn)");
}

int64_t Model::num_params() const {
  int64_t p = 0;
  for (const Layer& l : layers) p += l.num_params();
  return p;
}

int64_t Model::param_offset(size_t l) const {
  int64_t p = 0;
  for (size_t i = 0; i < l; ++i) p += layers[i].num_params();
  return p;
}

std::vector<double> Model::flatten() const {
  std::vector<double> theta;
  theta.reserve(static_cast<size_t>(num_params()));
  for (const Layer& l : layers) {
    theta.insert(theta.end(), l.weight.begin(), l.weight.end());
    theta.insert(theta.end(), l.bias.begin(), l.bias.end());
  }
  return theta;
}

void Model::unflatten(const std::vector<double>& theta) {
  if (static_cast<int64_t>(theta.size()) != num_params())
    throw Error("Model::unflatten: parameter count mismatch");
  size_t p = 0;
  for (Layer& l : layers) {
    std::copy_n(theta.begin() + p, l.weight.size(), l.weight.begin());
    p += l.weight.size();
    std::copy_n(theta.begin() + p, l.bias.size(), l.bias.begin());
    p += l.bias.size();
  }
}

bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t i2 = i, j2 = j;
      while (i2 < a.size() && std::isdigit(static_cast<unsigned char>(a[i2]))) ++i2;
      while (j2 < b.size() && std::isdigit(static_cast<unsigned char>(b[j2]))) ++j2;
      // Compare digit runs by value: strip leading zeros, then length, then lexically.
      std::string da = a.substr(i, i2 - i), db = b.substr(j, j2 - j);
      da.erase(0, std::min(da.find_first_not_of('0'), da.size() - 1));
      db.erase(0, std::min(db.find_first_not_of('0'), db.size() - 1));
      if (da.size() != db.size()) return da.size() < db.size();
      if (da != db) return da < db;
      i = i2;
      j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

Model load_model(const std::string& path) {
  const SafeTensorsFile f(path);
  struct Pair {
    const TensorInfo* weight = nullptr;
    const TensorInfo* bias = nullptr;
  };
  std::map<std::string, Pair> pairs;
  for (const auto& [name, info] : f.tensors()) {
    // "weight"/"bias" alone is a bare nn.Linear's state_dict: the prefix is empty.
    const size_t dot = name.rfind('.');
    const std::string suffix = dot == std::string::npos ? name : name.substr(dot + 1);
    const std::string prefix = dot == std::string::npos ? "" : name.substr(0, dot);
    if (suffix != "weight" && suffix != "bias") {
      throw InputError(path + ": tensor '" + name +
                       "' is not a Linear layer's weight or bias (only chains of Linear "
                       "layers are supported)");
    }
    Pair& p = pairs[prefix];
    (suffix == "weight" ? p.weight : p.bias) = &info;
  }
  if (pairs.empty()) throw InputError(path + ": holds no Linear layers");
  std::vector<std::string> prefixes;
  for (const auto& kv : pairs) prefixes.push_back(kv.first);
  std::sort(prefixes.begin(), prefixes.end(), natural_less);

  Model m;
  for (const std::string& prefix : prefixes) {
    const Pair& p = pairs[prefix];
    const std::string dotted = prefix.empty() ? "" : prefix + ".";
    if (!p.weight) throw InputError(path + ": '" + dotted + "bias' has no matching weight");
    if (p.weight->shape.size() != 2)
      throw InputError(path + ": '" + dotted + "weight' must be 2-D [out, in]");
    Layer l;
    l.name = prefix;
    l.out = p.weight->shape[0];
    l.in = p.weight->shape[1];
    if (l.out <= 0 || l.in <= 0)
      throw InputError(path + ": '" + dotted + "weight' has an empty dimension");
    l.weight = f.read_double(dotted + "weight");
    l.has_bias = p.bias != nullptr;
    if (p.bias) {
      if (p.bias->shape.size() != 1 || p.bias->shape[0] != l.out)
        throw InputError(path + ": '" + dotted + "bias' must have shape [" + std::to_string(l.out) +
                         "]");
      l.bias = f.read_double(dotted + "bias");
    }
    if (!m.layers.empty() && m.layers.back().out != l.in) {
      throw InputError(path + ": layer '" + prefix + "' takes " + std::to_string(l.in) +
                       " inputs but layer '" + m.layers.back().name + "' gives " +
                       std::to_string(m.layers.back().out));
    }
    m.layers.push_back(std::move(l));
  }
  const auto& meta = f.metadata();
  try {
    if (auto it = meta.find("hspec.activation"); it != meta.end()) {
      m.activation = parse_activation(it->second);
      m.has_activation_hint = true;
    }
    if (auto it = meta.find("hspec.loss"); it != meta.end()) {
      m.loss_hint = parse_loss(it->second);
      m.has_loss_hint = true;
    }
  } catch (const UsageError& e) {
    throw InputError(path + ": metadata: " + e.what());
  }
  return m;
}

void save_model(const std::string& path, const Model& m, Loss loss) {
  save_model(path, m, loss, {});
}

void save_model(const std::string& path, const Model& m, Loss loss,
                const std::map<std::string, std::string>& extra_metadata) {
  std::vector<TensorData> t;
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const Layer& l = m.layers[i];
    const std::string prefix = std::to_string(2 * i);
    std::vector<float> w(l.weight.begin(), l.weight.end());
    t.push_back(make_tensor(prefix + ".weight", {l.out, l.in}, w));
    if (l.has_bias) {
      std::vector<float> b(l.bias.begin(), l.bias.end());
      t.push_back(make_tensor(prefix + ".bias", {l.out}, b));
    }
  }
  std::map<std::string, std::string> meta = extra_metadata;
  meta["format"] = "pt";
  meta["hspec.activation"] = activation_name(m.activation);
  meta["hspec.loss"] = loss_name(loss);
  write_safetensors(path, t, meta);
}

void check_data_fits(const Model& m, const Dataset& ds, Loss loss) {
  const std::string& src = ds.source;
  if (m.layers.empty()) throw InputError("model has no layers");
  if (ds.n <= 0) throw InputError(src + ": holds no samples");
  if (ds.d != m.input_dim()) {
    throw InputError(src + ": samples have " + std::to_string(ds.d) +
                     " features but the model's first layer takes " +
                     std::to_string(m.input_dim()));
  }
  const int64_t out = m.output_dim();
  if (loss == Loss::MSE) {
    if (ds.targets.empty())
      throw InputError(src + ": loss mse needs a 'targets' tensor [N, " + std::to_string(out) +
                       "]");
    if (ds.target_dim != out)
      throw InputError(src + ": targets have " + std::to_string(ds.target_dim) +
                       " columns but the model has " + std::to_string(out) + " outputs");
    return;
  }
  if (ds.labels.empty()) throw InputError(src + ": loss " + loss_name(loss) + " needs labels");
  if (loss == Loss::BCE && out != 1)
    throw InputError(std::string("loss bce needs a model with 1 output, this one has ") +
                     std::to_string(out));
  const int64_t limit = loss == Loss::BCE ? 2 : out;
  for (int64_t i = 0; i < ds.n; ++i) {
    if (ds.labels[i] < 0 || ds.labels[i] >= limit) {
      throw InputError(src + ": label " + std::to_string(ds.labels[i]) + " at sample " +
                       std::to_string(ds.first_sample + i) + " is out of range [0, " +
                       std::to_string(limit) + ") for loss " + loss_name(loss));
    }
  }
}

}  // namespace hspec
