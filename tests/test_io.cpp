// Tests of the file readers and writers: safetensors, IDX (raw and gzip) and datasets.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "hspec/error.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/formats/idx.hpp"
#include "hspec/formats/safetensors.hpp"

namespace hspec {
namespace {

using Bytes = std::vector<unsigned char>;

// A folder per process: ctest -j runs these tests side by side, and several share scratch
// names (gz_scratch.gz, m.idx).
std::string tmp(const std::string& name) {
  const std::string dir = std::string(HSPEC_TEST_TMP) + "/io_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  return dir + "/io_" + name;
}

void write_file(const std::string& path, const Bytes& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

// A safetensors file from a hand-written header and raw data bytes.
std::string raw_st(const std::string& name, const std::string& header, const Bytes& data) {
  Bytes b(8);
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(header.size() >> (8 * i));
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data.begin(), data.end());
  const std::string path = tmp(name);
  write_file(path, b);
  return path;
}

Bytes f32_bytes(const std::vector<float>& v) {
  Bytes b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());  // test host is little-endian
  return b;
}

Bytes u16_bytes(const std::vector<uint16_t>& v) {
  Bytes b;
  for (uint16_t x : v)
    b.insert(b.end(), {static_cast<unsigned char>(x), static_cast<unsigned char>(x >> 8)});
  return b;
}

// Expects an InputError whose message names the file and contains `what`.
void expect_input_error(const std::function<void()>& fn, const std::string& path,
                        const std::string& what) {
  try {
    fn();
    ADD_FAILURE() << "no InputError for " << path << " (expected '" << what << "')";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    const std::string file = std::filesystem::path(path).filename().string();
    EXPECT_NE(msg.find(file), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

void expect_bad_st(const std::string& path, const std::string& what) {
  expect_input_error([&] { SafeTensorsFile f(path); }, path, what);
}

std::string entry(const std::string& dtype, const std::string& shape, int b, int e) {
  return "{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(b) + "," + std::to_string(e) + "]}";
}

TEST(SafetensorsTest, RoundTripsF32F64I64AndMetadata) {
  const std::string path = tmp("roundtrip.safetensors");
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "héllo"}};
  write_safetensors(path,
                    {make_tensor("w", {2, 3}, std::vector<float>{1, -2, 3.5f, 0, 1e-30f, 7}),
                     make_tensor("d", {2}, std::vector<double>{0.1, -1e300}),
                     make_tensor("i", {3}, std::vector<int64_t>{-5, 0, int64_t{1} << 40}),
                     make_tensor("e", {0, 4}, std::vector<float>{})},
                    meta);
  const Bytes raw = read_file(path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t{raw[i]} << (8 * i);
  EXPECT_EQ(n % 8, 0u);  // header padded like the reference writer

  SafeTensorsFile f(path);
  EXPECT_EQ(f.metadata(), meta);
  EXPECT_EQ(f.tensors().size(), 4u);
  EXPECT_EQ(f.info("w").dtype, DType::F32);
  EXPECT_EQ(f.info("w").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f.read_float("w"), (std::vector<float>{1, -2, 3.5f, 0, 1e-30f, 7}));
  EXPECT_EQ(f.read_double("d"), (std::vector<double>{0.1, -1e300}));
  EXPECT_EQ(f.read_int("i"), (std::vector<int64_t>{-5, 0, int64_t{1} << 40}));
  EXPECT_EQ(f.read_double("i"), (std::vector<double>{-5, 0, 1099511627776.0}));
  EXPECT_TRUE(f.read_float("e").empty());
  expect_input_error([&] { f.read_float("d"); }, path, "out of float range");
  expect_input_error([&] { f.read_int("w"); }, path, "expected an integer dtype");
  expect_input_error([&] { f.info("nope"); }, path, "'nope'");
}

TEST(SafetensorsTest, WriterChecksItsArguments) {
  EXPECT_THROW(make_tensor("x", {2, 2}, std::vector<float>{1, 2, 3}), Error);
  EXPECT_THROW(make_tensor("x", {-1}, std::vector<double>{}), Error);
  EXPECT_THROW(write_safetensors(tmp("no_such_dir/x.safetensors"), {}), Error);
  TensorData t = make_tensor("x", {2}, std::vector<float>{1, 2});
  EXPECT_THROW(write_safetensors(tmp("dup.safetensors"), {t, t}), Error);
  t.bytes.pop_back();
  EXPECT_THROW(write_safetensors(tmp("short.safetensors"), {t}), Error);
}

TEST(SafetensorsTest, ReadsF16AndBF16) {
  // F16: 1, -2.5, 65504 (max), 2^-24 (smallest subnormal), 1023 * 2^-24 (largest), -0.
  // BF16: 1, -2.5, 2^-133 (subnormal), 0x7F7F (max, 3.3895e38).
  const Bytes data = [] {
    Bytes b = u16_bytes({0x3C00, 0xC100, 0x7BFF, 0x0001, 0x03FF, 0x8000});
    const Bytes c = u16_bytes({0x3F80, 0xC020, 0x0001, 0x7F7F});
    b.insert(b.end(), c.begin(), c.end());
    return b;
  }();
  const std::string path = raw_st(
      "half.safetensors",
      "{\"h\":" + entry("F16", "[6]", 0, 12) + ",\"b\":" + entry("BF16", "[2,2]", 12, 20) + "}",
      data);
  SafeTensorsFile f(path);
  const std::vector<double> h = f.read_double("h");
  EXPECT_EQ(h, (std::vector<double>{1.0, -2.5, 65504.0, std::ldexp(1.0, -24),
                                    1023 * std::ldexp(1.0, -24), 0.0}));
  EXPECT_TRUE(std::signbit(h[5]));
  EXPECT_EQ(f.read_float("h")[3], std::ldexp(1.0f, -24));
  const std::vector<double> b = f.read_double("b");
  EXPECT_EQ(b[0], 1.0);
  EXPECT_EQ(b[1], -2.5);
  EXPECT_EQ(b[2], std::ldexp(1.0, -133));
  EXPECT_EQ(b[3], std::ldexp(255.0, 120));
  expect_input_error([&] { f.read_int("h"); }, path, "F16");
}

TEST(SafetensorsTest, ReadsIntegerDtypes) {
  Bytes data = {0xFE, 0xFF, 0xFF, 0xFF, 7, 0, 0, 0};  // I32 -2, 7
  data.insert(data.end(), {0x00, 0x80, 0xFF, 0x7F});  // I16 -32768, 32767
  data.insert(data.end(), {0x80, 0xFF, 0x01, 0x00});  // I8 -128, -1 ; U8 1, 0
  data.insert(data.end(), {0x00, 0x01});              // BOOL
  const std::string path =
      raw_st("ints.safetensors",
             "{\"a\":" + entry("I32", "[2]", 0, 8) + ",\"b\":" + entry("I16", "[2]", 8, 12) +
                 ",\"c\":" + entry("I8", "[2]", 12, 14) + ",\"d\":" + entry("U8", "[2]", 14, 16) +
                 ",\"e\":" + entry("BOOL", "[2]", 16, 18) + "}",
             data);
  SafeTensorsFile f(path);
  EXPECT_EQ(f.read_int("a"), (std::vector<int64_t>{-2, 7}));
  EXPECT_EQ(f.read_int("b"), (std::vector<int64_t>{-32768, 32767}));
  EXPECT_EQ(f.read_int("c"), (std::vector<int64_t>{-128, -1}));
  EXPECT_EQ(f.read_int("d"), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(f.read_int("e"), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(f.read_float("a"), (std::vector<float>{-2, 7}));
}

TEST(SafetensorsTest, ReadsAFileLikePyTorchWrites) {
  Bytes data = f32_bytes({1, 2, 3, 4, 5, 6});
  const Bytes bias = f32_bytes({0.5f, -0.5f});
  data.insert(data.end(), bias.begin(), bias.end());
  std::string header =
      "{\"__metadata__\":{\"format\":\"pt\"},\"0.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],"
      "\"data_offsets\":[0,24]},\"0.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
      "[24,32]}}";
  header.append((8 - header.size() % 8) % 8, ' ');
  SafeTensorsFile f(raw_st("torch.safetensors", header, data));
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.info("0.weight").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f.info("0.bias").begin, 24u);
  EXPECT_EQ(f.read_float("0.weight"), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(f.read_double("0.bias"), (std::vector<double>{0.5, -0.5}));
}

TEST(SafetensorsTest, RejectsTruncatedFiles) {
  const std::string tiny = tmp("tiny.safetensors");
  write_file(tiny, {1, 0, 0});
  expect_bad_st(tiny, "too short");
  const std::string hdr = "{\"a\":" + entry("F32", "[2]", 0, 8) + "}";
  const std::string cut = raw_st("hdrcut.safetensors", hdr, {});
  std::filesystem::resize_file(cut, 8 + hdr.size() - 5);
  expect_bad_st(cut, "exceeds");
  expect_bad_st(raw_st("datacut.safetensors", hdr, f32_bytes({1})), "beyond the 4-byte data");
  expect_bad_st(tmp("does_not_exist.safetensors"), "cannot open");
}

TEST(SafetensorsTest, RejectsHugeHeaderLengths) {
  const std::string path = tmp("huge.safetensors");
  write_file(path, {0, 0, 0, 0, 0, 0, 0, 0x80, '{', '}'});
  expect_bad_st(path, "exceeds");
  // Sparse file: the length fits the file but not the 100 MB cap.
  write_file(path, {0x00, 0xA3, 0xE1, 0x11, 0, 0, 0, 0});  // 300,000,000
  std::filesystem::resize_file(path, 300'000'100);
  expect_bad_st(path, "100 MB");
  std::filesystem::remove(path);
}

TEST(SafetensorsTest, RejectsMalformedHeaders) {
  const Bytes d16 = f32_bytes({1, 2, 3, 4});
  struct Case {
    std::string header, what;
  };
  const std::vector<Case> cases = {
      {"{not json", "invalid JSON"},
      {"[1,2]", "not an object"},
      {"{\"a\":" + entry("F8", "[4]", 0, 16) + "}", "unknown dtype 'F8'"},
      {"{\"a\":" + entry("F32", "[-1,4]", 0, 16) + "}", "negative"},
      {"{\"a\":" + entry("F32", "[2.5]", 0, 16) + "}", "not an integer"},
      {"{\"a\":" + entry("F32", "[4294967296,4294967296]", 0, 16) + "}", "overflow"},
      {"{\"a\":" + entry("F64", "[2305843009213693952]", 0, 16) + "}", "overflow"},
      {"{\"a\":" + entry("F32", "[4]", 0, 1000) + "}", "beyond the 16-byte data section"},
      {"{\"a\":" + entry("F32", "[0]", 8, 4) + "}", "ends before it begins"},
      {"{\"a\":" + entry("F32", "[4,7]", 0, 16) + "}", "needs 112 bytes"},
      {"{\"a\":" + entry("F32", "[2]", 0, 8) + ",\"b\":" + entry("F32", "[2]", 4, 12) + "}",
       "overlaps"},
      {"{\"a\":" + entry("F32", "[2]", 0, 8) + ",\"a\":" + entry("F32", "[2]", 8, 16) + "}",
       "duplicate key 'a'"},
      {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
       "duplicate key 'dtype'"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4]}}", "missing field 'data_offsets'"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16],\"x\":1}}",
       "unexpected field 'x'"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0]}}", "data_offsets"},
      {"{\"a\":{\"dtype\":7,\"shape\":[4],\"data_offsets\":[0,16]}}", "dtype is not a string"},
      {"{\"__metadata__\":{\"k\":1}}", "not a string"},
      {"{\"__metadata__\":[]}", "__metadata__"},
      {"{\"a\":[]}", "not a JSON object"},
      {std::string(100000, '[') + std::string(100000, ']'), "nests deeper"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].header.substr(0, 120));
    expect_bad_st(raw_st("bad" + std::to_string(i) + ".safetensors", cases[i].header, d16),
                  cases[i].what);
  }
}

TEST(SafetensorsTest, RejectsNonFiniteValues) {
  const float nan = std::nanf(""), inf = INFINITY;
  const std::string path = raw_st(
      "nan.safetensors",
      "{\"0.weight\":" + entry("F32", "[3]", 0, 12) + ",\"x\":" + entry("F16", "[2]", 12, 16) + "}",
      [&] {
        Bytes b = f32_bytes({1, 2, nan});
        const Bytes h = u16_bytes({0x3C00, 0xFC00});  // 1, -Inf
        b.insert(b.end(), h.begin(), h.end());
        return b;
      }());
  SafeTensorsFile f(path);
  expect_input_error([&] { f.read_double("0.weight"); }, path,
                     "tensor '0.weight' holds NaN at index 2");
  expect_input_error([&] { f.read_float("0.weight"); }, path, "NaN at index 2");
  expect_input_error([&] { f.read_float("x"); }, path, "tensor 'x' holds -Inf at index 1");
  write_safetensors(tmp("inf.safetensors"), {make_tensor("t", {1}, std::vector<double>{inf})});
  expect_input_error([&] { SafeTensorsFile(tmp("inf.safetensors")).read_double("t"); },
                     tmp("inf.safetensors"), "holds Inf at index 0");
}

// ---- IDX ----------------------------------------------------------------------------

void expect_bad_idx(const std::string& path, const std::string& what) {
  expect_input_error([&] { read_idx(path); }, path, what);
}

Bytes gzip_bytes(const Bytes& b) {
  const std::string path = tmp("gz_scratch.gz");
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, b.data(), static_cast<unsigned>(b.size()));
  gzclose(f);
  return read_file(path);
}

TEST(IdxTest, RoundTripsRawAndGzip) {
  const IdxArray u8{{2, 3}, {0, 1, 127, 128, 254, 255}, 0x08};
  const IdxArray f32{{3, 1, 1, 1}, {1.5, -2.25, 1e-20}, 0x0D};
  const IdxArray i16{{2}, {-32768, 32767}, 0x0B};
  const IdxArray i32{{2}, {-2147483648.0, 7}, 0x0C};
  const IdxArray i8{{1}, {-128}, 0x09};
  const IdxArray f64{{2}, {0.1, -1e300}, 0x0E};
  for (const IdxArray& a : {u8, f32, i16, i32, i8, f64}) {
    for (const std::string ext : {".idx", ".idx.gz"}) {
      const std::string path = tmp("rt" + std::to_string(a.type_code) + ext);
      write_idx(path, a);
      const IdxArray b = read_idx(path);
      EXPECT_EQ(b.type_code, a.type_code);
      EXPECT_EQ(b.shape, a.shape);
      std::vector<double> want = a.values;
      if (a.type_code == 0x0D) {
        for (double& v : want) v = static_cast<float>(v);
      }
      EXPECT_EQ(b.values, want);
      const Bytes raw = read_file(path);
      EXPECT_EQ(raw[0] == 0x1f && raw[1] == 0x8b, ext == ".idx.gz");
    }
  }
  // The raw layout is big-endian.
  EXPECT_EQ(read_file(tmp("rt8.idx")),
            (Bytes{0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 127, 128, 254, 255}));
  EXPECT_THROW(write_idx(tmp("bad.idx"), IdxArray{{2}, {1, 256}, 0x08}), Error);
  EXPECT_THROW(write_idx(tmp("bad.idx"), IdxArray{{3}, {1, 2}, 0x08}), Error);
}

TEST(IdxTest, RejectsTruncatedAndTrailingData) {
  const Bytes good = {0, 0, 8, 1, 0, 0, 0, 6, 1, 2, 3, 4, 5, 6};
  const std::string path = tmp("t.idx");
  write_file(path, Bytes(good.begin(), good.end() - 1));
  expect_bad_idx(path, "truncated: header promises 6 elements, file holds 5");
  Bytes extra = good;
  extra.push_back(9);
  write_file(path, extra);
  expect_bad_idx(path, "trailing bytes");
  write_file(tmp("t.idx.gz"), gzip_bytes(extra));
  expect_bad_idx(tmp("t.idx.gz"), "trailing bytes");
  write_file(path, {0, 0, 0x0D, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0});  // 1.5 f32s in 6 bytes
  expect_bad_idx(path, "file holds 1");
  write_file(path, {0, 0, 8});
  expect_bad_idx(path, "truncated header");
  write_file(path, {0, 0, 8, 3, 0, 0, 0, 1, 0, 0});
  expect_bad_idx(path, "truncated header");
}

TEST(IdxTest, RejectsLyingHeadersWithoutAllocating) {
  const std::string path = tmp("lie.idx");
  write_file(path, {0, 0, 8, 2, 0, 0x0F, 0x42, 0x40, 0, 0, 0x00, 0x64, 1, 2, 3});
  expect_bad_idx(path, "header promises 100000000 elements, file holds 3");
  write_file(path, {0, 0, 8, 2, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1});
  expect_bad_idx(path, "above the limit");
  write_file(path, {0,    0,    8,    4,    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF});
  expect_bad_idx(path, "above the limit");
  // A gzip bomb: the header promises 4 bytes, the stream inflates to 64 MB.
  Bytes bomb = {0, 0, 8, 1, 0, 0, 0, 4};
  bomb.resize(64 << 20, 0);
  write_file(tmp("bomb.idx.gz"), gzip_bytes(bomb));
  expect_bad_idx(tmp("bomb.idx.gz"), "trailing bytes");
}

TEST(IdxTest, RejectsBadMagicTypeAndRank) {
  const std::string path = tmp("m.idx");
  write_file(path, {1, 0, 8, 1, 0, 0, 0, 1, 5});
  expect_bad_idx(path, "not an IDX file");
  write_file(path, {0, 0, 0x0A, 1, 0, 0, 0, 1, 5});
  expect_bad_idx(path, "unknown IDX type code 0x0A");
  write_file(path, {0, 0, 8, 0, 5});
  expect_bad_idx(path, "rank 0");
  write_file(path, {0, 0, 8, 5, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 5});
  expect_bad_idx(path, "rank 5");
  expect_bad_idx(tmp("missing.idx"), "cannot open");
  expect_bad_idx(HSPEC_TEST_TMP, "not a regular file");
}

TEST(IdxTest, RejectsCorruptGzip) {
  const std::string path = tmp("corrupt.idx.gz");
  Bytes b = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};  // valid gzip member header
  for (int i = 0; i < 64; ++i) b.push_back(static_cast<unsigned char>(0xA5 ^ (i * 37)));
  write_file(path, b);
  expect_bad_idx(path, "gzip");
  Bytes body = {0, 0, 8, 1, 0, 0, 0x10, 0};
  body.resize(8 + 4096, 7);
  const Bytes gz = gzip_bytes(body);
  write_file(path, Bytes(gz.begin(), gz.begin() + gz.size() / 2));
  expect_bad_idx(path, "gzip stream is truncated");
  Bytes bad_crc = gz;
  bad_crc[bad_crc.size() - 6] ^= 0xFF;
  write_file(path, bad_crc);
  expect_bad_idx(path, "corrupt gzip");
}

// ---- datasets -----------------------------------------------------------------------

void expect_bad_ds(const std::string& data, const std::string& labels, const std::string& file,
                   const std::string& what) {
  expect_input_error([&] { load_dataset(data, labels); }, file, what);
}

TEST(DatasetTest, LoadsSafetensorsWithLabelsAndTargets) {
  const std::string path = tmp("ds.safetensors");
  std::vector<float> x(12);
  for (int i = 0; i < 12; ++i) x[i] = 0.5f * i;
  write_safetensors(path, {make_tensor("inputs", {3, 2, 2}, x),
                           make_tensor("labels", {3}, std::vector<int64_t>{2, 0, 1}),
                           make_tensor("targets", {3, 2}, std::vector<double>{1, 2, 3, 4, 5, 6})});
  Dataset ds = load_dataset(path);
  EXPECT_EQ(ds.n, 3);
  EXPECT_EQ(ds.d, 4);
  EXPECT_EQ(ds.inputs, x);
  EXPECT_EQ(ds.labels, (std::vector<int64_t>{2, 0, 1}));
  EXPECT_EQ(ds.target_dim, 2);
  EXPECT_EQ(ds.targets, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_NE(ds.source.find("io_ds.safetensors"), std::string::npos);
  truncate_dataset(ds, 2);
  EXPECT_EQ(ds.n, 2);
  EXPECT_EQ(ds.inputs, std::vector<float>(x.begin(), x.begin() + 8));
  EXPECT_EQ(ds.labels, (std::vector<int64_t>{2, 0}));
  EXPECT_EQ(ds.targets, (std::vector<float>{1, 2, 3, 4}));
  truncate_dataset(ds, 0);  // no-op
  EXPECT_EQ(ds.n, 2);

  write_safetensors(path, {make_tensor("inputs", {3}, std::vector<float>{1, 2, 3}),
                           make_tensor("targets", {3}, std::vector<float>{4, 5, 6})});
  ds = load_dataset(path);
  EXPECT_EQ(ds.d, 1);
  EXPECT_EQ(ds.target_dim, 1);
  EXPECT_TRUE(ds.labels.empty());
  // Labels from a separate IDX file.
  write_idx(tmp("ds_labels.idx"), IdxArray{{3}, {0, 1, 1}, 0x08});
  ds = load_dataset(path, tmp("ds_labels.idx"));
  EXPECT_EQ(ds.labels, (std::vector<int64_t>{0, 1, 1}));
  EXPECT_NE(ds.source.find("io_ds_labels.idx"), std::string::npos);
}

TEST(DatasetTest, LoadsIdxImagesAndLabels) {
  write_idx(tmp("img.idx.gz"), IdxArray{{2, 2, 2}, {0, 255, 51, 102, 1, 2, 3, 4}, 0x08});
  write_idx(tmp("lab.idx.gz"), IdxArray{{2}, {7, 3}, 0x08});
  Dataset ds = load_dataset(tmp("img.idx.gz"), tmp("lab.idx.gz"));
  EXPECT_EQ(ds.n, 2);
  EXPECT_EQ(ds.d, 4);
  EXPECT_FLOAT_EQ(ds.inputs[1], 1.0f);
  EXPECT_FLOAT_EQ(ds.inputs[2], 0.2f);
  EXPECT_FLOAT_EQ(ds.inputs[7], 4.0f / 255);
  EXPECT_EQ(ds.labels, (std::vector<int64_t>{7, 3}));
  write_idx(tmp("imgf.idx"), IdxArray{{2}, {-1.5, 300}, 0x0D});
  ds = load_dataset(tmp("imgf.idx"));
  EXPECT_EQ(ds.inputs, (std::vector<float>{-1.5f, 300.0f}));  // float images are not scaled
  EXPECT_TRUE(ds.labels.empty());
}

TEST(DatasetTest, RejectsBadData) {
  const std::string st = tmp("dsbad.safetensors");
  write_safetensors(st, {make_tensor("inputs", {2, 2}, std::vector<float>{1, 2, 3, 4}),
                         make_tensor("labels", {3}, std::vector<int64_t>{0, 1, 2})});
  expect_bad_ds(st, "", st, "holds 3 labels for 2 samples");
  write_safetensors(st, {make_tensor("inputs", {2, 2}, std::vector<float>{1, 2, 3, 4}),
                         make_tensor("labels", {2}, std::vector<int64_t>{0, -1})});
  expect_bad_ds(st, "", st, "label -1 at index 1 is negative");
  write_safetensors(st, {make_tensor("inputs", {2, 2}, std::vector<float>{1, 2, 3, 4}),
                         make_tensor("labels", {2}, std::vector<float>{0, 1})});
  expect_bad_ds(st, "", st, "expected an integer dtype");
  write_safetensors(st, {make_tensor("inputs", {0, 4}, std::vector<float>{})});
  expect_bad_ds(st, "", st, "holds no samples");
  write_safetensors(st, {make_tensor("inputs", {2, 0}, std::vector<float>{})});
  expect_bad_ds(st, "", st, "zero features");
  write_safetensors(st, {make_tensor("x", {2}, std::vector<float>{1, 2})});
  expect_bad_ds(st, "", st, "holds no tensor 'inputs'");
  write_safetensors(st, {make_tensor("inputs", {2}, std::vector<float>{1, NAN})});
  expect_bad_ds(st, "", st, "tensor 'inputs' holds NaN at index 1");
  write_safetensors(st, {make_tensor("inputs", {2}, std::vector<float>{1, 2}),
                         make_tensor("targets", {2, 1}, std::vector<float>{INFINITY, 2})});
  expect_bad_ds(st, "", st, "tensor 'targets' holds Inf at index 0");
  write_safetensors(st, {make_tensor("inputs", {2}, std::vector<float>{1, 2}),
                         make_tensor("targets", {3}, std::vector<float>{1, 2, 3})});
  expect_bad_ds(st, "", st, "'targets' must have shape");

  const std::string img = tmp("dsimg.idx"), lab = tmp("dslab.idx");
  write_idx(img, IdxArray{{3, 2}, {1, 2, 3, 4, 5, 6}, 0x08});
  write_idx(lab, IdxArray{{2}, {1, 2}, 0x08});
  expect_bad_ds(img, lab, lab, "holds 2 labels for 3 samples");
  write_idx(lab, IdxArray{{3}, {1, -2, 0}, 0x09});
  expect_bad_ds(img, lab, lab, "label -2 at index 1 is negative");
  write_idx(lab, IdxArray{{3}, {1, 2, 0}, 0x0D});
  expect_bad_ds(img, lab, lab, "integer IDX type");
  write_idx(lab, IdxArray{{3, 1}, {1, 2, 0}, 0x08});
  expect_bad_ds(img, lab, lab, "rank 1");
  write_idx(img, IdxArray{{0, 2}, {}, 0x08});
  expect_bad_ds(img, "", img, "holds no samples");
  write_idx(img, IdxArray{{2}, {1, NAN}, 0x0E});
  expect_bad_ds(img, "", img, "index 1");
  expect_bad_ds(tmp("nothing.idx"), "", "io_nothing.idx", "cannot open");
  write_file(img, {'h', 'e', 'l', 'l', 'o'});
  expect_bad_ds(img, "", img, "too short");
  write_file(tmp("notidx.gz"), gzip_bytes({'h', 'e', 'l', 'l', 'o'}));
  expect_bad_ds(tmp("notidx.gz"), "", "io_notidx.gz", "not an IDX file");
}

}  // namespace
}  // namespace hspec
