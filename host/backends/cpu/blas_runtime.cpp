// The BLAS as it runs: CPU features from cpuid, the library's self-description through
// dlsym (no link-time dependency on any one BLAS), the OpenBLAS core correction by
// re-execution, and thread control for the BLAS and our own OpenMP loops.
#include "hspec/backends/cpu/blas_runtime.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sstream>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(_OPENMP)
#include <omp.h>
#endif

extern "C" void sgemm_();  // only its address is taken, to name the library that holds it

namespace hspec::cpu {
namespace {

template <class F>
F find_symbol(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

#if defined(__x86_64__) || defined(__i386__)
unsigned long long xgetbv0() {
  unsigned eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}
#endif

// "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64" -> "0.3.21".
std::string second_word(const std::string& s) {
  std::istringstream in(s);
  std::string a, b;
  in >> a >> b;
  return b;
}

KernelInfo inspect() {
  KernelInfo k;
  Dl_info where{};
  if (dladdr(reinterpret_cast<void*>(&sgemm_), &where) && where.dli_fname) k.file = where.dli_fname;
  using Text = char* (*)();
  using Count = int (*)();
  if (auto corename = find_symbol<Text>("openblas_get_corename")) {
    k.library = "OpenBLAS";
    k.kernel = corename();
    if (auto config = find_symbol<Text>("openblas_get_config")) k.version = second_word(config());
    if (auto threads = find_symbol<Count>("openblas_get_num_threads")) k.threads = threads();
  } else if (auto blis_version = find_symbol<const char* (*)()>("bli_info_get_version_str")) {
    k.library = "BLIS";
    k.version = blis_version();
    auto arch_id = find_symbol<int (*)()>("bli_arch_query_id");
    auto arch_name = find_symbol<const char* (*)(int)>("bli_arch_string");
    if (arch_id && arch_name) k.kernel = arch_name(arch_id());
    k.threads = own_threads();
  } else if (auto mkl_version = find_symbol<void (*)(char*, int)>("mkl_get_version_string")) {
    k.library = "MKL";
    char text[256] = {};
    mkl_version(text, sizeof text - 1);
    k.version = text;
  } else if (k.file.find("blas/libblas") != std::string::npos ||
             k.file.find("libblas.so") != std::string::npos) {
    // Debian's reference BLAS lives in .../blas/libblas.so.3 and exports nothing else.
    k.library = "reference BLAS";
  } else {
    k.library = "unknown BLAS";
  }
  k.warning = slow_kernel_warning(detect_cpu(), k.library, k.kernel);
  return k;
}

std::mutex info_mutex;

KernelInfo& mutable_info() {
  static KernelInfo info = inspect();
  return info;
}

}  // namespace

CpuFeatures detect_cpu() {
  CpuFeatures c;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, cx = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &cx, &d)) return c;
  const unsigned max_leaf = a;
  char vendor[13] = {};
  std::snprintf(vendor, sizeof vendor, "%.4s%.4s%.4s", reinterpret_cast<char*>(&b),
                reinterpret_cast<char*>(&d), reinterpret_cast<char*>(&cx));
  c.vendor = vendor;
  __get_cpuid(1, &a, &b, &cx, &d);
  const unsigned base_family = (a >> 8) & 0xf, base_model = (a >> 4) & 0xf;
  c.family = static_cast<int>(base_family == 0xf ? base_family + ((a >> 20) & 0xff) : base_family);
  c.model = static_cast<int>(base_family == 0x6 || base_family == 0xf
                                 ? (((a >> 16) & 0xf) << 4) | base_model
                                 : base_model);
  const bool osxsave = cx & (1u << 27), avx = cx & (1u << 28);
  c.fma = cx & (1u << 12);
  if (!osxsave || !avx || max_leaf < 7) return c;
  const unsigned long long xcr0 = xgetbv0();
  const bool ymm_saved = (xcr0 & 0x6) == 0x6, zmm_saved = (xcr0 & 0xe6) == 0xe6;
  __get_cpuid_count(7, 0, &a, &b, &cx, &d);
  c.avx2 = ymm_saved && (b & (1u << 5));
  c.fma = c.fma && ymm_saved;
  // F (16), DQ (17), CD (28), BW (30), VL (31): what OpenBLAS's SkylakeX kernels use.
  const unsigned avx512_bits = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31);
  c.avx512 = zmm_saved && (b & avx512_bits) == avx512_bits;
#endif
  return c;
}

bool openblas_core_is_generic(const std::string& core) {
  // OpenBLAS's x86 core names (driver/others/dynamic.c) whose GEMM kernels stop at SSE3/AVX.
  static const char* const generic[] = {
      "Unknown",   "Katmai", "Coppermine", "Northwood",   "Prescott",  "Banias",    "Atom",
      "Core2",     "Penryn", "Dunnington", "Nehalem",     "Athlon",    "Opteron",   "Opteron(SSE3)",
      "Barcelona", "Nano",   "Bobcat",     "Sandybridge", "Bulldozer", "Piledriver"};
  for (const char* g : generic)
    if (core == g) return true;
  return false;
}

std::string openblas_coretype_for(const CpuFeatures& cpu) {
  if (cpu.avx512) return "SkylakeX";
  if (cpu.avx2 && cpu.fma) return cpu.vendor == "AuthenticAMD" ? "Zen" : "Haswell";
  return "";
}

std::string slow_kernel_warning(const CpuFeatures& cpu, const std::string& library,
                                const std::string& core) {
  if (library == "reference BLAS")
    return "hspec: warning: GEMMs run on the reference BLAS (slow); install OpenBLAS "
           "(libopenblas-dev) for the CPU's vector kernels";
  if (library == "OpenBLAS" && openblas_core_is_generic(core) && (cpu.avx2 || cpu.avx512)) {
    return "hspec: warning: OpenBLAS runs its generic '" + core + "' kernels on this " +
           (cpu.avx512 ? "AVX-512" : "AVX2") +
           " CPU (slow GEMMs); OPENBLAS_CORETYPE=" + openblas_coretype_for(cpu) +
           " selects the fast ones";
  }
  return "";
}

std::string openblas_core_fix(const CpuFeatures& cpu, const std::string& library,
                              const std::string& core, bool user_set_coretype,
                              bool already_corrected) {
  if (library != "OpenBLAS" || user_set_coretype || already_corrected) return "";
  if (!openblas_core_is_generic(core)) return "";
  return openblas_coretype_for(cpu);
}

// The hand-off between the two thread pools that share the cores: a product alternates
// OpenBLAS GEMMs (its pthreads pool) with our OpenMP elementwise passes. libgomp's idle
// workers, by default, spin for ~300,000 iterations after each pass, and on 2 cores took
// the GEMMs' cores: perf showed ~9% of an analyze run in libgomp's spin loop (and ~20% in
// OpenBLAS's sched_yield, its threads waiting on each other). Interleaved runs of 20
// products of 784-512-512-10 GELU at 4,096 samples, 2 threads, machine shared (medians of
// 3): CPU time per product 376 ms by default, 270 ms with OMP_WAIT_POLICY=passive, 360 ms
// with OpenBLAS's workers sleeping at once (OPENBLAS_THREAD_TIMEOUT=4), 282 ms with both,
// 304 ms with our passes on one thread, 355 ms with the workers ended after every pass
// (omp_pause_resource_all). libgomp reads the policy only in its constructor, before main
// (and before a .preinit_array function can set the environment, which glibc replaces),
// so it is set here for the re-executed process, unless the user chose a policy or spin
// count.
static bool wants_passive_openmp() {
#if defined(_OPENMP)
  return std::getenv("OMP_WAIT_POLICY") == nullptr && std::getenv("GOMP_SPINCOUNT") == nullptr;
#else
  return false;
#endif
}

void correct_openblas_core(char** argv) {
  const KernelInfo& k = kernel_info();
  const char* marker = "HSPEC_OPENBLAS_CORE_CORRECTED";
  const std::string fix = openblas_core_fix(detect_cpu(), k.library, k.kernel,
                                            std::getenv("OPENBLAS_CORETYPE") != nullptr,
                                            std::getenv(marker) != nullptr);
  const bool passive = wants_passive_openmp();
  if ((fix.empty() && !passive) || argv == nullptr) return;
  if (!fix.empty()) {
    setenv("OPENBLAS_CORETYPE", fix.c_str(), 1);
    setenv(marker, "1", 1);
  }
  if (passive) setenv("OMP_WAIT_POLICY", "passive", 1);
  std::fflush(nullptr);
  // Exec the binary by its real path, not "/proc/self/exe": the process name comes from the
  // path, and `ps`, `pkill hspec` and schedulers' tools must keep seeing "hspec".
  char self[4096];
  const ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len > 0) {
    self[len] = '\0';
    execv(self, argv);
  }
  execv("/proc/self/exe", argv);
  // Still here: exec failed (no /proc?). Run on with the slow kernels and say so.
  if (!fix.empty()) unsetenv("OPENBLAS_CORETYPE");
  if (passive) unsetenv("OMP_WAIT_POLICY");
}

const KernelInfo& kernel_info() {
  std::lock_guard<std::mutex> lock(info_mutex);
  return mutable_info();
}

std::string kernel_summary() {
  const KernelInfo& k = kernel_info();
  std::string s = k.library;
  if (!k.version.empty()) s += " " + k.version;
  if (!k.kernel.empty()) s += ", kernel " + k.kernel;
  s += ", " + std::to_string(k.threads) + " thread" + (k.threads == 1 ? "" : "s");
  if (!k.file.empty()) s += " [" + k.file + "]";
  return s;
}

void warn_if_slow_kernels(int64_t params, int64_t samples) {
  static std::once_flag once;
  if (static_cast<double>(params) * static_cast<double>(samples) < 67108864.0) return;
  const std::string& w = kernel_info().warning;
  if (w.empty()) return;
  std::call_once(once, [&w] { std::fprintf(stderr, "%s\n", w.c_str()); });
}

int own_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void set_threads(int n) {
  if (n < 1) n = 1;
  if (auto f = find_symbol<void (*)(int)>("openblas_set_num_threads")) f(n);
  if (auto f = find_symbol<void (*)(long)>("bli_thread_set_num_threads")) f(n);
#if defined(_OPENMP)
  omp_set_num_threads(n);
#endif
  std::lock_guard<std::mutex> lock(info_mutex);
  mutable_info().threads = n;
}

}  // namespace hspec::cpu
