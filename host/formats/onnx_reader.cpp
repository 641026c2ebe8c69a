// The ONNX protobuf reader: ModelProto -> RawModel (nodes, attributes, initializers decoded
// from raw_data, typed fields or external data files), then the importer's checks and folding.
#include <onnx/onnx-ml.pb.h>
#include <sys/stat.h>

#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>

#include "hspec/error.hpp"
#include "hspec/formats/onnx.hpp"
#include "onnx_import.hpp"

namespace hspec {
namespace {

using onnx_import::RawModel;

[[noreturn]] void fail(const std::string& file, const std::string& what) {
  throw InputError(file + ": " + what);
}

std::string dir_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
}

std::string real_path(const std::string& p) {
  char buf[PATH_MAX];
  if (!realpath(p.c_str(), buf)) return "";
  return buf;
}

// Parses a non-negative decimal integer, all of the text; -1 when it is not one.
int64_t parse_count(const std::string& s) {
  if (s.empty() || s.size() > 18) return -1;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

size_t elem_size(int dt) {
  switch (dt) {
    case onnx::TensorProto::FLOAT:
    case onnx::TensorProto::INT32:
    case onnx::TensorProto::UINT32:
      return 4;
    case onnx::TensorProto::DOUBLE:
    case onnx::TensorProto::INT64:
    case onnx::TensorProto::UINT64:
      return 8;
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16:
    case onnx::TensorProto::INT16:
    case onnx::TensorProto::UINT16:
      return 2;
    case onnx::TensorProto::INT8:
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::BOOL:
      return 1;
    default:
      return 0;
  }
}

bool is_float_dtype(int dt) {
  return dt == onnx::TensorProto::FLOAT || dt == onnx::TensorProto::DOUBLE ||
         dt == onnx::TensorProto::FLOAT16 || dt == onnx::TensorProto::BFLOAT16;
}

double half_to_double(uint16_t h) {
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const double s = (h & 0x8000) ? -1.0 : 1.0;
  if (e == 0) return s * std::ldexp(m, -24);
  if (e == 31) return m ? NAN : s * INFINITY;
  return s * std::ldexp(1024 + m, e - 25);
}

double bf16_to_double(uint16_t b) {
  const uint32_t bits = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Little-endian bytes of dtype `dt` into the tensor's values or ints.
void decode_bytes(const unsigned char* p, int dt, GraphTensor& t) {
  const int64_t n = t.numel();
  if (t.is_float())
    t.values.resize(n);
  else
    t.ints.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const unsigned char* q = p + i * elem_size(dt);
    uint64_t u = 0;
    for (size_t b = 0; b < elem_size(dt); ++b) u |= uint64_t(q[b]) << (8 * b);
    switch (dt) {
      case onnx::TensorProto::FLOAT: {
        uint32_t w = uint32_t(u);
        float f;
        std::memcpy(&f, &w, 4);
        t.values[i] = f;
        break;
      }
      case onnx::TensorProto::DOUBLE: {
        double d;
        std::memcpy(&d, &u, 8);
        t.values[i] = d;
        break;
      }
      case onnx::TensorProto::FLOAT16:
        t.values[i] = half_to_double(uint16_t(u));
        break;
      case onnx::TensorProto::BFLOAT16:
        t.values[i] = bf16_to_double(uint16_t(u));
        break;
      case onnx::TensorProto::INT64:
      case onnx::TensorProto::UINT64:
        t.ints[i] = int64_t(u);
        break;
      case onnx::TensorProto::INT32:
        t.ints[i] = int32_t(uint32_t(u));
        break;
      case onnx::TensorProto::UINT32:
        t.ints[i] = int64_t(uint32_t(u));
        break;
      case onnx::TensorProto::INT16:
        t.ints[i] = int16_t(uint16_t(u));
        break;
      case onnx::TensorProto::UINT16:
        t.ints[i] = int64_t(uint16_t(u));
        break;
      case onnx::TensorProto::INT8:
        t.ints[i] = int8_t(uint8_t(u));
        break;
      default:
        t.ints[i] = int64_t(u);
        break;  // UINT8, BOOL
    }
  }
}

// Reads an external-data tensor's bytes, refusing paths that leave the model's folder.
std::vector<unsigned char> read_external(const onnx::TensorProto& tp, const std::string& file,
                                         size_t nbytes, const std::string& what) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : tp.external_data()) {
    if (kv.key() == "location") {
      location = kv.value();
    } else if (kv.key() == "offset" || kv.key() == "length") {
      const int64_t v = parse_count(kv.value());
      if (v < 0)
        fail(file, what + ": external data " + kv.key() + " '" + kv.value() + "' is not a count");
      (kv.key() == "offset" ? offset : length) = v;
    }
  }
  if (location.empty()) fail(file, what + ": external data without a location");
  const bool parent =
      location == ".." || location.rfind("../", 0) == 0 ||
      location.find("/../") != std::string::npos ||
      (location.size() >= 3 && location.compare(location.size() - 3, 3, "/..") == 0);
  if (location[0] == '/' || parent || location.find('\0') != std::string::npos)
    fail(file, what + ": external data path '" + location + "' leaves the model's folder");
  const std::string dir = real_path(dir_of(file));
  const std::string data = real_path(dir_of(file) + "/" + location);
  if (data.empty()) fail(file, what + ": cannot open external data file '" + location + "'");
  if (dir.empty() || data.compare(0, dir.size() + 1, dir + "/") != 0)
    fail(file, what + ": external data path '" + location + "' leaves the model's folder");
  struct stat st {};
  if (stat(data.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    fail(file, what + ": external data '" + location + "' is not a regular file");
  if (length >= 0 && uint64_t(length) != nbytes)
    fail(file, what + ": external data length " + std::to_string(length) + " is not the " +
                   std::to_string(nbytes) + " bytes its shape needs");
  if (uint64_t(offset) > uint64_t(st.st_size) || nbytes > uint64_t(st.st_size) - offset)
    fail(file, what + ": external data [" + std::to_string(offset) + ", +" +
                   std::to_string(nbytes) + ") runs past the end of '" + location + "' (" +
                   std::to_string(st.st_size) + " bytes)");
  std::vector<unsigned char> bytes(nbytes);
  std::ifstream in(data, std::ios::binary);
  in.seekg(offset);
  if (nbytes && !in.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(nbytes)))
    fail(file, what + ": cannot read external data '" + location + "'");
  return bytes;
}

template <class Field>
void check_count(const Field& f, int64_t n, const std::string& file, const std::string& what) {
  if (int64_t(f.size()) != n)
    fail(file, what + ": holds " + std::to_string(f.size()) + " values, its shape needs " +
                   std::to_string(n));
}

GraphTensor decode_tensor(const onnx::TensorProto& tp, const std::string& file,
                          const std::string& what) {
  GraphTensor t;
  const int dt = tp.data_type();
  if (elem_size(dt) == 0) fail(file, what + ": unsupported tensor data type " + std::to_string(dt));
  t.kind = is_float_dtype(dt) ? GraphTensor::Kind::Float : GraphTensor::Kind::Int;
  t.shape.assign(tp.dims().begin(), tp.dims().end());
  const int64_t n = onnx_import::checked_numel(t.shape, file + ": " + what);
  if (n > onnx_import::kMaxElements)
    fail(file, what + ": " + std::to_string(n) + " elements is more than hspec accepts");
  const size_t nbytes = size_t(n) * elem_size(dt);
  if (tp.data_location() == onnx::TensorProto::EXTERNAL) {
    const auto bytes = read_external(tp, file, nbytes, what);
    decode_bytes(bytes.data(), dt, t);
  } else if (tp.has_raw_data()) {
    if (tp.raw_data().size() != nbytes)
      fail(file, what + ": raw_data holds " + std::to_string(tp.raw_data().size()) +
                     " bytes, its shape needs " + std::to_string(nbytes));
    decode_bytes(reinterpret_cast<const unsigned char*>(tp.raw_data().data()), dt, t);
  } else if (dt == onnx::TensorProto::FLOAT) {
    check_count(tp.float_data(), n, file, what);
    t.values.assign(tp.float_data().begin(), tp.float_data().end());
  } else if (dt == onnx::TensorProto::DOUBLE) {
    check_count(tp.double_data(), n, file, what);
    t.values.assign(tp.double_data().begin(), tp.double_data().end());
  } else if (dt == onnx::TensorProto::INT64) {
    check_count(tp.int64_data(), n, file, what);
    t.ints.assign(tp.int64_data().begin(), tp.int64_data().end());
  } else if (dt == onnx::TensorProto::UINT32 || dt == onnx::TensorProto::UINT64) {
    check_count(tp.uint64_data(), n, file, what);
    t.ints.assign(tp.uint64_data().begin(), tp.uint64_data().end());
  } else {  // int32_data holds the narrower types, float16/bfloat16 as bit patterns
    check_count(tp.int32_data(), n, file, what);
    for (int32_t v : tp.int32_data()) {
      if (dt == onnx::TensorProto::FLOAT16)
        t.values.push_back(half_to_double(uint16_t(v)));
      else if (dt == onnx::TensorProto::BFLOAT16)
        t.values.push_back(bf16_to_double(uint16_t(v)));
      else
        t.ints.push_back(v);
    }
  }
  return t;
}

GraphAttribute decode_attribute(const onnx::AttributeProto& a, const std::string& file,
                                const std::string& what) {
  GraphAttribute g;
  switch (a.type()) {
    case onnx::AttributeProto::INT:
      g.kind = GraphAttribute::Kind::Int;
      g.i = a.i();
      break;
    case onnx::AttributeProto::FLOAT:
      g.kind = GraphAttribute::Kind::Float;
      g.f = a.f();
      break;
    case onnx::AttributeProto::STRING:
      g.kind = GraphAttribute::Kind::String;
      g.s = a.s();
      break;
    case onnx::AttributeProto::INTS:
      g.kind = GraphAttribute::Kind::Ints;
      g.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case onnx::AttributeProto::FLOATS:
      g.kind = GraphAttribute::Kind::Floats;
      g.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case onnx::AttributeProto::TENSOR:
      g.kind = GraphAttribute::Kind::Tensor;
      g.t = decode_tensor(a.t(), file, what);
      break;
    case onnx::AttributeProto::GRAPH:
    case onnx::AttributeProto::GRAPHS:
      fail(file, what +
                     " holds a subgraph (control flow such as If or Loop), which hspec "
                     "does not support");
    default:
      fail(file, what + " has an unsupported attribute type " + std::to_string(a.type()));
  }
  return g;
}

// The graph input's element type and per-sample shape (dims after the sample dimension).
void read_input(const onnx::ValueInfoProto& vi, RawModel& m) {
  const std::string& file = m.file;
  if (!vi.type().has_tensor_type()) fail(file, "graph input '" + vi.name() + "' is not a tensor");
  const auto& tt = vi.type().tensor_type();
  const int dt = tt.elem_type();
  if (dt == onnx::TensorProto::INT64 || dt == onnx::TensorProto::INT32) {
    m.g.input_is_int = true;
  } else if (!is_float_dtype(dt)) {
    fail(file, "graph input '" + vi.name() + "' has element type " + std::to_string(dt) +
                   "; hspec needs a float input (features) or an int input (token ids)");
  }
  if (!tt.has_shape() || tt.shape().dim_size() < 1)
    fail(file, "graph input '" + vi.name() + "' has no shape (hspec needs [N, ...])");
  if (tt.shape().dim(0).has_dim_value()) m.declared_batch = tt.shape().dim(0).dim_value();
  for (int i = 1; i < tt.shape().dim_size(); ++i) {
    const auto& d = tt.shape().dim(i);
    if (!d.has_dim_value() || d.dim_value() <= 0)
      fail(file, "graph input '" + vi.name() + "' dimension " + std::to_string(i) +
                     " is not a fixed positive size (only dimension 0, the samples, may vary)");
    m.g.input_shape.push_back(d.dim_value());
  }
  onnx_import::checked_numel(m.g.input_shape, file + ": graph input '" + vi.name() + "'");
}

void read_model(const onnx::ModelProto& model, RawModel& m) {
  const std::string& file = m.file;
  if (!model.has_graph()) fail(file, "no graph (not an ONNX model?)");
  int64_t opset = 0;
  for (const auto& op : model.opset_import())
    if (op.domain().empty() || op.domain() == "ai.onnx") opset = op.version();
  if (model.ir_version() < 3 || opset < 7)
    fail(file, "IR version " + std::to_string(model.ir_version()) + ", opset " +
                   std::to_string(opset) + ": hspec reads ONNX IR 3+ with the ai.onnx opset 7+");
  const auto& gp = model.graph();
  for (int i = 0; i < gp.initializer_size(); ++i) {
    const auto& tp = gp.initializer(i);
    if (tp.name().empty()) fail(file, "initializer " + std::to_string(i) + " has no name");
    if (m.g.initializers.count(tp.name()))
      fail(file, "initializer '" + tp.name() + "' is defined twice");
    m.g.initializers[tp.name()] = decode_tensor(tp, file, "initializer '" + tp.name() + "'");
  }
  if (gp.sparse_initializer_size() > 0) fail(file, "sparse initializers are not supported");
  std::vector<const onnx::ValueInfoProto*> inputs;
  for (const auto& vi : gp.input())
    if (!m.g.initializers.count(vi.name())) inputs.push_back(&vi);
  if (inputs.size() != 1)
    fail(file, "the graph has " + std::to_string(inputs.size()) +
                   " inputs that are not initializers; hspec needs exactly one (the data)");
  m.g.input = inputs[0]->name();
  read_input(*inputs[0], m);
  if (gp.output_size() != 1)
    fail(file, "the graph has " + std::to_string(gp.output_size()) +
                   " outputs; hspec needs exactly one (the values the loss is applied to)");
  m.g.output = gp.output(0).name();
  for (int i = 0; i < gp.node_size(); ++i) {
    const auto& np = gp.node(i);
    GraphNode n;
    n.op = np.op_type();
    n.name = np.name();
    const std::string what =
        "node '" + (n.name.empty() ? std::to_string(i) : n.name) + "' (" + n.op + ")";
    if (!np.domain().empty() && np.domain() != "ai.onnx")
      fail(file,
           what + " is in operator domain '" + np.domain() + "', which hspec does not support");
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    for (const auto& a : np.attribute()) {
      if (n.attrs.count(a.name())) fail(file, what + " has attribute '" + a.name() + "' twice");
      n.attrs[a.name()] = decode_attribute(a, file, what + " attribute '" + a.name() + "'");
    }
    m.g.nodes.push_back(std::move(n));
  }
}

}  // namespace

bool built_with_onnx() {
  return true;
}

Graph load_onnx(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open the ONNX file");
  onnx::ModelProto model;
  if (!model.ParseFromIstream(&in))
    throw InputError(path +
                     ": not a valid ONNX file (protobuf parse failed: truncated, "
                     "corrupt, or over 2 GiB)");
  RawModel m;
  m.file = path;
  m.g.source = path;
  read_model(model, m);
  onnx_import::check_and_sort(m);
  onnx_import::choose_parameters(m);
  onnx_import::fold_constants(m);
  return std::move(m.g);
}

}  // namespace hspec
