// Parsing and naming of the typed option values (include/hspec/options.hpp).
#include "hspec/options.hpp"

#include "hspec/error.hpp"

namespace hspec {

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::Fp32:
      return "fp32";
    case Precision::Fp64:
      return "fp64";
    case Precision::Tf32:
      return "tf32";
  }
  return "?";
}

Precision parse_precision(const std::string& s) {
  if (s == "fp32") return Precision::Fp32;
  if (s == "fp64") return Precision::Fp64;
  if (s == "tf32") return Precision::Tf32;
  throw UsageError("--precision must be fp32, fp64 or tf32 (got '" + s + "')");
}

std::string DeviceRequest::text() const {
  switch (kind) {
    case Kind::Auto:
      return "auto";
    case Kind::Cpu:
      return "cpu";
    case Kind::Cuda:
      return index < 0 ? "cuda" : "cuda:" + std::to_string(index);
  }
  return "?";
}

DeviceRequest parse_device(const std::string& s) {
  DeviceRequest d;
  if (s == "auto") return d;
  if (s == "cpu") {
    d.kind = DeviceRequest::Kind::Cpu;
    return d;
  }
  if (s == "cuda" || s.rfind("cuda:", 0) == 0) {
    d.kind = DeviceRequest::Kind::Cuda;
    if (s.size() > 4) {
      const std::string num = s.substr(5);
      if (num.empty() || num.size() > 4 || num.find_first_not_of("0123456789") != std::string::npos)
        throw UsageError("--device: bad device '" + s + "' (auto, cpu, cuda, cuda:N)");
      d.index = std::stoi(num);
    }
    return d;
  }
  throw UsageError("--device: bad device '" + s + "' (auto, cpu, cuda, cuda:N)");
}

}  // namespace hspec
