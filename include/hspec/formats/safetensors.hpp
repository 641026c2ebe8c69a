// safetensors files: 8-byte little-endian header length, a JSON header, raw little-endian
// tensor bytes. The reader validates everything before handing out data.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace hspec {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char* dtype_name(DType d);
size_t dtype_size(DType d);

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data section, [begin, end)
  uint64_t end = 0;
  int64_t numel() const;
};

// An opened, validated safetensors file. Construction reads and checks the header
// (lengths, JSON, dtypes, shapes, offsets within the file, byte lengths equal to
// numel * dtype size, no overlaps, no duplicate names); any problem throws InputError
// with the path and the problem. Tensor data is read on demand.
class SafeTensorsFile {
 public:
  explicit SafeTensorsFile(const std::string& path);

  const std::string& path() const { return path_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // InputError when missing
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The tensor's elements converted to the requested type, in storage (row-major) order.
  // Floating reads accept F64/F32/F16/BF16 and reject non-finite values (InputError
  // naming the tensor and the flat index). Integer reads accept the integer dtypes.
  std::vector<double> read_double(const std::string& name) const;
  std::vector<float> read_float(const std::string& name) const;
  std::vector<int64_t> read_int(const std::string& name) const;

 private:
  std::vector<unsigned char> read_bytes(const TensorInfo& t) const;
  std::string path_;
  uint64_t data_start_ = 0;  // 8 + header length
  uint64_t file_size_ = 0;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: raw little-endian bytes of dtype with the given shape.
struct TensorData {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<unsigned char> bytes;
};

TensorData make_tensor(const std::string& name, const std::vector<int64_t>& shape,
                       const std::vector<float>& values);
TensorData make_tensor(const std::string& name, const std::vector<int64_t>& shape,
                       const std::vector<double>& values);
TensorData make_tensor(const std::string& name, const std::vector<int64_t>& shape,
                       const std::vector<int64_t>& values);

// Writes a safetensors file (tensors in the given order, header padded to 8 bytes as the
// reference implementation does). Throws Error when the file cannot be written.
void write_safetensors(const std::string& path, const std::vector<TensorData>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace hspec
