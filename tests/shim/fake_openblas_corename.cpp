// Test shim, loaded with LD_PRELOAD: makes OpenBLAS look as if it had picked its generic
// Prescott kernels (as Debian's 0.3.21 does on CPUs newer than its tables) until
// OPENBLAS_CORETYPE is set, so the core correction by re-execution runs end to end on any
// machine. With the variable set it answers what OpenBLAS really runs.
#include <dlfcn.h>

#include <cstdlib>

extern "C" char* openblas_get_corename() {
  static char prescott[] = "Prescott";
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr) return prescott;
  using Corename = char* (*)();
  auto real = reinterpret_cast<Corename>(dlsym(RTLD_NEXT, "openblas_get_corename"));
  static char unknown[] = "Unknown";
  return real != nullptr ? real() : unknown;
}
