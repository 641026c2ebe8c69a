// libFuzzer target: the IDX reader (raw and gzip) and the dataset loader built on it.
// The first byte picks the mode, so one target covers a lone IDX file, IDX images with IDX
// labels (the input split in two), and the same bytes gzip-compressed by us (so the fuzzer
// explores IDX structure behind a valid gzip stream, not only corrupt streams).
#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz_util.hpp"
#include "hspec/error.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/formats/idx.hpp"

namespace {

void write_gzip(const std::string& path, const uint8_t* data, size_t size) {
  gzFile f = gzopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size > 0 && gzwrite(f, data, static_cast<unsigned>(size)) != static_cast<int>(size))
    std::abort();
  gzclose(f);
}

template <class F>
void expect_input_error_or_ok(F&& f) {
  try {
    f();
  } catch (const hspec::InputError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string images = hspec::fuzz::scratch_path("idx") + "-images";
  static const std::string labels = hspec::fuzz::scratch_path("idx") + "-labels";
  if (size < 1) return 0;
  const uint8_t mode = data[0] % 4;
  ++data;
  --size;
  if (mode == 0 || mode == 1) {
    hspec::fuzz::write_bytes(images, data, size);
    if (mode == 0)
      expect_input_error_or_ok([&] { hspec::read_idx(images); });
    else
      expect_input_error_or_ok([&] { hspec::load_dataset(images); });
  } else if (mode == 2) {
    // Two bytes give the split point between the images file and the labels file.
    if (size < 2) return 0;
    const size_t cut = std::min<size_t>((data[0] | (data[1] << 8)), size - 2);
    hspec::fuzz::write_bytes(images, data + 2, cut);
    hspec::fuzz::write_bytes(labels, data + 2 + cut, size - 2 - cut);
    expect_input_error_or_ok([&] { hspec::load_dataset(images, labels); });
  } else {
    write_gzip(images, data, size);
    expect_input_error_or_ok([&] { hspec::load_dataset(images); });
  }
  return 0;
}
