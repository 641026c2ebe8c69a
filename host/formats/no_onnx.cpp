// The ONNX importer of a build without ONNX support (HSPEC_ONNX off, or libonnx-dev and
// libprotobuf-dev not found): says so instead of failing to link.
#include "hspec/error.hpp"
#include "hspec/formats/onnx.hpp"

namespace hspec {

bool built_with_onnx() {
  return false;
}

Graph load_onnx(const std::string& path) {
  throw UsageError(path +
                   ": this hspec was built without ONNX support (install libonnx-dev and "
                   "libprotobuf-dev and rebuild: bash scripts/build.sh)");
}

}  // namespace hspec
