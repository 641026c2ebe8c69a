// The BLAS runtime: the decisions about OpenBLAS's core (fed CPU descriptions and core
// names, including the Intel Xeon where Debian's OpenBLAS 0.3.21 falls back to Prescott),
// CPU detection against /proc/cpuinfo, and the library's self-description against the file
// that holds sgemm_.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "hspec/cpu/blas_runtime.hpp"

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

}  // namespace
