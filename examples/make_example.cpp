// Writes the small example the README analyzes: a 20-32-3 tanh MLP trained by full-batch
// gradient descent (with hspec's own gradient) on 512 seeded synthetic samples labelled by
// a random teacher network. With a workload name (mlp_small, mlp_wide) it writes that
// benchmark workload instead (untrained, as the benchmarks use it).
// Usage: hspec_make_example OUTDIR [WORKLOAD]
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "hspec/formats/safetensors.hpp"
#include "hspec/graph/graph_operator.hpp"
#include "hspec/mlp/workloads.hpp"

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) {
    std::fprintf(stderr, "usage: hspec_make_example OUTDIR [mlp_small|mlp_wide]\n");
    return 2;
  }
  try {
    const std::string dir = argv[1];
    std::filesystem::create_directories(dir);
    if (argc == 3) {
      for (const hspec::Workload& w : hspec::benchmark_workloads()) {
        if (w.name != argv[2]) continue;
        const hspec::Model teacher = hspec::random_mlp(w.sizes, w.activation, 2);
        const hspec::Dataset ds = hspec::teacher_dataset(teacher, w.samples, 3);
        const std::string base = dir + "/" + w.name;
        hspec::save_model(base + "_model.safetensors", hspec::random_mlp(w.sizes, w.activation, 1),
                          w.loss);
        hspec::write_safetensors(base + "_data.safetensors",
                                 {hspec::make_tensor("inputs", {ds.n, ds.d}, ds.inputs),
                                  hspec::make_tensor("labels", {ds.n}, ds.labels)});
        std::printf("wrote %s_model.safetensors and %s_data.safetensors\n", base.c_str(),
                    base.c_str());
        return 0;
      }
      std::fprintf(stderr, "hspec_make_example: unknown workload '%s'\n", argv[2]);
      return 2;
    }
    const std::vector<int64_t> sizes = {20, 32, 3};
    const hspec::Model teacher = hspec::random_mlp(sizes, hspec::Activation::Tanh, 11);
    const hspec::Dataset ds = hspec::teacher_dataset(teacher, 512, 7);
    hspec::Model m = hspec::random_mlp(sizes, hspec::Activation::Tanh, 3);
    hspec::GraphOperatorOptions opt;  // the operator `analyze` runs the checkpoint on
    opt.loss = hspec::Loss::CE;
    std::vector<double> theta = m.flatten();
    double loss = 0;
    for (int step = 0; step < 400; ++step) {
      m.unflatten(theta);
      const hspec::GraphCurvatureOperator<double> op(hspec::graph_from_mlp(m), ds, opt);
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
