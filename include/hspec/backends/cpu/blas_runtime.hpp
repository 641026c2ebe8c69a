// Which BLAS runs the CPU GEMMs and with which kernels: CPU feature detection, the BLAS
// library's self-description (found at run time with dlsym, so any BLAS links), the
// correction of OpenBLAS's core choice on CPUs its tables do not know, and thread control.
#pragma once
#include <cstdint>
#include <string>

namespace hspec::cpu {

// What the GEMM kernels depend on: the vector ISA the CPU and the OS support.
struct CpuFeatures {
  std::string vendor;  // "GenuineIntel", "AuthenticAMD", ... ("" off x86)
  int family = 0, model = 0;
  bool avx2 = false, fma = false;
  bool avx512 = false;  // F, CD, BW, DQ and VL with the OS saving the ZMM state
};

// This CPU, from cpuid and xgetbv.
CpuFeatures detect_cpu();

// The GEMM libraries as they run in this process.
struct KernelInfo {
  std::string library;  // "OpenBLAS", "BLIS", "reference BLAS", "unknown BLAS"
  std::string version;  // e.g. "0.3.21"; "" when the library does not say
  std::string kernel;   // OpenBLAS's core name (e.g. "Zen", "Prescott"), BLIS's arch; "" else
  std::string file;     // the shared object that provides sgemm_
  int threads = 1;      // BLAS threads
  std::string warning;  // one line when a known slow fallback is in use, else ""
};

// Inspected once, on first use; set_threads() updates the thread count.
const KernelInfo& kernel_info();

// One line for --version and the benchmarks: "OpenBLAS 0.3.21, kernel Zen, 2 threads".
std::string kernel_summary();

// Prints kernel_info().warning to stderr, once per process, when the CPU backend is about to
// run products big enough for the GEMM kernels to matter (params x samples >= 2^26, e.g.
// 784-64-10 over 2,048 samples); tiny problems run as fast on any BLAS.
void warn_if_slow_kernels(int64_t params, int64_t samples);

// Sets the threads of the BLAS and of hspec's own loops (n >= 1).
void set_threads(int n);
// Our own loops' thread count (OMP_NUM_THREADS or set_threads; 1 without OpenMP).
int own_threads();

// --- the decisions, pure functions of their inputs (unit-tested) ---------------------------

// True for OpenBLAS cores whose kernels lack AVX2/FMA (Prescott, Core2, Nehalem, ...).
bool openblas_core_is_generic(const std::string& core);
// The OPENBLAS_CORETYPE that gives this CPU's vector ISA its kernels ("SkylakeX", "Haswell",
// "Zen"), or "" when the CPU has no AVX2+FMA.
std::string openblas_coretype_for(const CpuFeatures& cpu);
// The one-line warning for a slow GEMM fallback, or "": the reference BLAS, or OpenBLAS on a
// generic core while the CPU has AVX2 or AVX-512.
std::string slow_kernel_warning(const CpuFeatures& cpu, const std::string& library,
                                const std::string& core);
// What to put in OPENBLAS_CORETYPE before OpenBLAS starts again, or "" to leave it: only
// when OpenBLAS chose a generic core on a CPU with AVX2, the user set no OPENBLAS_CORETYPE
// and this process is not already the corrected one.
std::string openblas_core_fix(const CpuFeatures& cpu, const std::string& library,
                              const std::string& core, bool user_set_coretype,
                              bool already_corrected);

// Called first in main(): OpenBLAS picks its kernels in a library constructor, before
// main, from OPENBLAS_CORETYPE, and libgomp reads OMP_WAIT_POLICY there too. When
// openblas_core_fix() says so, or when the user set neither OMP_WAIT_POLICY nor
// GOMP_SPINCOUNT (hspec makes libgomp's idle threads sleep rather than spin: they took the
// BLAS's cores), this sets the variables and re-executes the program (same arguments,
// /proc/self/exe), once. Returns only when no re-execution was needed or it failed (a core
// warning then stays in kernel_info()).
void correct_openblas_core(char** argv);

}  // namespace hspec::cpu
