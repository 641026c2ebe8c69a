// Writes the small example the README analyzes: a 20-32-3 tanh MLP trained by full-batch
// gradient descent (with hspec's own gradient) on 512 seeded synthetic samples labelled by
// a random teacher network. Usage: hspec_make_example OUTDIR
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "hspec/cpu_hvp.hpp"
#include "hspec/safetensors.hpp"
#include "hspec/workloads.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: hspec_make_example OUTDIR\n");
    return 2;
  }
  try {
    const std::string dir = argv[1];
    const std::vector<int64_t> sizes = {20, 32, 3};
    const hspec::Model teacher = hspec::random_mlp(sizes, hspec::Activation::Tanh, 11);
    const hspec::Dataset ds = hspec::teacher_dataset(teacher, 512, 7);
    hspec::Model m = hspec::random_mlp(sizes, hspec::Activation::Tanh, 3);
    hspec::CpuOperatorOptions opt;
    opt.loss = hspec::Loss::CE;
    std::vector<double> theta = m.flatten();
    double loss = 0;
    for (int step = 0; step < 400; ++step) {
      m.unflatten(theta);
      const hspec::CpuCurvatureOperator<double> op(m, ds, opt);
      loss = op.loss_value();
      for (size_t i = 0; i < theta.size(); ++i) theta[i] -= 0.5 * op.gradient()[i];
    }
    m.unflatten(theta);
    hspec::save_model(dir + "/model.safetensors", m, hspec::Loss::CE);
    hspec::write_safetensors(dir + "/data.safetensors",
                             {hspec::make_tensor("inputs", {ds.n, ds.d}, ds.inputs),
                              hspec::make_tensor("labels", {ds.n}, ds.labels)});
    std::printf(
        "wrote %s/model.safetensors (20-32-3 tanh MLP, %lld parameters, trained to loss "
        "%.4f) and %s/data.safetensors (%lld samples)\n",
        dir.c_str(), static_cast<long long>(m.num_params()), loss, dir.c_str(),
        static_cast<long long>(ds.n));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hspec_make_example: %s\n", e.what());
    return 1;
  }
}
