// `hspec train`: plain minibatch SGD of an MLP on a data set, written as a checkpoint that
// `hspec analyze` and PyTorch read as they are.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "hspec/formats/dataset.hpp"
#include "hspec/mlp/model.hpp"
#include "hspec/options.hpp"

namespace hspec {

struct TrainOptions {
  std::string data_path;
  std::string labels_path;
  std::string eval_data_path;  // optional held-out set
  std::string eval_labels_path;
  std::string layers;  // "784-128-10": input width, hidden widths, outputs
  Activation activation = Activation::Relu;
  Loss loss = Loss::CE;
  int64_t batch = 32;
  double lr = 0.1;
  int epochs = 1;
  uint64_t seed = 0;
  std::string out_path;                   // checkpoint; "" = do not write one
  DeviceRequest device;                   // auto | cpu (cuda: not available yet)
  Precision precision = Precision::Fp32;  // fp32 | fp64: the arithmetic of the SGD steps
  int64_t samples = 0;                    // 0 = all training samples
  int64_t eval_samples = 0;               // 0 = all held-out samples
};

// One epoch's progress: the mean minibatch loss and accuracy seen during the epoch (the
// weights move while they are measured, as in a PyTorch training loop).
struct EpochStats {
  int epoch = 0;  // 1-based
  double loss = 0;
  double accuracy = 0;  // classification losses only
  double seconds = 0;
};

struct TrainResult {
  Model model;  // the final weights, rounded to float32 as the checkpoint stores them
  Loss loss = Loss::CE;
  bool classification = true;  // ce/bce report accuracies, mse does not
  int64_t samples = 0;
  int64_t steps = 0;
  std::vector<EpochStats> epochs;
  // Full training set at the final (float32) weights, computed exactly as `hspec analyze`
  // computes its loss at the same precision.
  double final_loss = 0;
  double final_accuracy = 0;
  double final_grad_norm = 0;
  bool has_eval = false;
  int64_t eval_samples = 0;
  double eval_loss = 0;
  double eval_accuracy = 0;
  std::string device = "cpu";  // what ran it
  double seconds = 0;
};

// Parses "784-128-10" into widths (at least two, each >= 1); UsageError otherwise.
std::vector<int64_t> parse_layers(const std::string& s);

// The checks of the options that need no file and no work (UsageError).
void check_train_options(const TrainOptions& opt);

// Validates the options (UsageError), loads the data (InputError), trains, and writes the
// checkpoint when out_path is set. `progress` is called after every epoch.
TrainResult run_train(const TrainOptions& opt,
                      const std::function<void(const EpochStats&)>& progress = {});

// The checkpoint metadata of a run (hspec.activation and hspec.loss are added by
// save_model): hspec.train.* keys with the settings and the final numbers.
std::map<std::string, std::string> train_metadata(const TrainOptions& opt, const TrainResult& r);

// The training loop on data already loaded (used by run_train and the tests). `T` is the
// compute precision (float or double).
template <class T>
TrainResult train_sgd(const TrainOptions& opt, const Dataset& train, const Dataset* eval,
                      const std::function<void(const EpochStats&)>& progress);

}  // namespace hspec
