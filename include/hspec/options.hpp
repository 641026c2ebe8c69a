// Typed values of the options `analyze`, `compare` and `train` share. The CLI parses each
// string once, at its boundary (host/cli/), and the library compares enums from then on;
// the *_name functions give the spelling back for reports and messages.
#pragma once
#include <string>

namespace hspec {

// The arithmetic of the products and the solver: fp32, fp64, or fp32 with TF32 tensor-core
// GEMMs (CUDA only).
enum class Precision { Fp32, Fp64, Tf32 };
const char* precision_name(Precision p);
// "fp32" | "fp64" | "tf32"; UsageError naming the accepted values otherwise.
Precision parse_precision(const std::string& s);

// Where a run should go: `auto` (a CUDA device when one is usable, else the CPU), `cpu`,
// `cuda` (the first card, or on several MPI ranks the rank's own) or `cuda:N`.
struct DeviceRequest {
  enum class Kind { Auto, Cpu, Cuda };
  Kind kind = Kind::Auto;
  int index = -1;  // cuda:N; -1 for plain `cuda`
  bool cuda() const { return kind == Kind::Cuda; }
  std::string text() const;  // as the user wrote it: "auto", "cpu", "cuda", "cuda:1"
};
// UsageError for anything but auto, cpu, cuda and cuda:N (N a decimal of at most 4 digits).
DeviceRequest parse_device(const std::string& s);

}  // namespace hspec
