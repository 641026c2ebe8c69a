// The BLAS runtime: the decisions about OpenBLAS's core (fed CPU descriptions and core
// names, including the Intel Xeon where Debian's OpenBLAS 0.3.21 falls back to Prescott),
// CPU detection against /proc/cpuinfo, and the library's self-description against the file
// that holds sgemm_; and what the CLI shows of them (--version, --threads, the report's
// cpu_kernels, the slow-kernel warning).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli_test_util.hpp"
#include "hspec/backends/cpu/blas_runtime.hpp"
#include "hspec/formats/dataset.hpp"
#include "hspec/formats/safetensors.hpp"
#include "hspec/mlp/model.hpp"
#include "hspec/mlp/workloads.hpp"

namespace {

using hspec::cpu::CpuFeatures;

// Family 6 model 207 (0xCF, Emerald Rapids): AVX-512 and AMX; OpenBLAS 0.3.21 does not know
// the model and picks Prescott.
CpuFeatures xeon_avx512() {
  return {"GenuineIntel", 6, 207, true, true, true};
}
CpuFeatures zen3() {
  return {"AuthenticAMD", 25, 1, true, true, false};
}
CpuFeatures haswell() {
  return {"GenuineIntel", 6, 60, true, true, false};
}
CpuFeatures core2() {
  return {"GenuineIntel", 6, 15, false, false, false};
}

TEST(BlasRuntime, GenericOpenBlasCoresAreRecognised) {
  for (const char* c :
       {"Prescott", "Core2", "Nehalem", "Penryn", "Atom", "Sandybridge", "Barcelona", "Unknown"})
    EXPECT_TRUE(hspec::cpu::openblas_core_is_generic(c)) << c;
  for (const char* c : {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids"})
    EXPECT_FALSE(hspec::cpu::openblas_core_is_generic(c)) << c;
}

TEST(BlasRuntime, CoretypeFollowsTheVectorIsa) {
  EXPECT_EQ(hspec::cpu::openblas_coretype_for(xeon_avx512()), "SkylakeX");
  EXPECT_EQ(hspec::cpu::openblas_coretype_for(zen3()), "Zen");
  EXPECT_EQ(hspec::cpu::openblas_coretype_for(haswell()), "Haswell");
  EXPECT_EQ(hspec::cpu::openblas_coretype_for(core2()), "");
  CpuFeatures avx2_without_fma = haswell();
  avx2_without_fma.fma = false;
  EXPECT_EQ(hspec::cpu::openblas_coretype_for(avx2_without_fma), "");
}

TEST(BlasRuntime, PrescottOnAnAvx512XeonIsCorrectedOnce) {
  EXPECT_EQ(hspec::cpu::openblas_core_fix(xeon_avx512(), "OpenBLAS", "Prescott", false, false),
            "SkylakeX");
  // The user's own OPENBLAS_CORETYPE wins, and a corrected process does not re-execute again.
  EXPECT_EQ(hspec::cpu::openblas_core_fix(xeon_avx512(), "OpenBLAS", "Prescott", true, false), "");
  EXPECT_EQ(hspec::cpu::openblas_core_fix(xeon_avx512(), "OpenBLAS", "Prescott", false, true), "");
  // Other BLASes and good cores are left alone; a CPU without AVX2 has nothing better.
  EXPECT_EQ(hspec::cpu::openblas_core_fix(xeon_avx512(), "BLIS", "skx", false, false), "");
  EXPECT_EQ(hspec::cpu::openblas_core_fix(xeon_avx512(), "OpenBLAS", "SkylakeX", false, false), "");
  EXPECT_EQ(hspec::cpu::openblas_core_fix(zen3(), "OpenBLAS", "Zen", false, false), "");
  EXPECT_EQ(hspec::cpu::openblas_core_fix(zen3(), "OpenBLAS", "Nehalem", false, false), "Zen");
  EXPECT_EQ(hspec::cpu::openblas_core_fix(core2(), "OpenBLAS", "Core2", false, false), "");
}

TEST(BlasRuntime, WarnsOnlyAboutKnownSlowFallbacks) {
  const std::string w = hspec::cpu::slow_kernel_warning(xeon_avx512(), "OpenBLAS", "Prescott");
  EXPECT_NE(w.find("Prescott"), std::string::npos) << w;
  EXPECT_NE(w.find("AVX-512"), std::string::npos) << w;
  EXPECT_NE(w.find("OPENBLAS_CORETYPE=SkylakeX"), std::string::npos) << w;
  EXPECT_EQ(w.find('\n'), std::string::npos) << "one line";
  EXPECT_NE(hspec::cpu::slow_kernel_warning(zen3(), "OpenBLAS", "Core2").find("AVX2"),
            std::string::npos);
  EXPECT_NE(hspec::cpu::slow_kernel_warning(core2(), "reference BLAS", ""), "");
  EXPECT_EQ(hspec::cpu::slow_kernel_warning(zen3(), "OpenBLAS", "Zen"), "");
  EXPECT_EQ(hspec::cpu::slow_kernel_warning(xeon_avx512(), "OpenBLAS", "SkylakeX"), "");
  EXPECT_EQ(hspec::cpu::slow_kernel_warning(core2(), "OpenBLAS", "Core2"), "");
  EXPECT_EQ(hspec::cpu::slow_kernel_warning(zen3(), "BLIS", "zen3"), "");
}

// The kernel's view of the CPU: the flags line of /proc/cpuinfo.
std::set<std::string> proc_cpu_flags() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::set<std::string> flags;
    for (std::string w; words >> w;) flags.insert(w);
    return flags;
  }
  return {};
}

TEST(BlasRuntime, DetectedIsaMatchesProcCpuinfo) {
  const std::set<std::string> flags = proc_cpu_flags();
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo flags";
  const CpuFeatures c = hspec::cpu::detect_cpu();
  EXPECT_EQ(c.avx2, flags.count("avx2") == 1);
  EXPECT_EQ(c.fma, flags.count("fma") == 1);
  bool avx512 = true;
  for (const char* f : {"avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"})
    avx512 = avx512 && flags.count(f) == 1;
  EXPECT_EQ(c.avx512, avx512);
  EXPECT_FALSE(c.vendor.empty());
}

TEST(BlasRuntime, NamesTheLibraryThatHoldsSgemm) {
  const hspec::cpu::KernelInfo& k = hspec::cpu::kernel_info();
  ASSERT_FALSE(k.file.empty());
  // Debian's OpenBLAS lives under .../openblas-*/ or is libopenblas.so itself.
  const bool openblas_file = k.file.find("openblas") != std::string::npos;
  EXPECT_EQ(k.library == "OpenBLAS", openblas_file) << k.library << " from " << k.file;
  if (k.library == "OpenBLAS") {
    EXPECT_FALSE(k.kernel.empty());
    EXPECT_EQ(k.version.find('.') != std::string::npos, true) << k.version;
  }
  EXPECT_GE(k.threads, 1);
  EXPECT_NE(hspec::cpu::kernel_summary().find(k.library), std::string::npos);
}

TEST(BlasRuntime, SetThreadsIsReported) {
  const int before = hspec::cpu::kernel_info().threads;
  hspec::cpu::set_threads(1);
  EXPECT_EQ(hspec::cpu::kernel_info().threads, 1);
  hspec::cpu::set_threads(before);
  EXPECT_EQ(hspec::cpu::kernel_info().threads, before);
}

// Runs the CLI with an environment prefix (env VAR=... ...), stdout captured.
hspec::testutil::CliResult run_cli_env(const std::string& env, const std::string& args,
                                       const std::string& err_path) {
  const std::string cmd = "env " + env + " " + std::string(HSPEC_CLI_PATH) + " " + args + " 2>" +
                          err_path + " </dev/null";
  hspec::testutil::CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  for (size_t got; (got = fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, got);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = hspec::testutil::slurp(err_path);
  return r;
}

// An MLP and its data, as files for the CLI: by default a 6-5-3 tanh MLP over 40 samples;
// big: 784-64-10 over 1,400 samples, past the size where hspec warns about slow kernels.
struct CliFiles {
  std::string model = hspec::testutil::scratch("blasrt_", "model.safetensors");
  std::string data = hspec::testutil::scratch("blasrt_", "data.safetensors");
  std::string err = hspec::testutil::scratch("blasrt_", "stderr.txt");
  explicit CliFiles(bool big = false) {
    using namespace hspec;
    const std::vector<int64_t> sizes =
        big ? std::vector<int64_t>{784, 64, 10} : std::vector<int64_t>{6, 5, 3};
    const Dataset ds = teacher_dataset(random_mlp(sizes, Activation::Tanh, 4), big ? 1400 : 40, 5);
    save_model(model, random_mlp(sizes, Activation::Tanh, 6), Loss::CE);
    write_safetensors(data, {make_tensor("inputs", {ds.n, ds.d}, ds.inputs),
                             make_tensor("labels", {ds.n}, ds.labels)});
  }
  // A short run: the budget stops it (exit 4) after a few products, the report is written.
  std::string analyze() const {
    return "analyze --model " + model + " --data " + data + " --top 1 --bottom 0 --max-hvps 4";
  }
};

TEST(BlasRuntimeCli, VersionNamesTheKernels) {
  const CliFiles f;
  const auto r = hspec::testutil::run_cli("--version", f.err);
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("CPU kernels: " + hspec::cpu::kernel_info().library), std::string::npos)
      << r.out;
}

// libgomp's idle threads sleep rather than spin unless the user chose: hspec re-executes
// itself once with OMP_WAIT_POLICY=passive. OMP_DISPLAY_ENV=verbose makes libgomp print
// what it read, in each process: the spin count is 0 when passive, 300000 by default.
TEST(BlasRuntimeCli, IdleOpenMpThreadsSleepUnlessTheUserChose) {
#if !defined(_OPENMP)
  GTEST_SKIP() << "built without OpenMP";
#else
  const CliFiles f;
  const std::string clean = "-u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose";
  auto starts = [](const std::string& err) {
    size_t n = 0;
    for (size_t at = 0;
         (at = err.find("OPENMP DISPLAY ENVIRONMENT BEGIN", at)) != std::string::npos; ++at)
      ++n;
    return n;
  };
  const auto ours = run_cli_env(clean, "--version", f.err);
  ASSERT_EQ(ours.code, 0) << ours.err;
  EXPECT_EQ(starts(ours.err), 2u) << ours.err;  // the first process, then the re-executed one
  const size_t last = ours.err.rfind("OPENMP DISPLAY ENVIRONMENT BEGIN");
  EXPECT_NE(ours.err.find("GOMP_SPINCOUNT = '0'", last), std::string::npos) << ours.err;
  for (const char* user : {"OMP_WAIT_POLICY=active", "GOMP_SPINCOUNT=1000"}) {
    const auto kept = run_cli_env(clean + " " + user, "--version", f.err);
    ASSERT_EQ(kept.code, 0) << kept.err;
    EXPECT_EQ(starts(kept.err), 1u) << user << "\n" << kept.err;  // no re-execution
    EXPECT_EQ(kept.err.find("GOMP_SPINCOUNT = '0'"), std::string::npos) << kept.err;
  }
#endif
}

TEST(BlasRuntimeCli, ReportNamesTheKernelsAndTheThreads) {
  const CliFiles f;
  const auto r = hspec::testutil::run_cli(f.analyze() + " --threads 1 --json -", f.err);
  ASSERT_EQ(r.code, 4) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.contains("cpu_kernels")) << r.out;
  const auto& k = j["cpu_kernels"];
  EXPECT_EQ(k["library"].get<std::string>(), hspec::cpu::kernel_info().library);
  EXPECT_EQ(k["kernel"].get<std::string>(), hspec::cpu::kernel_info().kernel);
  EXPECT_EQ(k["threads"].get<int>(), 1);
  EXPECT_EQ(hspec::testutil::run_cli(f.analyze() + " --threads 0", f.err).code, 2);
}

TEST(BlasRuntimeCli, GenericOpenBlasCoreOnAnAvx2CpuIsWarnedAbout) {
  const hspec::cpu::CpuFeatures cpu = hspec::cpu::detect_cpu();
  if (hspec::cpu::kernel_info().library != "OpenBLAS" || !cpu.avx2)
    GTEST_SKIP() << "needs OpenBLAS on an AVX2 CPU";
  const CliFiles f(true);
  // Not forced: the kernels this machine picks.
  const auto r = hspec::testutil::run_cli(f.analyze() + " --json -", f.err);
  // Forced by the user: hspec keeps the core (no correction) but says it is slow, once.
  // --quiet: under load the run passes 1 s and a progress line would join the warning.
  const auto forced =
      run_cli_env("OPENBLAS_CORETYPE=Prescott", f.analyze() + " --quiet --json -", f.err);
  ASSERT_EQ(forced.code, 4) << forced.err;
  const std::string& err = forced.err;
  EXPECT_NE(err.find("warning: OpenBLAS runs its generic 'Prescott' kernels"), std::string::npos)
      << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  const auto j = nlohmann::json::parse(forced.out);
  EXPECT_EQ(j["cpu_kernels"]["kernel"].get<std::string>(), "Prescott");
  EXPECT_TRUE(j["cpu_kernels"]["slow_fallback"].get<bool>());
  ASSERT_EQ(r.code, 4);
  EXPECT_FALSE(nlohmann::json::parse(r.out)["cpu_kernels"]["slow_fallback"].get<bool>());
}

// End to end on this machine: a shim makes OpenBLAS report Prescott while OPENBLAS_CORETYPE
// is unset; hspec must set the variable from the CPU's ISA and re-execute itself once.
TEST(BlasRuntimeCli, GenericCoreIsCorrectedByReexecution) {
#if defined(HSPEC_NO_PRELOAD_TESTS)
  GTEST_SKIP() << "sanitizer build: no LD_PRELOAD";
#else
  const hspec::cpu::CpuFeatures cpu = hspec::cpu::detect_cpu();
  if (hspec::cpu::kernel_info().library != "OpenBLAS" || !cpu.avx2)
    GTEST_SKIP() << "needs OpenBLAS on an AVX2 CPU";
  const CliFiles f(true);
  const std::string preload = "-u OPENBLAS_CORETYPE LD_PRELOAD=" HSPEC_FAKE_CORENAME_LIB;
  // The shim works: with re-execution barred by its marker, the generic core shows.
  const auto barred =
      run_cli_env(preload + " HSPEC_OPENBLAS_CORE_CORRECTED=1", f.analyze() + " --json -", f.err);
  ASSERT_EQ(barred.code, 4) << barred.err;
  EXPECT_EQ(nlohmann::json::parse(barred.out)["cpu_kernels"]["kernel"], "Prescott");
  EXPECT_NE(barred.err.find("generic 'Prescott'"), std::string::npos) << barred.err;
  // Free to correct: the re-executed process runs the ISA's kernels and does not warn.
  const auto fixed = run_cli_env(preload, f.analyze() + " --json -", f.err);
  ASSERT_EQ(fixed.code, 4) << fixed.err;
  const auto k = nlohmann::json::parse(fixed.out)["cpu_kernels"];
  EXPECT_EQ(k["kernel"].get<std::string>(), hspec::cpu::openblas_coretype_for(cpu));
  EXPECT_FALSE(k["slow_fallback"].get<bool>());
  EXPECT_EQ(fixed.err.find("warning"), std::string::npos) << fixed.err;
#endif
}

}  // namespace
