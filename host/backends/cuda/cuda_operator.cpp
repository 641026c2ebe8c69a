// The host side of the CUDA MLP operator's factory: the data are checked against the model
// here (check_data_fits, the CPU operator's own check), then kernels/ builds the operator on
// the device. Keeping the check in the host library lets kernels/ depend on nothing of it.
#include "hspec/backends/cuda/cuda_backend.hpp"
#include "hspec/mlp/cpu_hvp.hpp"

namespace hspec {

template <class T>
std::unique_ptr<CudaCurvature<T>> make_cuda_operator(const Model& model, const Dataset& data,
                                                     const CudaOperatorOptions& opt) {
  check_data_fits(model, data, opt.base.loss);
  return detail::make_checked_cuda_operator<T>(model, data, opt);
}

template std::unique_ptr<CudaCurvature<float>> make_cuda_operator<float>(
    const Model&, const Dataset&, const CudaOperatorOptions&);
template std::unique_ptr<CudaCurvature<double>> make_cuda_operator<double>(
    const Model&, const Dataset&, const CudaOperatorOptions&);

}  // namespace hspec
