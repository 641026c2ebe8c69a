// The model: a chain of Linear layers with one elementwise activation between them, a loss
// with PyTorch's 'mean' reduction, and loading it from a safetensors checkpoint.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace hspec {

enum class Activation { Identity, Relu, Tanh, Sigmoid, Gelu };
enum class Loss { CE, MSE, BCE };
enum class Curvature { Hessian, GGN };

const char* activation_name(Activation a);
const char* loss_name(Loss l);
const char* curvature_name(Curvature c);
// Parse names ("tanh", "ce", "ggn", ...); throw UsageError naming the accepted values.
Activation parse_activation(const std::string& s);
Loss parse_loss(const std::string& s);
Curvature parse_curvature(const std::string& s);

// One Linear layer in PyTorch's layout: weight [out, in] row-major, optional bias [out].
struct Layer {
  std::string name;  // the prefix in the checkpoint, e.g. "0"
  int64_t in = 0;
  int64_t out = 0;
  bool has_bias = true;
  std::vector<double> weight;  // out * in, row-major
  std::vector<double> bias;    // out, or empty
  int64_t num_params() const { return out * in + (has_bias ? out : 0); }
};

struct Model {
  std::vector<Layer> layers;
  Activation activation = Activation::Tanh;
  // Defaults stored in the checkpoint's __metadata__ (hspec.activation, hspec.loss), if any.
  bool has_activation_hint = false;
  bool has_loss_hint = false;
  Loss loss_hint = Loss::CE;

  int64_t num_params() const;
  int64_t input_dim() const { return layers.empty() ? 0 : layers.front().in; }
  int64_t output_dim() const { return layers.empty() ? 0 : layers.back().out; }
  // Offset of layer l's weight in the flat parameter vector (weight row-major, then bias).
  int64_t param_offset(size_t l) const;
  // The flat parameter vector in that order.
  std::vector<double> flatten() const;
  void unflatten(const std::vector<double>& theta);
};

// Loads Linear layers from a safetensors checkpoint: pairs "<prefix>.weight" (2-D) and
// optional "<prefix>.bias" (1-D), ordered by the numeric-aware order of the prefixes;
// shapes must chain. Unrelated tensors are an error (we would silently ignore a layer).
Model load_model(const std::string& path);

// Writes the model as PyTorch's nn.Sequential state_dict would name it: layer i gets the
// prefix 2*i (Linear, activation, Linear, ...), with hspec metadata.
void save_model(const std::string& path, const Model& m, Loss loss);
// The same with extra __metadata__ entries (e.g. hspec.train.*); format, hspec.activation
// and hspec.loss always come from the arguments.
void save_model(const std::string& path, const Model& m, Loss loss,
                const std::map<std::string, std::string>& extra_metadata);

struct Dataset;  // include/hspec/formats/dataset.hpp
// Checks that the data fit the model and the loss (dimensions, label ranges, targets);
// throws InputError naming the data source.
void check_data_fits(const Model& m, const Dataset& ds, Loss loss);

// Numeric-aware comparison ("2" < "10", "a.2" < "a.10").
bool natural_less(const std::string& a, const std::string& b);

}  // namespace hspec

namespace hspec {
struct Graph;
// The MLP as a graph for the graph engine: Gemm (transB=1) and activation nodes, the
// parameters named as the checkpoint's tensors ("<prefix>.weight", "<prefix>.bias") in
// the flat order of Model::flatten (include/hspec/graph/graph.hpp defines Graph).
Graph graph_from_mlp(const Model& m);
}  // namespace hspec
