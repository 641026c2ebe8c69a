// libFuzzer target: the ONNX importer (protobuf parsing, initializer decoding, graph checks,
// constant folding and shape propagation). Every hostile file must end in
// hspec::InputError; anything else (a crash, a sanitizer report, another exception
// escaping, a hang, a large allocation) is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.hpp"
#include "hspec/error.hpp"
#include "hspec/formats/onnx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = hspec::fuzz::scratch_path("onnx") + ".onnx";
  hspec::fuzz::write_bytes(path, data, size);
  try {
    const hspec::Graph g = hspec::load_onnx(path);
    (void)g.num_params();
  } catch (const hspec::InputError&) {
  }
  return 0;
}
