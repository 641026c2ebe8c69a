// The graph engine's compute seam on a CUDA device (kernels/graph/). Declared in every build,
// without CUDA headers, so host code needs no #ifdefs: a build without the CUDA backend
// defines the factory to throw DeviceError (kernels/no_cuda.cpp).
#pragma once
#include <memory>

#include "hspec/graph/compute.hpp"

namespace hspec {

// A Compute<T> (T = float or double) whose buffers live on CUDA device `device`: cuBLAS for
// the GEMMs, small kernels for the rest, every reduction in a fixed order (the same inputs
// give the same bits). With tf32 (T = float only) the GEMMs run on TF32 tensor cores.
// DeviceError when the device cannot be used.
template <class T>
std::unique_ptr<Compute<T>> make_cuda_compute(int device, bool tf32 = false);

}  // namespace hspec
