// libFuzzer target: the safetensors reader, and the checkpoint and dataset loaders on top.
// Every hostile file must end in hspec::InputError; anything else (a crash, a sanitizer
// report, another exception escaping, a hang, a large allocation) is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.hpp"
#include "hspec/error.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/formats/safetensors.hpp"
#include "hspec/mlp/model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = hspec::fuzz::scratch_path("st") + ".safetensors";
  hspec::fuzz::write_bytes(path, data, size);
  try {
    const hspec::SafeTensorsFile f(path);
    for (const auto& [name, info] : f.tensors()) {
      try {
        const bool fp = info.dtype == hspec::DType::F64 || info.dtype == hspec::DType::F32 ||
                        info.dtype == hspec::DType::F16 || info.dtype == hspec::DType::BF16;
        if (fp) {
          f.read_double(name);
          f.read_float(name);
        } else {
          f.read_int(name);
        }
      } catch (const hspec::InputError&) {
      }
    }
  } catch (const hspec::InputError&) {
  }
  try {
    const hspec::Model m = hspec::load_model(path);
    (void)m.num_params();
  } catch (const hspec::InputError&) {
  }
  try {
    hspec::Dataset ds = hspec::load_dataset(path);
    hspec::truncate_dataset(ds, 3);
  } catch (const hspec::InputError&) {
  }
  return 0;
}
