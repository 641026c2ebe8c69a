// Data-parallel runs under mpiexec against the single-process run of the same files: the
// products are summed over 2 and 3 ranks (uneven shards), so eigenvalues, trace and density
// must agree to 1e-12 relative in fp64 and the rest of the JSON must be the same; a rank
// that alone sees bad input must end the job with exit 3 and one line. Skipped in a build
// without MPI. The shard arithmetic is tested everywhere.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_test_util.hpp"
#include "hspec/distributed/communicator.hpp"
#include "hspec/distributed/data_parallel.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/formats/safetensors.hpp"
#include "hspec/mlp/reference_operator.hpp"
#include "hspec/mlp/workloads.hpp"

namespace hspec {
namespace {

using nlohmann::json;

TEST(Distributed, ShardsAreContiguousAndDifferByAtMostOne) {
  for (int64_t n : {1, 7, 10, 101, 1000003}) {
    for (int ranks = 1; ranks <= 8 && ranks <= n; ++ranks) {
      int64_t next = 0, lo = n, hi = 0;
      for (int r = 0; r < ranks; ++r) {
        const Shard s = shard_of(n, ranks, r);
        EXPECT_EQ(s.first, next) << n << " " << ranks << " " << r;
        next = s.first + s.count;
        lo = std::min(lo, s.count);
        hi = std::max(hi, s.count);
      }
      EXPECT_EQ(next, n);
      EXPECT_LE(hi - lo, 1);
      EXPECT_EQ(shard_of(n, ranks, 0).count, n / ranks);  // r*N/R: the first is the floor
    }
  }
}

// The launcher's variables, in order of preference; 0 when none is set.
TEST(Distributed, LocalRankComesFromTheLauncher) {
  const char* names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID",
                         "PMI_LOCAL_RANK"};
  std::vector<std::string> saved;
  for (const char* n : names) {
    const char* v = std::getenv(n);
    saved.push_back(v ? v : "\x01");
    unsetenv(n);
  }
  EXPECT_EQ(local_rank(), 0);
  setenv("SLURM_LOCALID", "5", 1);
  EXPECT_EQ(local_rank(), 5);
  setenv("OMPI_COMM_WORLD_LOCAL_RANK", "3", 1);
  EXPECT_EQ(local_rank(), 3);
  setenv("OMPI_COMM_WORLD_LOCAL_RANK", "x", 1);  // not a number: the next variable
  EXPECT_EQ(local_rank(), 5);
  for (size_t i = 0; i < saved.size(); ++i) {
    if (saved[i] == "\x01")
      unsetenv(names[i]);
    else
      setenv(names[i], saved[i].c_str(), 1);
  }
}

TEST(Distributed, ShardKeepsTokenIdsAndPositionLabelsBySample) {
  Dataset ds;
  ds.n = 5;
  ds.d = 3;
  ds.label_dim = 3;
  for (int64_t i = 0; i < 15; ++i) {
    ds.ids.push_back(100 + i);
    ds.labels.push_back(200 + i);
  }
  keep_shard(ds, shard_of(5, 2, 1));  // samples 2, 3, 4
  EXPECT_EQ(ds.n, 3);
  EXPECT_EQ(ds.first_sample, 2);
  EXPECT_EQ(ds.ids, (std::vector<int64_t>{106, 107, 108, 109, 110, 111, 112, 113, 114}));
  EXPECT_EQ(ds.labels, (std::vector<int64_t>{206, 207, 208, 209, 210, 211, 212, 213, 214}));
}

#ifdef HSPEC_MPIEXEC

std::string tmp(const std::string& name) {
  return testutil::scratch("dist_", name);
}

std::string fixture(const std::string& name) {
  return std::string(HSPEC_FIXTURES) + "/onnx/" + name;
}

testutil::CliResult run_ranks(int ranks, const std::string& args) {
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  // Shared memory only: these tests never leave the machine.
  setenv("OMPI_MCA_btl", "self,vader", 1);
  const std::string cmd = std::string("timeout 120 ") + HSPEC_MPIEXEC + " -n " +
                          std::to_string(ranks) + " --oversubscribe " + HSPEC_CLI_PATH + " " +
                          args + " 2>" + tmp("stderr.txt") + " </dev/null";
  testutil::CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, got);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = testutil::slurp(tmp("stderr.txt"));
  return r;
}

// Values whose size is set by cancellation (residuals of converged values, error bounds)
// are compared on the scale of the matrix, ||C|| (the largest |eigenvalue|), not their own.
bool residual_like(const std::string& key) {
  return key == "residual" || key == "gap_error_bound" || key == "gap" || key == "stderr" ||
         key == "asymmetry";
}

// Every key of a and b the same, numbers to rel (arrays of numbers norm-wise: relative to
// their largest entry), except the keys that say how the run was split or timed.
void expect_same_report(const json& a, const json& b, double scale, const std::string& path,
                        const std::string& key = "") {
  const double rel = 1e-12;
  ASSERT_EQ(a.type(), b.type()) << path;
  if (a.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it) {
      const std::string& k = it.key();
      if (k == "ranks" || k == "data_parallel" || k == "seconds") continue;
      ASSERT_TRUE(b.contains(k)) << path << "." << k;
      expect_same_report(it.value(), b[k], scale, path + "." + k, k);
    }
    for (auto it = b.begin(); it != b.end(); ++it) {
      if (it.key() != "ranks" && it.key() != "data_parallel") {
        EXPECT_TRUE(a.contains(it.key())) << path << "." << it.key();
      }
    }
  } else if (a.is_array()) {
    ASSERT_EQ(a.size(), b.size()) << path;
    double top = 0;
    for (const json& v : a)
      if (v.is_number_float()) top = std::max(top, std::fabs(v.get<double>()));
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i].is_number_float()) {
        EXPECT_NEAR(a[i].get<double>(), b[i].get<double>(), rel * top) << path << "[" << i << "]";
      } else {
        expect_same_report(a[i], b[i], scale, path + "[" + std::to_string(i) + "]", key);
      }
    }
  } else if (a.is_number_float()) {
    const double x = a.get<double>(), y = b.get<double>();
    const double floor = residual_like(key) ? scale : 0.0;
    EXPECT_NEAR(x, y, rel * std::max({std::fabs(x), std::fabs(y), floor})) << path;
  } else {
    EXPECT_EQ(a, b) << path;
  }
}

// An 8-6-3 tanh MLP and 101 labelled samples (shards of 50/51 and 33/34/34).
struct MlpFiles {
  std::string model = tmp("model.safetensors"), data = tmp("data.safetensors");
  explicit MlpFiles(int64_t bad_label_at = -1) {
    const Model teacher = random_mlp({8, 6, 3}, Activation::Tanh, 4);
    Dataset ds = teacher_dataset(teacher, 101, 5);
    if (bad_label_at >= 0) ds.labels[size_t(bad_label_at)] = 3;  // 3 classes: out of range
    save_model(model, random_mlp({8, 6, 3}, Activation::Tanh, 6), Loss::CE);
    write_safetensors(data, {make_tensor("inputs", {ds.n, ds.d}, ds.inputs),
                             make_tensor("labels", {ds.n}, ds.labels)});
  }
};

void expect_ranks_match(const std::string& args, const std::vector<int>& rank_counts) {
  const std::string one_json = tmp("one.json");
  const auto one = testutil::run_cli(args + " --json " + one_json, tmp("stderr1.txt"));
  ASSERT_EQ(one.code, 0) << one.err;
  const json a = json::parse(testutil::slurp(one_json));
  EXPECT_EQ(a["ranks"], 1);
  const double scale = std::fabs(a["top"][0]["value"].get<double>());
  for (int ranks : rank_counts) {
    const std::string many_json = tmp("many.json");
    std::remove(many_json.c_str());
    const auto many = run_ranks(ranks, args + " --json " + many_json);
    ASSERT_EQ(many.code, 0) << many.err;
    const json b = json::parse(testutil::slurp(many_json));
    EXPECT_EQ(b["ranks"], ranks);
    EXPECT_EQ(b["data_parallel"]["shard_samples"][1].get<int64_t>() -
                  b["data_parallel"]["shard_samples"][0].get<int64_t>(),
              a["samples"].get<int64_t>() % ranks == 0 ? 0 : 1);
    // Only rank 0 prints: one summary.
    EXPECT_EQ(many.out.find("data "), many.out.rfind("data ")) << many.out;
    expect_same_report(a, b, scale, std::to_string(ranks) + " ranks");
  }
}

TEST(Distributed, MlpRanksGiveTheSingleProcessReport) {
  const MlpFiles f;
  expect_ranks_match("analyze --model " + f.model + " --data " + f.data +
                         " --precision fp64 --top 3 --bottom 2 --block 2 --trace --density"
                         " --probes 4 --steps 20 --no-timings --quiet --threads 1",
                     {2, 3});
}

#if HSPEC_WITH_ONNX
TEST(Distributed, GraphRanksGiveTheSingleProcessReport) {
  expect_ranks_match("analyze --model " + fixture("cnn_legacy.onnx") + " --data " +
                         fixture("cnn_data.safetensors") +
                         " --samples 37 --precision fp64 --top 2 --bottom 1 --trace"
                         " --trace-hvps 40 --no-timings --quiet --threads 1",
                     {3});
}

// Token ids and per-position labels are cut by sample like features: a causal language
// model's per-token loss over 2 ranks is the single process's.
TEST(Distributed, TokenModelRanksGiveTheSingleProcessReport) {
  const std::string seq = std::string(HSPEC_FIXTURES) + "/seq/";
  expect_ranks_match("analyze --model " + seq + "token_lm.onnx --data " + seq +
                         "token_lm_data.safetensors --precision fp64 --top 2 --bottom 1"
                         " --no-timings --quiet --threads 1",
                     {2});
}

#endif  // HSPEC_WITH_ONNX

TEST(Distributed, BadInputOnOneRankEndsEveryRankWithExit3) {
  const MlpFiles f(100);  // the last sample: only the last rank's shard holds it
  const std::string args = "analyze --model " + f.model + " --data " + f.data + " --quiet";
  const auto one = testutil::run_cli(args, tmp("stderr1.txt"));
  EXPECT_EQ(one.code, 3) << one.err;
  const auto many = run_ranks(3, args);
  EXPECT_EQ(many.code, 3) << many.err;
  // One line from hspec (rank 0), naming the rank that saw the problem; the launcher may
  // add its own report of the non-zero exit, which is not ours to shape.
  size_t lines = 0;
  for (size_t at = many.err.find("hspec: "); at != std::string::npos;
       at = many.err.find("hspec: ", at + 1))
    ++lines;
  EXPECT_EQ(lines, 1u) << many.err;
  EXPECT_NE(many.err.find("hspec: rank 2 of 3: "), std::string::npos) << many.err;
  EXPECT_TRUE(many.out.empty()) << many.out;
}

// Slurm's time limit signals every task; here only one rank is signalled, the harder case:
// the other must stop at the same product, and rank 0 must still write the partial report.
TEST(Distributed, SigtermToOneRankGivesThePartialReport) {
  const std::string model = tmp("slow_model.safetensors"), data = tmp("slow_data.safetensors");
  const Model teacher = random_mlp({20, 64, 3}, Activation::Tanh, 4);
  const Dataset ds = teacher_dataset(teacher, 40000, 5);
  save_model(model, random_mlp({20, 64, 3}, Activation::Tanh, 6), Loss::CE);
  write_safetensors(data, {make_tensor("inputs", {ds.n, ds.d}, ds.inputs),
                           make_tensor("labels", {ds.n}, ds.labels)});
  const std::string json_path = tmp("partial.json");
  std::remove(json_path.c_str());
  // Far more work than the 3 s before the signal: about 20 s on one quiet core (a tenth of
  // the samples took 2.2 s, too close to the signal's time).
  const std::string args = "analyze --model " + model + " --data " + data +
                           " --precision fp64 --top 40 --bottom 40 --tol 1e-12 --threads 1"
                           " --quiet --json " +
                           json_path;
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  setenv("OMPI_MCA_btl", "self,vader", 1);
  const std::string cmd = std::string("timeout 120 ") + HSPEC_MPIEXEC + " -n 2 --oversubscribe " +
                          HSPEC_CLI_PATH + " " + args + " >" + tmp("partial.out") + " 2>" +
                          tmp("partial.err") +
                          " </dev/null & mp=$!; sleep 3;"
                          " launcher=$(pgrep -P $mp -x mpiexec);"
                          " kill -TERM $(pgrep -P $launcher -x hspec | head -1);"
                          " wait $mp";
  const int status = std::system(("bash -c '" + cmd + "'").c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 143) << testutil::slurp(tmp("partial.err"));
  const json j = json::parse(testutil::slurp(json_path));
  EXPECT_TRUE(j["interrupted"].get<bool>());
  EXPECT_EQ(j["ranks"], 2);
  EXPECT_GT(j["hvps"].get<int64_t>(), 0);
}

#endif

}  // namespace
}  // namespace hspec
