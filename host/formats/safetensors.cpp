// safetensors reader: the whole header is validated up front (offsets, sizes, dtypes, names)
// before any tensor is read; the writer is safetensors_write.cpp.
#include "hspec/formats/safetensors.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "hspec/error.hpp"
#include "safetensors_bytes.hpp"

namespace hspec {
namespace {

using nlohmann::json;
using safetensors_bytes::checked_mul;
using safetensors_bytes::load_le;
using safetensors_bytes::shape_str;

// The reference implementation refuses headers above 100 MB; so do we, which also bounds
// the memory the JSON parse can take.
constexpr uint64_t kMaxHeader = 100'000'000;
// Tensor entries nest three deep; anything much deeper is hostile.
constexpr int kMaxJsonDepth = 8;

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeEntry kDTypes[] = {{DType::F64, "F64", 8}, {DType::F32, "F32", 4},
                                  {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
                                  {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
                                  {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
                                  {DType::U8, "U8", 1},   {DType::BOOL, "BOOL", 1}};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw InputError(path + ": " + what);
}

// Names come from the file: escape control bytes so a message stays one line, and clip.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s.substr(0, 200)) {
    if (c >= 0x20 && c != 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return s.size() > 200 ? out + "..." : out;
}

std::string quoted(const std::string& name) {
  return "tensor '" + printable(name) + "'";
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// A non-negative JSON integer. Floats such as 2.0 are refused, as the reference parser
// (serde usize) refuses them.
bool as_u64(const json& v, uint64_t& out) {
  if (v.is_number_unsigned()) {
    out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    out = static_cast<uint64_t>(v.get<int64_t>());
    return true;
  }
  return false;
}

// IEEE binary16 -> float; ldexp keeps subnormals exact.
float half_to_float(uint16_t h) {
  const bool neg = h & 0x8000;
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), -24);
  } else if (exp == 31) {
    v = mant ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    v = std::ldexp(static_cast<float>(mant | 0x400), exp - 25);
  }
  return neg ? -v : v;
}

float bf16_to_float(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

bool is_float_dtype(DType d) {
  return d == DType::F64 || d == DType::F32 || d == DType::F16 || d == DType::BF16;
}

int64_t element_int(DType d, const unsigned char* p) {
  if (d == DType::I64) return static_cast<int64_t>(load_le(p, 8));
  if (d == DType::I32) return static_cast<int32_t>(load_le(p, 4));
  if (d == DType::I16) return static_cast<int16_t>(load_le(p, 2));
  if (d == DType::I8) return static_cast<int8_t>(p[0]);
  return d == DType::BOOL ? p[0] != 0 : p[0];  // BOOL or U8
}

// One element as double; integer dtypes convert too.
double element_double(DType d, const unsigned char* p) {
  if (d == DType::F64) {
    const uint64_t bits = load_le(p, 8);
    double v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }
  if (d == DType::F32) {
    const uint32_t bits = static_cast<uint32_t>(load_le(p, 4));
    float v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }
  if (d == DType::F16) return half_to_float(static_cast<uint16_t>(load_le(p, 2)));
  if (d == DType::BF16) return bf16_to_float(static_cast<uint16_t>(load_le(p, 2)));
  return static_cast<double>(element_int(d, p));
}

void check_finite(const std::string& path, const std::string& name, double v, size_t i) {
  if (std::isfinite(v)) return;
  const char* what = std::isnan(v) ? "NaN" : (v > 0 ? "Inf" : "-Inf");
  fail(path, quoted(name) + " holds " + what + " at index " + std::to_string(i));
}

// Parses the header, rejecting duplicate keys in any object (nlohmann would silently keep
// the last one) and absurd nesting.
json parse_header(const std::string& path, const std::string& text) {
  std::vector<std::set<std::string>> keys;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (depth > kMaxJsonDepth) fail(path, "JSON header nests deeper than expected");
    if (ev == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (ev == json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (ev == json::parse_event_t::key && !keys.empty()) {
      const std::string k = parsed.get<std::string>();
      if (!keys.back().insert(k).second) {
        fail(path, "JSON header has duplicate key '" + printable(k) + "'" +
                       (keys.size() == 1 ? " (duplicate tensor name)" : ""));
      }
    }
    return true;
  };
  try {
    return json::parse(text, cb);
  } catch (const json::exception& e) {
    fail(path, std::string("invalid JSON header: ") + e.what());
  }
}

TensorInfo parse_entry(const std::string& path, const std::string& name, const json& e,
                       uint64_t data_size) {
  const std::string t = quoted(name);
  if (!e.is_object()) fail(path, t + ": header entry is not a JSON object");
  for (const auto& kv : e.items()) {
    if (kv.key() != "dtype" && kv.key() != "shape" && kv.key() != "data_offsets") {
      fail(path, t + ": unexpected field '" + printable(kv.key()) + "'");
    }
  }
  for (const char* f : {"dtype", "shape", "data_offsets"}) {
    if (!e.contains(f)) fail(path, t + ": missing field '" + f + "'");
  }
  TensorInfo info;
  info.name = name;
  const json& dt = e["dtype"];
  if (!dt.is_string()) fail(path, t + ": dtype is not a string");
  const std::string dts = dt.get<std::string>();
  const DTypeEntry* found = nullptr;
  for (const auto& d : kDTypes) {
    if (dts == d.name) found = &d;
  }
  if (!found) fail(path, t + ": unknown dtype '" + printable(dts) + "'");
  info.dtype = found->dtype;

  const json& sh = e["shape"];
  if (!sh.is_array()) fail(path, t + ": shape is not an array");
  uint64_t numel = 1;
  for (const json& v : sh) {
    if (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() < 0) {
      fail(path, t + ": shape has negative entry " + std::to_string(v.get<int64_t>()));
    }
    uint64_t dim;
    if (!as_u64(v, dim)) fail(path, t + ": shape entry " + v.dump() + " is not an integer");
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        !checked_mul(numel, dim, numel) ||
        numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail(path, t + ": shape " + sh.dump() + " has too many elements (overflow)");
    }
    info.shape.push_back(static_cast<int64_t>(dim));
  }
  uint64_t nbytes;
  if (!checked_mul(numel, found->size, nbytes)) {
    fail(path, t + ": shape " + sh.dump() + " of " + dts + " overflows the byte count");
  }

  const json& off = e["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !as_u64(off[0], info.begin) ||
      !as_u64(off[1], info.end)) {
    fail(path, t + ": data_offsets must be two non-negative integers, got " + off.dump());
  }
  const std::string range =
      "byte range [" + std::to_string(info.begin) + ", " + std::to_string(info.end) + ")";
  if (info.end < info.begin) fail(path, t + " has " + range + " that ends before it begins");
  if (info.end > data_size) {
    fail(path,
         t + " has " + range + " beyond the " + std::to_string(data_size) + "-byte data section");
  }
  if (info.end - info.begin != nbytes) {
    fail(path, t + " has " + range + " but shape " + shape_str(info.shape) + " of " + dts +
                   " needs " + std::to_string(nbytes) + " bytes");
  }
  return info;
}

}  // namespace

const char* dtype_name(DType d) {
  for (const auto& e : kDTypes) {
    if (e.dtype == d) return e.name;
  }
  return "?";
}

size_t dtype_size(DType d) {
  for (const auto& e : kDTypes) {
    if (e.dtype == d) return e.size;
  }
  return 0;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

SafeTensorsFile::SafeTensorsFile(const std::string& path) : path_(path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) fail(path, "cannot open: " + ec.message());
  // Opening a FIFO or device could block or stream forever.
  if (!fs::is_regular_file(st)) fail(path, "not a regular file");
  file_size_ = fs::file_size(path, ec);
  if (ec) fail(path, "cannot read the file size: " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot open for reading: ") + std::strerror(errno));

  if (file_size_ < 8) {
    fail(path, "file is " + std::to_string(file_size_) +
                   " bytes, too short for the 8-byte header length");
  }
  unsigned char len_bytes[8];
  if (!in.read(reinterpret_cast<char*>(len_bytes), 8)) fail(path, "cannot read header length");
  const uint64_t n = load_le(len_bytes, 8);
  if (n > file_size_ - 8) {
    fail(path, "header length " + std::to_string(n) + " exceeds the " +
                   std::to_string(file_size_ - 8) + " bytes after the length field");
  }
  if (n > kMaxHeader) {
    fail(path, "header length " + std::to_string(n) + " exceeds the 100 MB limit");
  }
  std::string text(n, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(n))) fail(path, "cannot read header");
  data_start_ = 8 + n;
  const uint64_t data_size = file_size_ - data_start_;

  const json hdr = parse_header(path, text);
  if (!hdr.is_object()) fail(path, "JSON header is not an object");
  std::vector<const TensorInfo*> order;
  for (const auto& kv : hdr.items()) {
    if (kv.key() == "__metadata__") {
      if (!kv.value().is_object()) fail(path, "__metadata__ is not a JSON object");
      for (const auto& m : kv.value().items()) {
        if (!m.value().is_string())
          fail(path, "__metadata__ value of '" + printable(m.key()) + "' is not a string");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto it = tensors_.emplace(kv.key(), parse_entry(path, kv.key(), kv.value(), data_size));
    order.push_back(&it.first->second);
  }
  // Empty tensors occupy no bytes, so only non-empty ranges can collide.
  std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  const TensorInfo* prev = nullptr;
  uint64_t covered = 0;  // end of the bytes indexed so far, in offset order
  for (const TensorInfo* t : order) {
    if (t->begin == t->end) continue;
    if (prev && t->begin < prev->end) {
      fail(path, quoted(t->name) + " overlaps " + quoted(prev->name) + " in the data section");
    }
    // The format requires the data section to be indexed entirely, without holes (the
    // reference reader rejects them too): unindexed bytes could smuggle a second payload.
    if (t->begin != covered) {
      fail(path, "data section has " + std::to_string(t->begin - covered) +
                     " unindexed bytes before " + quoted(t->name) + " (offsets not contiguous)");
    }
    covered = t->end;
    if (!prev || t->end > prev->end) prev = t;
  }
  if (covered != data_size) {
    fail(path, "data section has " + std::to_string(data_size - covered) +
                   " trailing bytes that no tensor indexes");
  }
}

const TensorInfo& SafeTensorsFile::info(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail(path_, "holds no " + quoted(name));
  return it->second;
}

std::vector<unsigned char> SafeTensorsFile::read_bytes(const TensorInfo& t) const {
  std::vector<unsigned char> bytes(t.end - t.begin);
  if (bytes.empty()) return bytes;
  std::ifstream in(path_, std::ios::binary);
  if (!in) fail(path_, std::string("cannot reopen for reading: ") + std::strerror(errno));
  in.seekg(static_cast<std::streamoff>(data_start_ + t.begin));
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()))) {
    fail(path_, "cannot read the bytes of " + quoted(t.name) + " (file changed?)");
  }
  return bytes;
}

std::vector<double> SafeTensorsFile::read_double(const std::string& name) const {
  const TensorInfo& t = info(name);
  const std::vector<unsigned char> bytes = read_bytes(t);
  const size_t es = dtype_size(t.dtype), count = bytes.size() / es;
  std::vector<double> out(count);
  for (size_t i = 0; i < count; ++i) {
    out[i] = element_double(t.dtype, bytes.data() + i * es);
    check_finite(path_, name, out[i], i);
  }
  return out;
}

std::vector<float> SafeTensorsFile::read_float(const std::string& name) const {
  const TensorInfo& t = info(name);
  const std::vector<unsigned char> bytes = read_bytes(t);
  const size_t es = dtype_size(t.dtype), count = bytes.size() / es;
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) {
    const double v = element_double(t.dtype, bytes.data() + i * es);
    check_finite(path_, name, v, i);
    if (std::fabs(v) > std::numeric_limits<float>::max()) {
      fail(path_, quoted(name) + " value " + num(v) + " at index " + std::to_string(i) +
                      " is out of float range");
    }
    out[i] = static_cast<float>(v);
  }
  return out;
}

std::vector<int64_t> SafeTensorsFile::read_int(const std::string& name) const {
  const TensorInfo& t = info(name);
  if (is_float_dtype(t.dtype)) {
    fail(path_, quoted(name) + " has dtype " + dtype_name(t.dtype) + ", expected an integer dtype");
  }
  const std::vector<unsigned char> bytes = read_bytes(t);
  const size_t es = dtype_size(t.dtype), count = bytes.size() / es;
  std::vector<int64_t> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = element_int(t.dtype, bytes.data() + i * es);
  return out;
}

}  // namespace hspec
