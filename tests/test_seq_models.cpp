// Token models on the graph engine: embedding Gather on integer token ids, learned positions
// added with broadcasting, the class-token pick x[:, 0] and sequence cross-entropy (mean over
// all N*T tokens), on the PyTorch fixtures of tests/fixtures/make_seq_fixtures.py (float64
// references) and against finite differences; hostile token data through the loader, the
// operator and the CLI (exit 3).
#include <gtest/gtest.h>

#if HSPEC_WITH_ONNX
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "cli_test_util.hpp"
#include "graph_test_util.hpp"
#include "hspec/error.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/formats/onnx.hpp"
#include "hspec/formats/safetensors.hpp"
#include "hspec/graph/graph_operator.hpp"
#include "hspec/solvers/exact.hpp"

namespace hspec {
namespace {

std::string fixture(const std::string& name) {
  return std::string(HSPEC_FIXTURES) + "/seq/" + name;
}

Dataset token_data(const std::string& path) {
  DatasetOptions o;
  o.token_ids = true;
  o.position_labels = true;
  return load_dataset(path, "", o);
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::fabs(v));
  return m;
}

std::vector<double> dense_eigenvalues(GraphCurvatureOperator<double>& op) {
  const int64_t p = op.dim();
  std::vector<double> h(size_t(p * p)), eye(size_t(p * 8));
  for (int64_t j0 = 0; j0 < p; j0 += 8) {
    const int64_t cols = std::min<int64_t>(8, p - j0);
    std::fill(eye.begin(), eye.end(), 0.0);
    for (int64_t j = 0; j < cols; ++j) eye[size_t(j * p + j0 + j)] = 1.0;
    op.apply(BlockView<const double>(eye.data(), p, cols),
             BlockView<double>(h.data() + j0 * p, p, cols));
  }
  std::vector<double> w(static_cast<size_t>(p));
  lapack_eigensolver().solve(p, h.data(), p, w.data());
  return w;
}

// Loss, gradient, products and eigenvalues of one fixture against its fp64 references, with
// the whole data in one chunk and in chunks of 5 (12 samples: 5, 5, 2).
void check_against_reference(const std::string& model) {
  SCOPED_TRACE(model);
  const Graph g = load_onnx(fixture(model + ".onnx"));
  const Dataset ds = token_data(fixture(model + "_data.safetensors"));
  const SafeTensorsFile ref(fixture(model + "_ref.safetensors"));
  // The references are in hspec's parameter order, which they name.
  const auto names = nlohmann::json::parse(ref.metadata().at("parameters"));
  ASSERT_EQ(names.size(), g.parameters.size());
  for (size_t i = 0; i < names.size(); ++i)
    EXPECT_EQ(names[i].at("name").get<std::string>(), g.parameters[i]);
  const int64_t p = g.num_params();
  for (int64_t chunk : {int64_t(0), int64_t(5)})
    for (Curvature c : {Curvature::Hessian, Curvature::GGN}) {
      SCOPED_TRACE("chunk " + std::to_string(chunk));
      GraphOperatorOptions opt;
      opt.curvature = c;
      opt.loss = Loss::CE;
      opt.max_block = 8;
      opt.chunk = chunk;
      GraphCurvatureOperator<double> op(g, ds, opt);
      ASSERT_EQ(op.dim(), p);
      EXPECT_NEAR(op.loss_value(), ref.read_double("loss")[0], 1e-10);
      const auto grad = ref.read_double("gradient");
      EXPECT_LE(max_abs_diff(op.gradient(), grad), 1e-10 * std::max(1.0, max_abs(grad)));
      const auto dirs = ref.read_double("directions");
      const auto want = ref.read_double(c == Curvature::Hessian ? "hvp" : "gnvp");
      const int64_t k = int64_t(dirs.size()) / p;
      std::vector<double> y(dirs.size());
      op.apply(BlockView<const double>(dirs.data(), p, k), BlockView<double>(y.data(), p, k));
      EXPECT_LE(max_abs_diff(y, want), 1e-9 * std::max(1.0, max_abs(want)));
      if (c != Curvature::Hessian) continue;
      const auto w = dense_eigenvalues(op);
      const auto top = ref.read_double("eig_top");
      const auto bottom = ref.read_double("eig_bottom");
      for (size_t i = 0; i < top.size(); ++i)
        EXPECT_NEAR(w[size_t(p) - 1 - i], top[i], 1e-8 * std::fabs(top[0]));
      EXPECT_NEAR(w[0], bottom[0], 1e-8 * std::fabs(top[0]));
    }
}

TEST(SeqModels, TokenLmSequenceCrossEntropyMatchesPyTorch) {
  check_against_reference("token_lm");
}

TEST(SeqModels, ClassTokenGatherMatchesPyTorch) {
  check_against_reference("token_cls");
}

// The same graph at other parameter values: initializers of the flat vector theta.
Graph with_params(Graph g, const std::vector<double>& theta) {
  int64_t off = 0;
  for (const std::string& name : g.parameters) {
    GraphTensor& t = g.initializers.at(name);
    for (double& v : t.values) v = theta[size_t(off++)];
  }
  return g;
}

// Independent of PyTorch: the gradient by central differences of the loss, and the
// Hessian-vector product by central differences of the gradient, on the per-token model.
TEST(SeqModels, TokenLmMatchesFiniteDifferences) {
  const Graph g = load_onnx(fixture("token_lm.onnx"));
  const Dataset ds = token_data(fixture("token_lm_data.safetensors"));
  GraphOperatorOptions opt;
  opt.max_block = 1;
  GraphCurvatureOperator<double> op(g, ds, opt);
  const int64_t p = op.dim();
  std::vector<double> theta;
  for (const std::string& name : g.parameters)
    for (double v : g.initializers.at(name).values) theta.push_back(v);
  const double h = 1e-5;
  auto at = [&](const std::vector<double>& t) {
    return std::make_unique<GraphCurvatureOperator<double>>(with_params(g, t), ds, opt);
  };
  for (int64_t i = 0; i < p; i += 7) {  // a spread of coordinates: table rows, positions, heads
    auto tp = theta, tm = theta;
    tp[size_t(i)] += h;
    tm[size_t(i)] -= h;
    const double fd = (at(tp)->loss_value() - at(tm)->loss_value()) / (2 * h);
    EXPECT_NEAR(op.gradient()[size_t(i)], fd, 1e-8) << "coordinate " << i;
  }
  std::vector<double> v(static_cast<size_t>(p)), hv(static_cast<size_t>(p));
  for (int64_t i = 0; i < p; ++i) v[size_t(i)] = std::sin(0.7 * double(i) + 0.3);
  op.apply(BlockView<const double>(v.data(), p, 1), BlockView<double>(hv.data(), p, 1));
  auto tp = theta, tm = theta;
  for (int64_t i = 0; i < p; ++i) {
    tp[size_t(i)] += h * v[size_t(i)];
    tm[size_t(i)] -= h * v[size_t(i)];
  }
  const auto gp = at(tp)->gradient(), gm = at(tm)->gradient();
  std::vector<double> fd(static_cast<size_t>(p));
  for (int64_t i = 0; i < p; ++i) fd[size_t(i)] = (gp[size_t(i)] - gm[size_t(i)]) / (2 * h);
  EXPECT_LE(max_abs_diff(hv, fd), 1e-6 * std::max(1.0, max_abs(hv)));
}

// ---- hostile token data ----

std::string write_data(const std::string& name, const std::vector<TensorData>& tensors) {
  const std::string path = testutil::scratch("seq_", name + ".safetensors");
  write_safetensors(path, tensors);
  return path;
}

std::vector<int64_t> ids(int64_t n, int64_t t, int64_t vocab) {
  std::vector<int64_t> v(size_t(n * t));
  for (size_t i = 0; i < v.size(); ++i) v[i] = int64_t(i * 5 % size_t(vocab));
  return v;
}

// Builds the operator on token_lm.onnx and returns the InputError message ("" if none).
std::string lm_error(const std::string& data) {
  const Graph g = load_onnx(fixture("token_lm.onnx"));
  try {
    GraphCurvatureOperator<double> op(g, token_data(data), GraphOperatorOptions{});
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(SeqModels, HostileTokenDataAreInputErrors) {
  const std::vector<int64_t> good_labels = ids(3, 4, 7);
  auto labels = make_tensor("labels", {3, 4}, good_labels);
  // An id beyond the embedding's 7 rows, named by sample and position.
  auto bad = ids(3, 4, 7);
  bad[6] = 7;
  std::string e = lm_error(write_data("id_range", {make_tensor("inputs", {3, 4}, bad), labels}));
  EXPECT_NE(e.find("token id 7 at sample 1, position 2 is out of range [0, 7)"), std::string::npos)
      << e;
  EXPECT_NE(e.find("id_range.safetensors"), std::string::npos) << e;
  bad[6] = -1;
  e = lm_error(write_data("id_negative", {make_tensor("inputs", {3, 4}, bad), labels}));
  EXPECT_NE(e.find("token id -1"), std::string::npos) << e;
  // A sequence length other than the graph's fixed T = 4.
  e = lm_error(write_data("length", {make_tensor("inputs", {3, 5}, ids(3, 5, 7)),
                                     make_tensor("labels", {3, 5}, ids(3, 5, 7))}));
  EXPECT_NE(e.find("sequences have 5 tokens but"), std::string::npos) << e;
  // Float data for the integer input.
  e = lm_error(
      write_data("float", {make_tensor("inputs", {3, 4}, std::vector<float>(12, 1.f)), labels}));
  EXPECT_NE(e.find("takes integer token ids"), std::string::npos) << e;
  // One label per sequence for per-token logits; a label beyond the vocabulary.
  e = lm_error(write_data("labels_n", {make_tensor("inputs", {3, 4}, ids(3, 4, 7)),
                                       make_tensor("labels", {3}, std::vector<int64_t>{0, 1, 2})}));
  EXPECT_NE(e.find("which need labels [N, 4], not [N]"), std::string::npos) << e;
  auto big = good_labels;
  big[5] = 9;
  e = lm_error(write_data("label_range", {make_tensor("inputs", {3, 4}, ids(3, 4, 7)),
                                          make_tensor("labels", {3, 4}, big)}));
  EXPECT_NE(e.find("label 9 at sample 1, position 1 is out of range [0, 7)"), std::string::npos)
      << e;
}

TEST(SeqModels, Int32TokenIdsAreRead) {
  TensorData in;
  in.name = "inputs";
  in.dtype = DType::I32;
  in.shape = {3, 4};
  const auto v = ids(3, 4, 7);
  for (int64_t x : v) {
    const int32_t i = int32_t(x);
    unsigned char b[4];
    std::memcpy(b, &i, 4);  // little-endian machine, as safetensors stores it
    in.bytes.insert(in.bytes.end(), b, b + 4);
  }
  const Dataset ds = token_data(write_data("int32", {in, make_tensor("labels", {3, 4}, v)}));
  EXPECT_TRUE(ds.inputs.empty());
  EXPECT_EQ(ds.ids, v);
  EXPECT_EQ(ds.label_dim, 4);
  EXPECT_EQ(lm_error(write_data("int32", {in, make_tensor("labels", {3, 4}, v)})), "");
}

TEST(SeqModels, CliAnalyzeTokenModel) {
  const std::string err = testutil::scratch("seq_", "cli.err");
  const auto run = testutil::run_cli("analyze --model " + fixture("token_lm.onnx") + " --data " +
                                         fixture("token_lm_data.safetensors") +
                                         " --precision fp64 --top 2 --bottom 1 --json - --quiet",
                                     err);
  ASSERT_EQ(run.code, 0) << run.err;
  const auto j = nlohmann::json::parse(run.out);
  const SafeTensorsFile ref(fixture("token_lm_ref.safetensors"));
  EXPECT_NEAR(j.at("loss_value").get<double>(), ref.read_double("loss")[0], 1e-10);
  EXPECT_EQ(j.at("loss").get<std::string>(), "ce");
  const double top = ref.read_double("eig_top")[0];
  EXPECT_NEAR(j.at("top").at(0).at("value").get<double>(), top, 1e-8 * std::fabs(top));
  // Hostile data through the binary: one line, exit 3.
  auto bad = ids(3, 4, 7);
  bad[0] = 100;
  const std::string data = write_data(
      "cli_range", {make_tensor("inputs", {3, 4}, bad), make_tensor("labels", {3, 4}, bad)});
  const auto fail = testutil::run_cli(
      "analyze --model " + fixture("token_lm.onnx") + " --data " + data + " --quiet", err);
  EXPECT_EQ(fail.code, 3) << fail.err;
  EXPECT_NE(fail.err.find("token id 100 at sample 0, position 0"), std::string::npos) << fail.err;
  std::remove(err.c_str());
}

// ---- hand-built graphs (no exporter): every rule of Gather and sequence cross-entropy
// against finite differences, chunking, batching and fp32 (graphtest::check_graph) ----

// ids [T=3] -> Gather(emb [6, 4]) + positions Gather(pos [5, 4], [0, 1, 2]) (a parameter
// picked by constant indices) -> MatMul W [4, 5] -> Tanh -> Gather tokens {2, 0} on axis 1
// (repeats allowed) -> MatMul head [5, 6]: per-token logits [N, 2, 6], labels [N, 2].
graphtest::Builder token_graph() {
  graphtest::Builder b({3}, 17);
  b.g.input_is_int = true;
  b.node("Gather", {b.param("emb", {6, 4}, 0.8), "x"}, "e");
  b.g.initializers["pick3"] = GraphTensor{GraphTensor::Kind::Int, {3}, {}, {0, 1, 2}};
  b.node("Gather", {b.param("pos", {5, 4}, 0.5), "pick3"}, "p");
  b.node("Add", {"e", "p"}, "h0");
  b.node("MatMul", {"h0", b.param("w", {4, 5}, 0.7)}, "h1");
  b.node("Tanh", {"h1"}, "h2");
  b.g.initializers["pick2"] = GraphTensor{GraphTensor::Kind::Int, {2}, {}, {2, 0}};
  b.node("Gather", {"h2", "pick2"}, "h3").attrs["axis"] = graphtest::attr_i(1);
  b.node("MatMul", {"h3", b.param("head", {5, 6}, 0.9)}, "logits");
  return b;
}

Dataset token_dataset(int64_t n, int64_t t, int64_t vocab, int64_t label_dim, int64_t classes) {
  Dataset ds;
  ds.n = n;
  ds.d = t;
  ds.source = "tokens";
  for (int64_t i = 0; i < n * t; ++i) ds.ids.push_back(int64_t(rng::bits(3, 1, i) % vocab));
  ds.label_dim = label_dim;
  for (int64_t i = 0; i < n * std::max<int64_t>(label_dim, 1); ++i)
    ds.labels.push_back(int64_t(rng::bits(3, 2, i) % classes));
  return ds;
}

TEST(SeqModels, HandBuiltTokenGraphMatchesFiniteDifferences) {
  const auto b = token_graph();
  graphtest::check_graph(b.g, token_dataset(7, 3, 6, 2, 6), Loss::CE);
}

TEST(SeqModels, HandBuiltClassTokenGraphMatchesFiniteDifferences) {
  auto b = token_graph();
  // Pick token 1 alone (a scalar index drops the axis): logits [N, 6], labels [N].
  b.g.initializers["pick2"] = GraphTensor{GraphTensor::Kind::Int, {}, {}, {-2}};
  graphtest::check_graph(b.g, token_dataset(7, 3, 6, 0, 6), Loss::CE);
}

TEST(SeqModels, TokenIdsOnlyFeedEmbeddings) {
  auto plan_error = [](const Graph& g) -> std::string {
    try {
      make_plan(g);
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  };
  graphtest::Builder tanh({3}, 1);
  tanh.g.input_is_int = true;
  tanh.node("Tanh", {"x"}, "y");
  EXPECT_NE(plan_error(tanh.g).find("holds integer token ids"), std::string::npos);
  graphtest::Builder axis1({3}, 1);
  axis1.g.input_is_int = true;
  axis1.node("Gather", {axis1.param("emb", {6, 4}, 1.0), "x"}, "y").attrs["axis"] =
      graphtest::attr_i(1);
  EXPECT_NE(plan_error(axis1.g).find("axis 0 of the table only"), std::string::npos);
  graphtest::Builder range({3, 4}, 1);
  range.g.initializers["i"] = GraphTensor{GraphTensor::Kind::Int, {1}, {}, {4}};
  range.node("Gather", {"x", "i"}, "y").attrs["axis"] = graphtest::attr_i(1);
  EXPECT_NE(plan_error(range.g).find("index 4 is out of range"), std::string::npos);
  graphtest::Builder samples({3, 4}, 1);
  samples.g.initializers["i"] = GraphTensor{GraphTensor::Kind::Int, {1}, {}, {0}};
  samples.node("Gather", {"x", "i"}, "y");
  EXPECT_NE(plan_error(samples.g).find("sample axis"), std::string::npos);
}

}  // namespace
}  // namespace hspec
#endif
