// Hostile inputs end to end: a corpus of malformed checkpoints and data files (truncated,
// lying headers, bad offsets, NaN/Inf, shape and label mismatches, corrupt gzip, missing
// files), generated here, each run through the hspec binary: exit 3, one line on stderr
// naming the file, no crash and no hang.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli_test_util.hpp"
#include "hspec/formats/idx.hpp"
#include "hspec/formats/safetensors.hpp"
#include "hspec/mlp/workloads.hpp"

namespace hspec {
namespace {

using Bytes = std::vector<unsigned char>;

std::string tmp(const std::string& name) {
  return testutil::scratch("hostile_", name);
}

using testutil::CliResult;

// Under a shorter timeout: every hostile input must be refused quickly.
CliResult run_cli(const std::string& args, const std::string& tag) {
  return testutil::run_cli(args, tmp(tag + ".stderr"), 120);
}

void write_file(const std::string& path, const Bytes& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void write_gzip(const std::string& path, const Bytes& b) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, b.data(), static_cast<unsigned>(b.size())), static_cast<int>(b.size()));
  gzclose(f);
}

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

// A safetensors file from a hand-written header and data bytes; the length field is given
// separately so it can lie.
Bytes st_bytes(const std::string& header, const Bytes& data, uint64_t len) {
  Bytes b(8 + header.size() + data.size());
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(len >> (8 * i));
  std::copy(header.begin(), header.end(), b.begin() + 8);
  std::copy(data.begin(), data.end(), b.begin() + 8 + static_cast<std::ptrdiff_t>(header.size()));
  return b;
}
Bytes st_bytes(const std::string& header, const Bytes& data) {
  return st_bytes(header, data, header.size());
}

std::string entry(const std::string& dtype, const std::string& shape, uint64_t b, uint64_t e) {
  return "{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(b) + "," + std::to_string(e) + "]}";
}

Bytes f32_bytes(const std::vector<float>& v) {
  Bytes b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());  // the test host is little-endian
  return b;
}

Bytes idx_bytes(uint8_t code, const std::vector<uint32_t>& dims, const Bytes& body) {
  Bytes b = {0, 0, code, static_cast<unsigned char>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(d >> s));
  b.insert(b.end(), body.begin(), body.end());
  return b;
}

Bytes be_f32(const std::vector<float>& v) {
  Bytes b;
  for (float x : v) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(u >> s));
  }
  return b;
}

// The good files every case starts from: a 4-3-2 tanh MLP, its data as safetensors, and
// the same data as IDX images (8 x 2 x 2 u8) plus IDX labels.
struct Good {
  std::string model = tmp("model.safetensors"), data = tmp("data.safetensors");
  std::string images = tmp("images.idx"), labels = tmp("labels.idx");
  Good() {
    const Model teacher = random_mlp({4, 3, 2}, Activation::Tanh, 1);
    const Dataset ds = teacher_dataset(teacher, 8, 2);
    save_model(model, random_mlp({4, 3, 2}, Activation::Tanh, 3), Loss::CE);
    write_safetensors(data, {make_tensor("inputs", {ds.n, ds.d}, ds.inputs),
                             make_tensor("labels", {ds.n}, ds.labels)});
    IdxArray img{{8, 2, 2}, std::vector<double>(32), 0x08};
    for (size_t i = 0; i < img.values.size(); ++i) img.values[i] = double((i * 37) % 256);
    write_idx(images, img);
    write_idx(labels, IdxArray{{8}, {0, 1, 1, 0, 1, 0, 0, 1}, 0x08});
  }
};

struct Case {
  std::string name;  // also the file name, so the message can be checked to name it
  Bytes bytes;
  bool gzip = false;
  enum Role { Model, Data, Images, Labels } role = Model;
  std::string needle;  // expected in the message
};

// Runs one case: the hostile file in its role, the good files elsewhere.
void expect_exit3(const Good& g, const std::string& path, Case::Role role,
                  const std::string& needle, const std::string& tag) {
  std::string args;
  switch (role) {
    case Case::Model:
      args = "--model " + path + " --data " + g.data;
      break;
    case Case::Data:
      args = "--model " + g.model + " --data " + path;
      break;
    case Case::Images:
      args = "--model " + g.model + " --data " + path + " --labels " + g.labels;
      break;
    case Case::Labels:
      args = "--model " + g.model + " --data " + g.images + " --labels " + path;
      break;
  }
  SCOPED_TRACE(tag + ": " + args);
  const CliResult r = run_cli("analyze " + args + " --json -", tag);
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_EQ(r.err.rfind("hspec: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;  // one line
  EXPECT_NE(r.err.find(std::filesystem::path(path).filename().string()), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

void run_corpus(const Good& g, const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    const std::string path = tmp(c.name);
    if (c.gzip)
      write_gzip(path, c.bytes);
    else
      write_file(path, c.bytes);
    expect_exit3(g, path, c.role, c.needle, c.name);
  }
}

TEST(HostileCheckpoint, EachMalformedFileExitsThreeWithOneLine) {
  Good g;
  const Bytes good = read_file(g.model);
  const Bytes d8 = f32_bytes({1, 2});
  const std::string w = "\"0.weight\":";
  const float nan = std::nanf(""), inf = INFINITY;
  const std::vector<Case> cases = {
      {"truncated.safetensors", Bytes(good.begin(), good.end() - 9), false, Case::Model, "beyond"},
      {"short.safetensors", {1, 0, 0}, false, Case::Model, "too short"},
      {"empty.safetensors", {}, false, Case::Model, "too short"},
      {"hdr_beyond.safetensors", st_bytes("{}", {}, 1000), false, Case::Model, "exceeds"},
      {"hdr_huge.safetensors", st_bytes("{}", {}, ~uint64_t{0}), false, Case::Model, "exceeds"},
      {"bad_json.safetensors", st_bytes("{\"0.weight\":{", {}), false, Case::Model, "invalid JSON"},
      {"not_object.safetensors", st_bytes("[]", {}), false, Case::Model, "not an object"},
      {"dtype.safetensors", st_bytes("{" + w + entry("F8_E4M3", "[1,2]", 0, 8) + "}", d8), false,
       Case::Model, "unknown dtype"},
      {"negative.safetensors", st_bytes("{" + w + entry("F32", "[-1,2]", 0, 8) + "}", d8), false,
       Case::Model, "negative"},
      {"overflow.safetensors",
       st_bytes("{" + w + entry("F32", "[4294967296,4294967296]", 0, 8) + "}", d8), false,
       Case::Model, "overflow"},
      {"offsets.safetensors", st_bytes("{" + w + entry("F32", "[1,2]", 0, 800) + "}", d8), false,
       Case::Model, "beyond"},
      {"offsets_huge.safetensors",
       st_bytes(
           "{" + w + entry("F32", "[1,2]", 18446744073709551607ull, 18446744073709551615ull) + "}",
           d8),
       false, Case::Model, "beyond"},
      {"backwards.safetensors", st_bytes("{" + w + entry("F32", "[0]", 8, 0) + "}", d8), false,
       Case::Model, "ends before"},
      {"overlap.safetensors",
       st_bytes(
           "{" + w + entry("F32", "[1,2]", 0, 8) + ",\"0.bias\":" + entry("F32", "[1]", 4, 8) + "}",
           d8),
       false, Case::Model, "overlaps"},
      {"gap.safetensors",
       st_bytes("{" + w + entry("F32", "[1,2]", 4, 12) + "}", f32_bytes({1, 2, 3})), false,
       Case::Model, "not contiguous"},
      {"trailing.safetensors",
       st_bytes("{" + w + entry("F32", "[1,2]", 0, 8) + "}", f32_bytes({1, 2, 3})), false,
       Case::Model, "trailing bytes"},
      {"length.safetensors", st_bytes("{" + w + entry("F32", "[1,3]", 0, 8) + "}", d8), false,
       Case::Model, "needs 12 bytes"},
      {"duplicate.safetensors",
       st_bytes("{" + w + entry("F32", "[1,1]", 0, 4) + "," + w + entry("F32", "[1,1]", 4, 8) + "}",
                d8),
       false, Case::Model, "duplicate"},
      {"nan.safetensors",
       st_bytes("{" + w + entry("F32", "[1,2]", 0, 8) + "}", f32_bytes({1, nan})), false,
       Case::Model, "NaN at index 1"},
      {"inf_f16.safetensors",
       st_bytes("{" + w + entry("F16", "[1,2]", 0, 4) + "}", {0, 0, 0, 0x7C}), false, Case::Model,
       "Inf at index 1"},
      {"inf_f32.safetensors",
       st_bytes("{" + w + entry("F32", "[1,2]", 0, 8) + "}", f32_bytes({-inf, 1})), false,
       Case::Model, "-Inf at index 0"},
      {"fp32_range.safetensors",
       st_bytes("{" + w + entry("F64", "[2,4]", 0, 64) + "}",
                [] {
                  Bytes b(64, 0);
                  const double big = 1e300;
                  std::memcpy(b.data() + 8, &big, 8);
                  return b;
                }()),
       false, Case::Model, "beyond fp32 range"},
      {"chain.safetensors",
       st_bytes("{" + w + entry("F32", "[2,1]", 0, 8) +
                    ",\"1.weight\":" + entry("F32", "[1,3]", 8, 20) + "}",
                f32_bytes({1, 2, 3, 4, 5})),
       false, Case::Model, "inputs"},
      {"no_layers.safetensors", st_bytes("{\"__metadata__\":{\"a\":\"b\"}}", {}), false,
       Case::Model, "no Linear layers"},
      {"deep.safetensors", st_bytes(std::string(5000, '[') + std::string(5000, ']'), {}), false,
       Case::Model, "nests deeper"},
  };
  run_corpus(g, cases);
  // Not a file at all, or not a regular one.
  expect_exit3(g, tmp("missing.safetensors"), Case::Model, "cannot open", "missing");
  std::filesystem::create_directories(tmp("dir.safetensors"));
  expect_exit3(g, tmp("dir.safetensors"), Case::Model, "not a regular file", "dir");
}

TEST(HostileData, EachMalformedFileExitsThreeWithOneLine) {
  Good g;
  const float nan = std::nanf(""), inf = INFINITY;
  const std::string in = "\"inputs\":", lab = ",\"labels\":";
  auto st_data = [&](const std::vector<float>& x, const std::string& label_entry,
                     const Bytes& label_bytes) {
    Bytes data = f32_bytes(x);
    data.insert(data.end(), label_bytes.begin(), label_bytes.end());
    return st_bytes("{" + in + entry("F32", "[2,4]", 0, 32) + lab + label_entry + "}", data);
  };
  const std::vector<float> x8 = {0, 1, 2, 3, 4, 5, 6, 7};
  const Bytes i64_01 = {0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
  const Bytes i64_07 = {0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0};
  const Bytes i64_neg = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0};
  std::vector<float> xn = x8;
  xn[6] = nan;
  Bytes u8_body(32, 7);
  // A gzip bomb: the header promises 32 elements, the stream inflates to 64 MB of zeros.
  Bytes bomb = idx_bytes(0x08, {8, 2, 2}, {});
  bomb.resize(64 << 20, 0);
  Bytes corrupt;
  {
    const std::string p = tmp("corrupt_src.gz");
    write_gzip(p, idx_bytes(0x08, {8, 2, 2}, u8_body));
    corrupt = read_file(p);
    for (size_t i = 12; i < corrupt.size() - 8; ++i) corrupt[i] ^= 0x5a;  // mangle the deflate
  }
  Bytes cut_gz;
  {
    const std::string p = tmp("cut_src.gz");
    Bytes body(4000);
    for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<unsigned char>(i * 131 + i / 7);
    write_gzip(p, idx_bytes(0x08, {1000, 2, 2}, body));
    cut_gz = read_file(p);
    cut_gz.resize(cut_gz.size() / 2);
  }
  const std::vector<Case> cases = {
      {"labels_range.safetensors", st_data(x8, entry("I64", "[2]", 32, 48), i64_07), false,
       Case::Data, "out of range"},
      {"labels_negative.safetensors", st_data(x8, entry("I64", "[2]", 32, 48), i64_neg), false,
       Case::Data, "negative"},
      {"labels_float.safetensors", st_data(x8, entry("F64", "[2]", 32, 48), i64_01), false,
       Case::Data, "integer dtype"},
      {"labels_count.safetensors",
       st_data(x8, entry("I64", "[1]", 32, 40), {0, 0, 0, 0, 0, 0, 0, 0}), false, Case::Data,
       "1 labels for 2 samples"},
      {"inputs_nan.safetensors", st_data(xn, entry("I64", "[2]", 32, 48), i64_01), false,
       Case::Data, "NaN at index 6"},
      {"features.safetensors",
       st_bytes("{" + in + entry("F32", "[4,2]", 0, 32) + lab + entry("I64", "[4]", 32, 64) + "}",
                [&] {
                  Bytes b = f32_bytes(x8);
                  b.resize(64, 0);
                  return b;
                }()),
       false, Case::Data, "features"},
      {"no_inputs.safetensors",
       st_bytes("{\"x\":" + entry("F32", "[2]", 0, 8) + "}", f32_bytes({1, 2})), false, Case::Data,
       "no tensor 'inputs'"},
      {"scalar_inputs.safetensors",
       st_bytes("{" + in + entry("F32", "[]", 0, 4) + "}", f32_bytes({1})), false, Case::Data,
       "scalar"},
      {"zero_samples.safetensors", st_bytes("{" + in + entry("F32", "[0,4]", 0, 0) + "}", {}),
       false, Case::Data, "no samples"},
      {"idx_inf.idx", idx_bytes(0x0D, {2, 2, 2}, be_f32({0, 1, 2, inf, 4, 5, 6, 7})), false,
       Case::Images, "Inf at index 3"},
      {"idx_nan.idx", idx_bytes(0x0E, {1, 4}, Bytes(32, 0xff)), false, Case::Images,
       "NaN at index 0"},
      {"idx_lying.idx", idx_bytes(0x08, {8000, 2, 2}, u8_body), false, Case::Images, "truncated"},
      {"idx_trailing.idx", idx_bytes(0x08, {4, 2, 2}, u8_body), false, Case::Images, "trailing"},
      {"idx_absurd.idx", idx_bytes(0x08, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, u8_body), false,
       Case::Images, "above the limit"},
      // Not IDX (bad magic), so it is read as safetensors and rejected there.
      {"idx_magic.idx", {1, 2, 8, 1, 0, 0, 0, 1, 5}, false, Case::Images, "exceeds"},
      {"idx_bomb.idx.gz", bomb, true, Case::Images, "trailing bytes"},
      {"idx_corrupt.idx.gz", corrupt, false, Case::Images, "gzip"},
      {"idx_cut.idx.gz", cut_gz, false, Case::Images, "truncated"},
      {"idx_hdr_cut.idx", {0, 0, 8, 3, 0, 0}, false, Case::Images, "truncated header"},
      {"labels_count.idx", idx_bytes(0x08, {7}, Bytes(7, 0)), false, Case::Labels,
       "7 labels for 8 samples"},
      {"labels_range.idx", idx_bytes(0x08, {8}, {0, 1, 2, 0, 1, 0, 0, 1}), false, Case::Labels,
       "out of range"},
      {"labels_float.idx", idx_bytes(0x0D, {8}, be_f32({0, 1, 1, 0, 1, 0, 0, 1})), false,
       Case::Labels, "integer IDX type"},
      {"labels_rank.idx", idx_bytes(0x08, {8, 1}, Bytes(8, 0)), false, Case::Labels, "rank 1"},
      {"labels_negative.idx", idx_bytes(0x09, {8}, Bytes(8, 0xff)), false, Case::Labels,
       "negative"},
  };
  run_corpus(g, cases);
  expect_exit3(g, tmp("missing.idx"), Case::Images, "cannot open", "missing_images");
  expect_exit3(g, tmp("missing_labels.idx"), Case::Labels, "cannot open", "missing_labels");
}

}  // namespace
}  // namespace hspec
