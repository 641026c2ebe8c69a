// `hspec train`: options, per-epoch progress on stderr, the checkpoint and a summary.
#include <cstdio>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "hspec/backends/cpu/blas_runtime.hpp"
#include "hspec/device.hpp"
#include "hspec/mlp/train.hpp"

namespace hspec::cli {

Command add_train(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  auto threads = std::make_shared<int>(0);  // 0: OMP_NUM_THREADS or the BLAS's default
  CLI::App* a = app.add_subcommand(
      "train", "train an MLP by minibatch SGD and write a checkpoint (safetensors)");
  a->add_option("--data", o->data_path, "training data: safetensors, or IDX images (raw or .gz)")
      ->required();
  a->add_option("--labels", o->labels_path, "IDX labels (raw or .gz) for IDX images");
  a->add_option("--layers", o->layers, "widths, input first, e.g. 784-128-10")->required();
  // String options become typed values here, once (include/hspec/options.hpp).
  a->add_option_function<std::string>(
       "--activation", [o](const std::string& s) { o->activation = parse_activation(s); },
       "identity|relu|tanh|sigmoid|gelu")
      ->default_str(activation_name(o->activation));
  a->add_option_function<std::string>(
       "--loss", [o](const std::string& s) { o->loss = parse_loss(s); }, "ce|mse|bce")
      ->default_str(loss_name(o->loss));
  a->add_option("--batch", o->batch, "minibatch size")->capture_default_str();
  a->add_option("--lr", o->lr, "learning rate")->capture_default_str();
  a->add_option("--epochs", o->epochs, "passes over the training data")->capture_default_str();
  a->add_option("--seed", o->seed, "seed of the initialisation and the shuffles")
      ->capture_default_str();
  a->add_option("--out", o->out_path, "checkpoint to write (.safetensors)")->required();
  a->add_option_function<std::string>(
       "--device", [o](const std::string& s) { o->device = parse_device(s); },
       "auto|cpu (cuda: not available yet)")
      ->default_str(o->device.text());
  a->add_option_function<std::string>(
       "--precision", [o](const std::string& s) { o->precision = parse_precision(s); }, "fp32|fp64")
      ->default_str(precision_name(o->precision));
  a->add_option("--samples", o->samples, "use the first N training samples (0: all)");
  a->add_option("--eval-data", o->eval_data_path, "held-out data for a final accuracy");
  a->add_option("--eval-labels", o->eval_labels_path, "IDX labels of the held-out data");
  a->add_option("--eval-samples", o->eval_samples, "use the first N held-out samples (0: all)");
  a->add_option("--threads", *threads,
                "CPU threads for the BLAS and hspec's loops (default: OMP_NUM_THREADS)")
      ->check(CLI::PositiveNumber);
  auto check = [o, threads]() {
    check_train_options(*o);
    if (*threads > 0) cpu::set_threads(*threads);
  };
  return {a,
          [o]() {
            if (o->device.kind == DeviceRequest::Kind::Auto && cuda_device_count() > 0)
              std::cerr << "hspec train: training runs on the CPU (CUDA training is not "
                           "available yet)\n";
            // Minibatch means over the epoch, while the weights move; the final line is
            // the full training set at the final weights.
            const bool classify = o->loss != Loss::MSE;
            const auto progress = [classify](const EpochStats& s) {
              char buf[160];
              if (classify)
                std::snprintf(buf, sizeof buf, "epoch %3d  loss %.6f  accuracy %.4f  (%.1f s)\n",
                              s.epoch, s.loss, s.accuracy, s.seconds);
              else
                std::snprintf(buf, sizeof buf, "epoch %3d  loss %.6f  (%.1f s)\n", s.epoch, s.loss,
                              s.seconds);
              std::cerr << buf << std::flush;
            };
            const TrainResult r = run_train(*o, progress);
            char buf[320];
            std::snprintf(buf, sizeof buf,
                          "trained   %s %s, loss %s, %lld samples, batch %lld, lr %g, %d epochs "
                          "(%lld steps) in %.1f s on %s\n",
                          o->layers.c_str(), activation_name(o->activation), loss_name(r.loss),
                          static_cast<long long>(r.samples), static_cast<long long>(o->batch),
                          o->lr, o->epochs, static_cast<long long>(r.steps), r.seconds,
                          r.device.c_str());
            std::cout << buf;
            std::snprintf(buf, sizeof buf, "train     loss %.6g   gradient norm %.3e", r.final_loss,
                          r.final_grad_norm);
            std::cout << buf;
            if (r.classification) {
              std::snprintf(buf, sizeof buf, "   accuracy %.4f", r.final_accuracy);
              std::cout << buf;
            }
            std::cout << "\n";
            if (r.has_eval) {
              std::snprintf(buf, sizeof buf, "held-out  loss %.6g   (%lld samples)", r.eval_loss,
                            static_cast<long long>(r.eval_samples));
              std::cout << buf;
              if (r.classification) {
                std::snprintf(buf, sizeof buf, "   accuracy %.4f", r.eval_accuracy);
                std::cout << buf;
              }
              std::cout << "\n";
            }
            std::cout << "wrote     " << o->out_path << "\n" << std::flush;
            return 0;
          },
          check};
}

}  // namespace hspec::cli
