// Tests of `hspec train`: SGD lowers the loss, the checkpoint round-trips with its metadata,
// analyze reports the final training loss at it, runs are reproducible, CLI errors, and a
// short Fashion-MNIST run (skipped when the Debian data set is not installed).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "cli_test_util.hpp"
#include "hspec/analysis/analyze.hpp"
#include "hspec/error.hpp"
#include "hspec/formats/safetensors.hpp"
#include "hspec/mlp/reference_operator.hpp"
#include "hspec/mlp/train.hpp"
#include "hspec/mlp/workloads.hpp"

namespace hspec {
namespace {

std::string tmp(const std::string& name) {
  return testutil::scratch("train_", name);
}

using CliRun = testutil::CliResult;
using testutil::slurp;

CliRun run_cli(const std::string& args, const std::string& tag) {
  return testutil::run_cli(args, tmp(tag + "_stderr.txt"));
}

// 300 samples of 8 features in 3 classes, labelled by a random teacher network.
std::string write_data(const std::string& tag) {
  const Dataset ds = teacher_dataset(random_mlp({8, 6, 3}, Activation::Tanh, 21), 300, 22);
  const std::string path = tmp(tag + "_data.safetensors");
  write_safetensors(path, {make_tensor("inputs", {ds.n, ds.d}, ds.inputs),
                           make_tensor("labels", {ds.n}, ds.labels)});
  return path;
}

TrainOptions small_options(const std::string& data, const std::string& out) {
  TrainOptions o;
  o.data_path = data;
  o.layers = "8-16-3";
  o.activation = Activation::Tanh;
  o.loss = Loss::CE;
  o.batch = 16;
  o.lr = 0.2;
  o.epochs = 8;
  o.seed = 5;
  o.out_path = out;
  return o;
}

TEST(TrainTest, TinyRunReducesTheLoss) {
  const Dataset ds = teacher_dataset(random_mlp({8, 6, 3}, Activation::Tanh, 21), 300, 22);
  TrainOptions o = small_options("", "");
  MlpReferenceOptions co;
  const double initial =
      MlpReferenceOperator<double>(random_mlp({8, 16, 3}, Activation::Tanh, o.seed), ds, co)
          .loss_value();
  for (const char* prec : {"fp32", "fp64"}) {
    SCOPED_TRACE(prec);
    o.precision = parse_precision(prec);
    int calls = 0;
    const TrainResult r =
        std::string(prec) == "fp32"
            ? train_sgd<float>(o, ds, nullptr, [&](const EpochStats&) { ++calls; })
            : train_sgd<double>(o, ds, nullptr, {});
    if (std::string(prec) == "fp32") EXPECT_EQ(calls, o.epochs);
    ASSERT_EQ(r.epochs.size(), static_cast<size_t>(o.epochs));
    EXPECT_EQ(r.steps, o.epochs * ((300 + 15) / 16));  // the last, partial batch included
    EXPECT_LT(r.final_loss, 0.6 * initial);
    EXPECT_LT(r.epochs.back().loss, r.epochs.front().loss);
    EXPECT_GT(r.final_accuracy, 0.8);
    EXPECT_TRUE(std::isfinite(r.final_grad_norm));
  }
}

TEST(TrainTest, CheckpointRoundTripsWithMetadata) {
  const std::string data = write_data("roundtrip"), out = tmp("roundtrip.safetensors");
  const TrainOptions o = small_options(data, out);
  const TrainResult r = run_train(o);
  const Model m = load_model(out);
  ASSERT_EQ(m.layers.size(), 2u);
  EXPECT_EQ(m.layers[0].name, "0");
  EXPECT_EQ(m.layers[1].name, "2");
  EXPECT_EQ(m.input_dim(), 8);
  EXPECT_EQ(m.layers[0].out, 16);
  EXPECT_EQ(m.output_dim(), 3);
  EXPECT_EQ(m.activation, Activation::Tanh);
  EXPECT_TRUE(m.has_loss_hint);
  EXPECT_EQ(m.loss_hint, Loss::CE);
  EXPECT_EQ(m.flatten(), r.model.flatten());  // float32-exact: we hold what we store

  const SafeTensorsFile f(out);
  EXPECT_EQ(f.info("0.weight").dtype, DType::F32);
  const auto& md = f.metadata();
  EXPECT_EQ(md.at("format"), "pt");
  EXPECT_EQ(md.at("hspec.activation"), "tanh");
  EXPECT_EQ(md.at("hspec.loss"), "ce");
  EXPECT_EQ(md.at("hspec.train.lr"), "0.2");
  EXPECT_EQ(md.at("hspec.train.batch"), "16");
  EXPECT_EQ(md.at("hspec.train.epochs"), "8");
  EXPECT_EQ(md.at("hspec.train.seed"), "5");
  EXPECT_EQ(md.at("hspec.train.layers"), "8-16-3");
  EXPECT_EQ(std::stod(md.at("hspec.train.final_loss")), r.final_loss);
  EXPECT_EQ(std::stod(md.at("hspec.train.final_accuracy")), r.final_accuracy);
}

TEST(TrainTest, AnalyzeReportsTheFinalTrainingLoss) {
  const std::string data = write_data("analyze");
  for (const char* prec : {"fp32", "fp64"}) {
    SCOPED_TRACE(prec);
    const std::string out = tmp(std::string("analyze_") + prec + ".safetensors");
    TrainOptions o = small_options(data, out);
    o.precision = parse_precision(prec);
    const TrainResult r = run_train(o);
    AnalyzeOptions a;
    a.model_path = out;
    a.data_path = data;
    a.precision = parse_precision(prec);
    a.top = 1;
    a.bottom = 1;
    const AnalyzeReport rep = run_analyze(a);
    EXPECT_EQ(rep.loss, "ce");
    EXPECT_EQ(rep.activation, "tanh");
    EXPECT_NEAR(rep.loss_value, r.final_loss, 1e-12 * r.final_loss);
    EXPECT_NEAR(rep.grad_norm, r.final_grad_norm, 1e-9 * r.final_grad_norm);
  }
}

TEST(TrainTest, SameSeedSameCheckpointBytes) {
  const std::string data = write_data("seed");
  TrainOptions o = small_options(data, tmp("seed_a.safetensors"));
  o.epochs = 3;
  run_train(o);
  o.out_path = tmp("seed_b.safetensors");
  run_train(o);
  o.seed = 6;
  o.out_path = tmp("seed_c.safetensors");
  run_train(o);
  const std::string a = slurp(tmp("seed_a.safetensors"));
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, slurp(tmp("seed_b.safetensors")));
  EXPECT_NE(a, slurp(tmp("seed_c.safetensors")));
}

TEST(TrainTest, LayerListParsing) {
  EXPECT_EQ(parse_layers("784-128-10"), (std::vector<int64_t>{784, 128, 10}));
  EXPECT_EQ(parse_layers("5-1"), (std::vector<int64_t>{5, 1}));
  for (const char* bad : {"", "784", "784-", "-10", "784--10", "784-x-10", "784-0-10", "7 -3",
                          "784-128-10-", "99999999999-3"})
    EXPECT_THROW(parse_layers(bad), UsageError) << bad;
}

TEST(TrainCliTest, TrainsAndWritesTheCheckpoint) {
  const std::string data = write_data("cli"), out = tmp("cli.safetensors");
  const CliRun r = run_cli("train --data " + data +
                               " --layers 8-16-3 --activation tanh --batch 16 --lr 0.2"
                               " --epochs 2 --seed 3 --out " +
                               out + " --eval-data " + data,
                           "cli");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("epoch   1  loss"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("epoch   2  loss"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("train     loss"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("held-out  loss"), std::string::npos) << r.out;
  EXPECT_EQ(load_model(out).num_params(), 8 * 16 + 16 + 16 * 3 + 3);
}

// --threads as in analyze: the checkpoint does not depend on the thread count (the BLAS
// splits its GEMMs by output blocks, and every sum over samples has a fixed order).
TEST(TrainCliTest, ThreadsOptionKeepsTheCheckpoint) {
  const std::string data = write_data("threads");
  const std::string base =
      "train --data " + data + " --layers 8-64-3 --activation tanh --batch 64 --epochs 2 --seed 5";
  for (const char* t : {"1", "2"}) {
    const CliRun r = run_cli(
        base + " --threads " + t + " --out " + tmp(std::string("threads") + t + ".safetensors"),
        "threads");
    ASSERT_EQ(r.code, 0) << r.err;
  }
  EXPECT_EQ(slurp(tmp("threads1.safetensors")), slurp(tmp("threads2.safetensors")));
  const CliRun bad = run_cli(base + " --threads 0 --out " + tmp("threads0.safetensors"), "threads");
  EXPECT_EQ(bad.code, 2) << bad.err;
  EXPECT_NE(bad.err.find("--threads"), std::string::npos) << bad.err;
}

TEST(TrainCliTest, ErrorsExitTwoOrThreeWithOneLine) {
  const std::string data = write_data("errors"), out = tmp("errors.safetensors");
  const std::string base = "train --data " + data + " --epochs 1";
  struct Case {
    std::string args;
    int code;
    std::string says;
  };
  const Case cases[] = {
      {" --layers 8-x-3", 2, "--layers"},
      {" --layers 8", 2, "--layers"},
      {" --layers 8-16-3 --device cuda", 2, "not available yet"},
      {" --layers 8-16-3 --batch 0", 2, "--batch"},
      {" --layers 8-16-3 --lr -1", 2, "--lr"},
      {" --layers 8-16-3 --activation swish", 2, "swish"},
      {" --layers 8-16-3 --out /nonexistent-dir/x.safetensors", 2, "does not exist"},
      {" --layers 7-16-3", 3, "features"},      // the data have 8 features
      {" --layers 8-16-2", 3, "out of range"},  // labels 0..2 need 3 classes
      {" --layers 8-16-3 --loss mse", 3, "targets"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    const bool own_out = c.args.find("--out") != std::string::npos;
    const CliRun r = run_cli(base + c.args + (own_out ? "" : " --out " + out), "errors");
    EXPECT_EQ(r.code, c.code) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;  // exactly one line
  }
}

// The README's claim: 3 epochs on 2,048 Fashion-MNIST images reach a training loss below 1.
TEST(TrainFashionTest, ThreeEpochsOn2048ImagesBelowOne) {
  const std::string dir = "/usr/share/datasets/fashion-mnist/";
  if (!std::ifstream(dir + "train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Debian package dataset-fashion-mnist not installed";
  TrainOptions o;
  o.data_path = dir + "train-images-idx3-ubyte.gz";
  o.labels_path = dir + "train-labels-idx1-ubyte.gz";
  o.samples = 2048;
  o.layers = "784-64-10";
  o.activation = Activation::Tanh;
  o.batch = 32;
  o.lr = 0.1;
  o.epochs = 3;
  o.seed = 1;
  o.out_path = tmp("fashion.safetensors");
  const TrainResult r = run_train(o);
  EXPECT_LT(r.final_loss, 1.0);
  EXPECT_GT(r.final_accuracy, 0.6);
  AnalyzeOptions a;
  a.model_path = o.out_path;
  a.data_path = o.data_path;
  a.labels_path = o.labels_path;
  a.samples = o.samples;
  a.top = 1;
  a.bottom = 0;
  const AnalyzeReport rep = run_analyze(a);
  EXPECT_NEAR(rep.loss_value, r.final_loss, 1e-12 * r.final_loss);
  ASSERT_EQ(rep.top.size(), 1u);
  EXPECT_GT(rep.top[0].value, 0.0);
}

}  // namespace
}  // namespace hspec
