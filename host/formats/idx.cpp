// IDX reader and writer; zlib's gz* functions read gzip and raw files alike.
#include "hspec/formats/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "hspec/error.hpp"

namespace hspec {
namespace {

// Decoded values are doubles, so this bounds the result at 2 GiB (plus the float copy the
// dataset makes) whatever the header says. It was 2^30 (8 GiB + 4 GiB): a 1 MB gzip bomb
// whose header told the truth could then exhaust the memory of most machines. 2^28 still
// holds MNIST (47M elements) and CIFAR-10-sized sets (154M).
constexpr uint64_t kMaxElements = uint64_t{1} << 28;
constexpr size_t kChunk = size_t{1} << 20;  // a multiple of every element size

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw InputError(path + ": " + what);
}

size_t element_size(uint8_t code) {
  switch (code) {
    case 0x08:
    case 0x09:
      return 1;
    case 0x0B:
      return 2;
    case 0x0C:
    case 0x0D:
      return 4;
    case 0x0E:
      return 8;
    default:
      return 0;
  }
}

std::string hex(unsigned v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", v & 0xffu);
  return buf;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

uint64_t load_be(const unsigned char* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

void store_be(unsigned char* p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) p[n - 1 - i] = static_cast<unsigned char>(v >> (8 * i));
}

double decode(uint8_t code, const unsigned char* p) {
  switch (code) {
    case 0x08:
      return p[0];
    case 0x09:
      return static_cast<int8_t>(p[0]);
    case 0x0B:
      return static_cast<int16_t>(load_be(p, 2));
    case 0x0C:
      return static_cast<int32_t>(load_be(p, 4));
    case 0x0D: {
      const uint32_t bits = static_cast<uint32_t>(load_be(p, 4));
      float v;
      std::memcpy(&v, &bits, sizeof v);
      return v;
    }
    default: {
      const uint64_t bits = load_be(p, 8);
      double v;
      std::memcpy(&v, &bits, sizeof v);
      return v;
    }
  }
}

// RAII gzFile for reading; stream errors become InputErrors naming the path.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::file_status st = fs::status(path, ec);
    if (ec || !fs::exists(st)) fail(path, "cannot open: " + ec.message());
    // A FIFO or device could block or never end.
    if (!fs::is_regular_file(st)) fail(path, "not a regular file");
    f_ = gzopen(path.c_str(), "rb");
    if (!f_) fail(path, std::string("cannot open for reading: ") + std::strerror(errno));
  }
  ~GzReader() { gzclose(f_); }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  // Reads up to n bytes, fewer only at the end of the data.
  size_t read(unsigned char* buf, size_t n) {
    size_t got = 0;
    while (got < n) {
      const unsigned want = static_cast<unsigned>(std::min<size_t>(n - got, kChunk));
      const int r = gzread(f_, buf + got, want);
      if (r < 0) stream_error();
      if (r == 0) {
        // zlib reports a cut-off gzip stream as a quiet end of data plus Z_BUF_ERROR.
        int err = Z_OK;
        gzerror(f_, &err);
        if (err != Z_OK) stream_error();
        break;
      }
      got += static_cast<size_t>(r);
    }
    return got;
  }

 private:
  [[noreturn]] void stream_error() {
    int err = Z_OK;
    std::string msg = gzerror(f_, &err);
    // zlib prefixes its messages with the path; drop that, fail() adds it once.
    if (msg.compare(0, path_.size() + 2, path_ + ": ") == 0) msg.erase(0, path_.size() + 2);
    if (err == Z_BUF_ERROR) fail(path_, "gzip stream is truncated (" + msg + ")");
    fail(path_, "corrupt gzip stream (" + msg + ")");
  }
  std::string path_;
  gzFile f_ = nullptr;
};

void put(unsigned char* p, uint8_t code, double v, const std::string& path) {
  auto need_int = [&](double lo, double hi) {
    if (!(v >= lo && v <= hi) || v != std::floor(v)) {
      throw Error(path + ": value " + num(v) + " does not fit IDX type " + hex(code));
    }
  };
  switch (code) {
    case 0x08:
      need_int(0, 255);
      p[0] = static_cast<unsigned char>(v);
      return;
    case 0x09:
      need_int(-128, 127);
      p[0] = static_cast<unsigned char>(static_cast<int8_t>(v));
      return;
    case 0x0B:
      need_int(-32768, 32767);
      store_be(p, static_cast<uint16_t>(static_cast<int16_t>(v)), 2);
      return;
    case 0x0C:
      need_int(-2147483648.0, 2147483647.0);
      store_be(p, static_cast<uint32_t>(static_cast<int32_t>(v)), 4);
      return;
    case 0x0D: {
      if (std::isfinite(v) && std::fabs(v) > std::numeric_limits<float>::max()) {
        throw Error(path + ": value " + num(v) + " is out of float range");
      }
      const float f = static_cast<float>(v);
      uint32_t bits;
      std::memcpy(&bits, &f, sizeof bits);
      store_be(p, bits, 4);
      return;
    }
    default: {
      uint64_t bits;
      std::memcpy(&bits, &v, sizeof bits);
      store_be(p, bits, 8);
    }
  }
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  GzReader in(path);
  unsigned char head[4];
  size_t got = in.read(head, 4);
  if (got < 4) {
    fail(path, "truncated header: " + std::to_string(got) + " bytes, an IDX header needs 4");
  }
  if (head[0] != 0 || head[1] != 0) {
    fail(path, "not an IDX file: first bytes are " + hex(head[0]) + " " + hex(head[1]) +
                   ", expected 0x00 0x00");
  }
  IdxArray a;
  a.type_code = head[2];
  const size_t es = element_size(a.type_code);
  if (es == 0) fail(path, "unknown IDX type code " + hex(a.type_code));
  const int rank = head[3];
  if (rank < 1 || rank > 4)
    fail(path, "IDX rank " + std::to_string(rank) + " not supported (1 to 4)");
  unsigned char dims[16];
  got = in.read(dims, 4 * static_cast<size_t>(rank));
  if (got < 4 * static_cast<size_t>(rank)) {
    fail(path, "truncated header: rank " + std::to_string(rank) + " needs " +
                   std::to_string(4 * rank) + " bytes of dimensions, file holds " +
                   std::to_string(got));
  }
  uint64_t count = 1;
  bool empty = false;
  std::string dims_str;
  for (int i = 0; i < rank; ++i) {
    const uint64_t d = load_be(dims + 4 * i, 4);
    a.shape.push_back(static_cast<int64_t>(d));
    dims_str += (i ? " x " : "") + std::to_string(d);
    empty = empty || d == 0;
    // Saturate: each dim is below 2^32 and count stays at most 2^30 before multiplying.
    if (count <= kMaxElements) count *= d;
  }
  if (empty) count = 0;
  if (count > kMaxElements) {
    fail(path, "header promises " + dims_str + " elements, above the limit of " +
                   std::to_string(kMaxElements));
  }

  // Grow with the data actually present, never with what the header claims.
  std::vector<unsigned char> buf(static_cast<size_t>(std::min<uint64_t>(count * es, kChunk)));
  uint64_t left = count * es;
  while (left > 0) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
    const size_t n = in.read(buf.data(), want);
    for (size_t i = 0; i + es <= n; i += es)
      a.values.push_back(decode(a.type_code, buf.data() + i));
    if (n < want) {
      fail(path, "truncated: header promises " + std::to_string(count) + " elements, file holds " +
                     std::to_string(a.values.size()));
    }
    left -= want;
  }
  unsigned char extra;
  if (in.read(&extra, 1) != 0) {
    fail(path,
         "trailing bytes after the " + std::to_string(count) + " elements the header promises");
  }
  return a;
}

void write_idx(const std::string& path, const IdxArray& a) {
  const size_t es = element_size(a.type_code);
  if (es == 0) throw Error(path + ": unknown IDX type code " + hex(a.type_code));
  if (a.shape.empty() || a.shape.size() > 4) {
    throw Error(path + ": IDX rank " + std::to_string(a.shape.size()) + " not supported");
  }
  std::vector<unsigned char> head(4 + 4 * a.shape.size());
  head[2] = a.type_code;
  head[3] = static_cast<unsigned char>(a.shape.size());
  uint64_t count = 1;
  for (size_t i = 0; i < a.shape.size(); ++i) {
    const int64_t d = a.shape[i];
    if (d < 0 || d > std::numeric_limits<uint32_t>::max()) {
      throw Error(path + ": IDX dimension " + std::to_string(d) + " out of range");
    }
    store_be(head.data() + 4 + 4 * i, static_cast<uint64_t>(d), 4);
    if (count != 0 && static_cast<uint64_t>(d) > std::numeric_limits<uint64_t>::max() / count) {
      throw Error(path + ": IDX shape overflows");
    }
    count *= static_cast<uint64_t>(d);
  }
  if (count != a.values.size()) {
    throw Error(path + ": IDX shape needs " + std::to_string(count) + " values, got " +
                std::to_string(a.values.size()));
  }
  const bool gz = path.size() >= 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
  // "T" asks zlib for plain writes, so one code path serves both forms.
  gzFile f = gzopen(path.c_str(), gz ? "wb" : "wbT");
  if (!f) throw Error(path + ": cannot open for writing: " + std::strerror(errno));
  bool ok =
      gzwrite(f, head.data(), static_cast<unsigned>(head.size())) == static_cast<int>(head.size());
  std::vector<unsigned char> body(kChunk);
  try {
    for (size_t i = 0; ok && i < a.values.size();) {
      size_t n = 0;
      for (; i < a.values.size() && n + es <= body.size(); ++i, n += es) {
        put(body.data() + n, a.type_code, a.values[i], path);
      }
      ok = gzwrite(f, body.data(), static_cast<unsigned>(n)) == static_cast<int>(n);
    }
  } catch (...) {
    gzclose(f);
    throw;
  }
  if (gzclose(f) != Z_OK || !ok) throw Error(path + ": write failed");
}

}  // namespace hspec
