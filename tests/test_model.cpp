// Checkpoint loading: PyTorch's naming (nn.Sequential and bare nn.Linear), natural order of
// layer prefixes, metadata hints, and malformed layer sets rejected with the file named.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "hspec/error.hpp"
#include "hspec/formats/safetensors.hpp"
#include "hspec/mlp/model.hpp"

namespace hspec {
namespace {

std::string path(const std::string& name) {
  return std::string(HSPEC_TEST_TMP) + "/model_" + std::to_string(getpid()) + "_" + name;
}

std::vector<float> iota(int64_t n, float start) {
  std::vector<float> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(start + static_cast<float>(i));
  return v;
}

TEST(ModelTest, SequentialNamesInNaturalOrder) {
  // Layers "2" and "10" must come in numeric order even though "10" < "2" as strings;
  // the header lists them out of order on purpose.
  const std::string p = path("seq.safetensors");
  write_safetensors(
      p,
      {make_tensor("10.weight", {2, 4}, iota(8, 100)), make_tensor("0.weight", {3, 5}, iota(15, 0)),
       make_tensor("0.bias", {3}, iota(3, 50)), make_tensor("2.weight", {4, 3}, iota(12, 200)),
       make_tensor("2.bias", {4}, iota(4, 60)), make_tensor("10.bias", {2}, iota(2, 70))});
  const Model m = load_model(p);
  ASSERT_EQ(m.layers.size(), 3u);
  EXPECT_EQ(m.layers[0].name, "0");
  EXPECT_EQ(m.layers[1].name, "2");
  EXPECT_EQ(m.layers[2].name, "10");
  EXPECT_EQ(m.input_dim(), 5);
  EXPECT_EQ(m.output_dim(), 2);
  EXPECT_EQ(m.num_params(), 3 * 5 + 3 + 4 * 3 + 4 + 2 * 4 + 2);
  EXPECT_DOUBLE_EQ(m.layers[1].weight[0], 200.0);
  EXPECT_DOUBLE_EQ(m.layers[2].bias[1], 71.0);
  EXPECT_FALSE(m.has_activation_hint);
  // Flat order: weight row-major then bias, layer by layer.
  const auto theta = m.flatten();
  EXPECT_DOUBLE_EQ(theta[15], 50.0);
  EXPECT_DOUBLE_EQ(theta[18], 200.0);
  EXPECT_EQ(m.param_offset(2), 3 * 5 + 3 + 4 * 3 + 4);
}

TEST(ModelTest, BareLinearAndNoBias) {
  const std::string p = path("bare.safetensors");
  write_safetensors(
      p, {make_tensor("weight", {1, 3}, iota(3, 1)), make_tensor("bias", {1}, iota(1, 9))});
  const Model m = load_model(p);
  ASSERT_EQ(m.layers.size(), 1u);
  EXPECT_TRUE(m.layers[0].has_bias);
  EXPECT_EQ(m.num_params(), 4);
  const std::string q = path("nobias.safetensors");
  write_safetensors(q, {make_tensor("fc.weight", {2, 3}, iota(6, 1))});
  const Model n = load_model(q);
  EXPECT_FALSE(n.layers[0].has_bias);
  EXPECT_EQ(n.num_params(), 6);
}

TEST(ModelTest, MetadataHintsAndSaveRoundTrip) {
  Model m;
  m.activation = Activation::Gelu;
  Layer a;
  a.in = 3;
  a.out = 2;
  a.weight = {1, 2, 3, 4, 5, 6};
  a.bias = {0.5, -0.5};
  Layer b;
  b.in = 2;
  b.out = 1;
  b.weight = {7, 8};
  b.bias = {9};
  m.layers = {a, b};
  const std::string p = path("saved.safetensors");
  save_model(p, m, Loss::BCE);
  const SafeTensorsFile f(p);
  EXPECT_TRUE(f.has("0.weight") && f.has("0.bias") && f.has("2.weight") && f.has("2.bias"));
  const Model r = load_model(p);
  EXPECT_TRUE(r.has_activation_hint && r.has_loss_hint);
  EXPECT_EQ(r.activation, Activation::Gelu);
  EXPECT_EQ(r.loss_hint, Loss::BCE);
  EXPECT_EQ(r.flatten(), m.flatten());
}

void expect_rejected(const std::vector<TensorData>& t, const std::string& needle,
                     const std::map<std::string, std::string>& meta = {}) {
  const std::string p = path("bad.safetensors");
  write_safetensors(p, t, meta);
  try {
    load_model(p);
    ADD_FAILURE() << "accepted: " << needle;
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

TEST(ModelTest, MalformedLayerSetsRejected) {
  expect_rejected(
      {make_tensor("0.weight", {3, 5}, iota(15, 0)), make_tensor("2.weight", {4, 2}, iota(8, 0))},
      "takes 2 inputs");
  expect_rejected({make_tensor("0.weight", {3, 5}, iota(15, 0)),
                   make_tensor("0.running_mean", {3}, iota(3, 0))},
                  "running_mean");
  expect_rejected({make_tensor("0.bias", {3}, iota(3, 0))}, "no matching weight");
  expect_rejected({make_tensor("0.weight", {15}, iota(15, 0))}, "2-D");
  expect_rejected(
      {make_tensor("0.weight", {3, 5}, iota(15, 0)), make_tensor("0.bias", {4}, iota(4, 0))},
      "shape [3]");
  expect_rejected({make_tensor("0.weight", {3, 5}, iota(15, 0))}, "activation",
                  {{"hspec.activation", "swish"}});
  std::vector<float> nan = iota(15, 0);
  nan[7] = std::nanf("");
  expect_rejected({make_tensor("0.weight", {3, 5}, nan)}, "NaN");
}

TEST(ModelTest, NaturalLess) {
  EXPECT_TRUE(natural_less("2", "10"));
  EXPECT_FALSE(natural_less("10", "2"));
  EXPECT_TRUE(natural_less("layers.2", "layers.10"));
  EXPECT_TRUE(natural_less("a", "b"));
  EXPECT_TRUE(natural_less("", "0"));
  EXPECT_FALSE(natural_less("07", "7"));
  EXPECT_FALSE(natural_less("7", "7"));
}

}  // namespace
}  // namespace hspec
