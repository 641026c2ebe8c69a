// MNIST-style IDX files, raw or gzip-compressed (detected by the magic bytes).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hspec {

struct IdxArray {
  std::vector<int64_t> shape;  // e.g. {N, 28, 28} or {N}
  std::vector<double> values;  // elements in file order, converted to double
  uint8_t type_code = 0x08;    // 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64
};

// Reads an IDX file (big-endian header: two zero bytes, type code, rank, rank u32 dims).
// Checks the magic, the type, that the dims product does not overflow, that the body
// holds exactly that many elements (no truncation, no trailing bytes), and caps the
// decompressed size so a gzip bomb cannot exhaust memory. Throws InputError naming
// the path.
IdxArray read_idx(const std::string& path);

// Writes an IDX file (gzip-compressed when the path ends in .gz); used by tests.
void write_idx(const std::string& path, const IdxArray& a);

}  // namespace hspec
