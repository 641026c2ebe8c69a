// safetensors writer: tensors in the caller's order, the header padded to 8 bytes as the
// reference implementation writes it. Used for checkpoints (`hspec train`), test fixtures and
// benchmark dumps; the reader is safetensors.cpp.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "hspec/error.hpp"
#include "hspec/formats/safetensors.hpp"
#include "safetensors_bytes.hpp"

namespace hspec {

using safetensors_bytes::checked_mul;
using safetensors_bytes::shape_str;
using safetensors_bytes::store_le;

namespace {

// numel of a caller-built shape; false when a dim is negative or the product overflows.
bool shape_numel(const std::vector<int64_t>& shape, uint64_t& numel) {
  numel = 1;
  for (int64_t s : shape) {
    if (s < 0 || !checked_mul(numel, static_cast<uint64_t>(s), numel)) return false;
  }
  return true;
}

template <class T>
TensorData make_tensor_impl(const std::string& name, const std::vector<int64_t>& shape,
                            const std::vector<T>& values, DType dtype) {
  uint64_t numel;
  if (!shape_numel(shape, numel) || numel != values.size()) {
    throw Error("make_tensor '" + name + "': shape " + shape_str(shape) + " does not hold " +
                std::to_string(values.size()) + " values");
  }
  TensorData t{name, dtype, shape, std::vector<unsigned char>(values.size() * sizeof(T))};
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  for (size_t i = 0; i < values.size(); ++i) {
    Bits bits;
    std::memcpy(&bits, &values[i], sizeof bits);
    store_le(t.bytes.data() + i * sizeof(T), bits, sizeof(T));
  }
  return t;
}

}  // namespace

TensorData make_tensor(const std::string& name, const std::vector<int64_t>& shape,
                       const std::vector<float>& values) {
  return make_tensor_impl(name, shape, values, DType::F32);
}

TensorData make_tensor(const std::string& name, const std::vector<int64_t>& shape,
                       const std::vector<double>& values) {
  return make_tensor_impl(name, shape, values, DType::F64);
}

TensorData make_tensor(const std::string& name, const std::vector<int64_t>& shape,
                       const std::vector<int64_t>& values) {
  return make_tensor_impl(name, shape, values, DType::I64);
}

void write_safetensors(const std::string& path, const std::vector<TensorData>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the tensors in the caller's order, as the reference writer does.
  nlohmann::ordered_json hdr = nlohmann::ordered_json::object();
  if (!metadata.empty()) hdr["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::set<std::string> names;
  for (const TensorData& t : tensors) {
    if (t.name == "__metadata__" || !names.insert(t.name).second) {
      throw Error(path + ": cannot write tensor name '" + t.name + "' twice or as __metadata__");
    }
    uint64_t numel, nbytes;
    if (!shape_numel(t.shape, numel) || !checked_mul(numel, dtype_size(t.dtype), nbytes) ||
        nbytes != t.bytes.size()) {
      throw Error(path + ": tensor '" + t.name + "' holds " + std::to_string(t.bytes.size()) +
                  " bytes, which do not match shape " + shape_str(t.shape) + " of " +
                  dtype_name(t.dtype));
    }
    hdr[t.name] = {{"dtype", dtype_name(t.dtype)},
                   {"shape", t.shape},
                   {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string text;
  try {
    text = hdr.dump();
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": cannot encode the header: " + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char len[8];
  store_le(len, text.size(), 8);

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(path + ": cannot open for writing: " + std::strerror(errno));
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const TensorData& t : tensors) {
    out.write(reinterpret_cast<const char*>(t.bytes.data()),
              static_cast<std::streamsize>(t.bytes.size()));
  }
  out.close();
  if (!out) throw Error(path + ": write failed: " + std::strerror(errno));
}

}  // namespace hspec
