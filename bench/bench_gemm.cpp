// GEMM rates of the BLAS hspec links and of the other CPU GEMM libraries found on the
// machine (OpenBLAS, BLIS, oneDNN's dnnl_sgemm; loaded with dlopen, so none is a build
// dependency), at 2048^3 and at the shapes of one product of the 784-512-512-10 MLP over
// 4,096 samples. One JSON line per (library, precision): median GFLOP/s per shape and over
// the product's mix (its flops over its time). Threads: --threads N (default OMP_NUM_THREADS).
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "hspec/backends/cpu/blas.hpp"
#include "hspec/backends/cpu/blas_runtime.hpp"

namespace {

struct Shape {
  char ta, tb;
  int m, n, k;
};
// The product's big GEMMs (features x samples, column-major), then a square one.
const Shape kShapes[] = {{'T', 'N', 512, 4096, 784}, {'T', 'N', 512, 4096, 512},
                         {'N', 'T', 784, 512, 4096}, {'N', 'T', 512, 512, 4096},
                         {'N', 'N', 512, 4096, 512}, {'N', 'N', 2048, 2048, 2048}};

using SgemmF = void (*)(const char*, const char*, const int*, const int*, const int*, const float*,
                        const float*, const int*, const float*, const int*, const float*, float*,
                        const int*);
using DgemmF = void (*)(const char*, const char*, const int*, const int*, const int*, const double*,
                        const double*, const int*, const double*, const int*, const double*,
                        double*, const int*);
using DnnlSgemmF = int (*)(char, char, long, long, long, float, const float*, long, const float*,
                           long, float, float*, long);

// One library's column-major GEMM: C = op(A) op(B).
struct Library {
  std::string name;
  SgemmF sgemm = nullptr;
  DgemmF dgemm = nullptr;
  DnnlSgemmF dnnl = nullptr;
  bool linked = false;  // hspec's own hspec::blas::gemm
};

template <class T>
void run(const Library& lib, const Shape& s, const T* A, const T* B, T* C) {
  const int lda = s.ta == 'N' ? s.m : s.k, ldb = s.tb == 'N' ? s.k : s.n, ldc = s.m;
  const T one = 1, zero = 0;
  if (lib.linked) {
    hspec::blas::gemm(s.ta, s.tb, s.m, s.n, s.k, one, A, lda, B, ldb, zero, C, ldc);
  } else if constexpr (sizeof(T) == 4) {
    if (lib.dnnl)  // row-major: C^T = op(B)^T op(A)^T
      lib.dnnl(s.tb, s.ta, s.n, s.m, s.k, 1.f, B, ldb, A, lda, 0.f, C, ldc);
    else
      lib.sgemm(&s.ta, &s.tb, &s.m, &s.n, &s.k, &one, A, &lda, B, &ldb, &zero, C, &ldc);
  } else {
    lib.dgemm(&s.ta, &s.tb, &s.m, &s.n, &s.k, &one, A, &lda, B, &ldb, &zero, C, &ldc);
  }
}

template <class T>
void measure(const Library& lib, const char* precision, int reps) {
  std::string line = "{\"library\":\"" + lib.name + "\",\"precision\":\"" + precision + "\"";
  double mix_flops = 0, mix_seconds = 0;
  for (const Shape& s : kShapes) {
    std::vector<T> a(size_t(s.m) * s.k, T(0.5)), b(size_t(s.k) * s.n, T(0.25)),
        c(size_t(s.m) * s.n);
    run(lib, s, a.data(), b.data(), c.data());  // warm-up: thread start, page faults
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      run(lib, s, a.data(), b.data(), c.data());
      t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    const double flops = 2.0 * s.m * s.n * s.k, sec = t[t.size() / 2];
    if (s.m != 2048) mix_flops += flops, mix_seconds += sec;
    char buf[128];
    std::snprintf(buf, sizeof buf, ",\"%c%c %dx%dx%d\":%.1f", s.ta, s.tb, s.m, s.n, s.k,
                  flops / sec / 1e9);
    line += buf;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, ",\"product_mix\":%.1f}", mix_flops / mix_seconds / 1e9);
  std::printf("%s%s\n", line.c_str(), buf);
  std::fflush(stdout);
}

template <class F>
F symbol(void* handle, const char* name) {
  return handle ? reinterpret_cast<F>(dlsym(handle, name)) : nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--threads")
      threads = std::atoi(argv[i + 1]);
    else if (a == "--reps")
      reps = std::max(1, std::atoi(argv[i + 1]));
  }
  hspec::cpu::correct_openblas_core(argv);
  if (threads > 0) hspec::cpu::set_threads(threads);
  const std::string& warning = hspec::cpu::kernel_info().warning;
  if (!warning.empty()) std::fprintf(stderr, "%s\n", warning.c_str());
  std::fprintf(stderr, "linked: %s\n", hspec::cpu::kernel_summary().c_str());
  const int n = threads > 0 ? threads : hspec::cpu::kernel_info().threads;

  std::vector<Library> libs;
  libs.push_back({"linked: " + hspec::cpu::kernel_summary(), nullptr, nullptr, nullptr, true});
  // dlsym on a handle searches that library first, so BLIS's sgemm_ is BLIS's own even when
  // OpenBLAS is linked; RTLD_LOCAL keeps it from interposing on hspec's.
  if (void* h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL)) {
    if (auto set = symbol<void (*)(int)>(h, "openblas_set_num_threads")) set(n);
    auto core = symbol<char* (*)()>(h, "openblas_get_corename");
    libs.push_back({std::string("OpenBLAS (") + (core ? core() : "?") + ")",
                    symbol<SgemmF>(h, "sgemm_"), symbol<DgemmF>(h, "dgemm_"), nullptr, false});
  }
  if (void* h = dlopen("libblis.so.4", RTLD_NOW | RTLD_LOCAL)) {
    if (auto set = symbol<void (*)(long)>(h, "bli_thread_set_num_threads")) set(n);
    auto version = symbol<const char* (*)()>(h, "bli_info_get_version_str");
    libs.push_back({std::string("BLIS ") + (version ? version() : "?"), symbol<SgemmF>(h, "sgemm_"),
                    symbol<DgemmF>(h, "dgemm_"), nullptr, false});
  }
  if (void* h = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL)) {
    // oneDNN (Debian's: OpenMP) takes its threads from omp_set_num_threads, which
    // set_threads called when hspec was built with OpenMP.
    if (auto f = symbol<DnnlSgemmF>(h, "dnnl_sgemm"))
      libs.push_back({"oneDNN dnnl_sgemm", nullptr, nullptr, f, false});
  }
  std::fprintf(stderr, "%d threads, median of %d\n", n, reps);
  for (const Library& lib : libs) {
    if (lib.linked || lib.sgemm || lib.dnnl) measure<float>(lib, "fp32", reps);
    if (lib.linked || lib.dgemm) measure<double>(lib, "fp64", reps);
  }
  return 0;
}
