// Loading a Dataset from safetensors or IDX files, with the format sniffed from the bytes.
#include "hspec/formats/dataset.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "hspec/error.hpp"
#include "hspec/formats/idx.hpp"
#include "hspec/formats/safetensors.hpp"

namespace hspec {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw InputError(path + ": " + what);
}

bool is_int_idx(uint8_t code) {
  return code == 0x08 || code == 0x09 || code == 0x0B || code == 0x0C;
}

// True for IDX (raw or gzip), false for anything else, which is then read as safetensors
// and rejected there if it is not one either.
bool looks_like_idx(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) fail(path, "cannot open: " + ec.message());
  if (!fs::is_regular_file(st)) fail(path, "not a regular file");
  unsigned char magic[2] = {0, 0};
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, std::string("cannot open for reading: ") + std::strerror(errno));
    in.read(reinterpret_cast<char*>(magic), 2);
  }
  const bool gzip = magic[0] == 0x1f && magic[1] == 0x8b;
  unsigned char head[4] = {0xff, 0xff, 0xff, 0xff};
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail(path, std::string("cannot open for reading: ") + std::strerror(errno));
  const int got = gzread(f, head, 4);
  int err = Z_OK;
  std::string msg = got < 4 ? gzerror(f, &err) : "";
  gzclose(f);
  // zlib prefixes its messages with the path; fail() adds it once.
  if (msg.compare(0, path.size() + 2, path + ": ") == 0) msg.erase(0, path.size() + 2);
  if (gzip && err != Z_OK) fail(path, "corrupt gzip stream (" + msg + ")");
  const bool idx = got == 4 && head[0] == 0 && head[1] == 0 &&
                   (is_int_idx(head[2]) || head[2] == 0x0D || head[2] == 0x0E) && head[3] >= 1 &&
                   head[3] <= 4;
  if (gzip && !idx) fail(path, "gzip-compressed but not an IDX file");
  return idx;
}

// Splits [N, ...] into N samples of d features.
void sample_shape(const std::string& path, const std::string& what,
                  const std::vector<int64_t>& shape, Dataset& ds) {
  if (shape.empty()) fail(path, what + " is a scalar, expected shape [N, ...]");
  ds.n = shape[0];
  if (ds.n == 0) fail(path, "holds no samples (" + what + " has N = 0)");
  // With no zero dim the readers already proved the whole product fits in int64.
  for (size_t i = 1; i < shape.size(); ++i) {
    if (shape[i] == 0) fail(path, what + " has zero features per sample");
  }
  ds.d = 1;
  for (size_t i = 1; i < shape.size(); ++i) ds.d *= shape[i];
}

std::vector<int64_t> load_labels(const std::string& path, int64_t n, bool position_labels,
                                 int64_t& label_dim) {
  std::vector<int64_t> labels;
  label_dim = 0;
  if (looks_like_idx(path)) {
    IdxArray a = read_idx(path);
    if (a.shape.size() != 1) {
      fail(path, "labels must be rank 1, got rank " + std::to_string(a.shape.size()));
    }
    if (!is_int_idx(a.type_code)) fail(path, "labels must have an integer IDX type");
    labels.assign(a.values.begin(), a.values.end());
  } else {
    SafeTensorsFile f(path);
    const TensorInfo& t = f.info("labels");
    if (position_labels && t.shape.size() == 2) {  // per-position labels [N, T]
      if (t.shape[0] != n || t.shape[1] < 1)
        fail(path, "tensor 'labels' has shape [" + std::to_string(t.shape[0]) + ", " +
                       std::to_string(t.shape[1]) + "], expected [" + std::to_string(n) +
                       ", T] with T >= 1");
      label_dim = t.shape[1];
    } else if (t.shape.size() != 1) {
      fail(path, "tensor 'labels' must be rank 1" + std::string(position_labels ? " or 2" : "") +
                     ", got rank " + std::to_string(t.shape.size()));
    }
    labels = f.read_int("labels");
  }
  const int64_t per = std::max<int64_t>(label_dim, 1);
  if (static_cast<int64_t>(labels.size()) != n * per) {
    fail(path, "holds " + std::to_string(labels.size()) + " labels for " + std::to_string(n) +
                   " samples");
  }
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0) {
      fail(path, "label " + std::to_string(labels[i]) + " at index " + std::to_string(i) +
                     " is negative");
    }
  }
  return labels;
}

bool is_integer_dtype(DType t) {
  return t == DType::I64 || t == DType::I32 || t == DType::I16 || t == DType::I8 || t == DType::U8;
}

void load_safetensors(const std::string& path, bool want_labels, const DatasetOptions& opt,
                      Dataset& ds) {
  SafeTensorsFile f(path);
  if (!f.has("inputs")) fail(path, "holds no tensor 'inputs'");
  const TensorInfo& in = f.info("inputs");
  sample_shape(path, "tensor 'inputs'", in.shape, ds);
  if (opt.token_ids && is_integer_dtype(in.dtype))
    ds.ids = f.read_int("inputs");  // token ids stay integers
  else
    ds.inputs = f.read_float("inputs");
  if (want_labels && f.has("labels"))
    ds.labels = load_labels(path, ds.n, opt.position_labels, ds.label_dim);
  if (f.has("targets")) {
    const std::vector<int64_t>& s = f.info("targets").shape;
    if (s.empty() || s.size() > 2 || s[0] != ds.n) {
      fail(path, "tensor 'targets' must have shape [" + std::to_string(ds.n) + "] or [" +
                     std::to_string(ds.n) + ", out]");
    }
    ds.target_dim = s.size() == 2 ? s[1] : 1;
    if (ds.target_dim == 0) fail(path, "tensor 'targets' has zero columns");
    ds.targets = f.read_float("targets");
  }
}

void load_idx(const std::string& path, Dataset& ds) {
  IdxArray a = read_idx(path);
  sample_shape(path, "images", a.shape, ds);
  const double scale = a.type_code == 0x08 ? 1.0 / 255.0 : 1.0;
  ds.inputs.resize(a.values.size());
  for (size_t i = 0; i < a.values.size(); ++i) {
    const double v = a.values[i] * scale;
    if (!std::isfinite(static_cast<float>(v))) {
      const char* what = std::isnan(v)   ? "NaN"
                         : std::isinf(v) ? "Inf"
                                         : "a value beyond float range";
      fail(path, std::string("images hold ") + what + " at index " + std::to_string(i));
    }
    ds.inputs[i] = static_cast<float>(v);
  }
}

}  // namespace

Dataset load_dataset(const std::string& data_path, const std::string& labels_path,
                     const DatasetOptions& opt) {
  Dataset ds;
  if (looks_like_idx(data_path)) {
    load_idx(data_path, ds);
  } else {
    load_safetensors(data_path, labels_path.empty(), opt, ds);
  }
  if (!labels_path.empty())
    ds.labels = load_labels(labels_path, ds.n, opt.position_labels, ds.label_dim);
  ds.source = labels_path.empty() ? data_path : data_path + " + " + labels_path;
  return ds;
}

void truncate_dataset(Dataset& ds, int64_t samples) {
  if (samples <= 0 || samples >= ds.n) return;
  ds.n = samples;
  if (!ds.inputs.empty()) ds.inputs.resize(static_cast<size_t>(samples * ds.d));
  if (!ds.ids.empty()) ds.ids.resize(static_cast<size_t>(samples * ds.d));
  if (!ds.labels.empty())
    ds.labels.resize(static_cast<size_t>(samples * std::max<int64_t>(ds.label_dim, 1)));
  if (!ds.targets.empty()) ds.targets.resize(static_cast<size_t>(samples * ds.target_dim));
}

}  // namespace hspec
