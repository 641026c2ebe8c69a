// Helpers shared by the libFuzzer targets: the readers take paths, so inputs go to files.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace hspec::fuzz {

// A per-process scratch path (libFuzzer -fork/-jobs run several processes side by side);
// tmpfs when there is one, since every input is written once.
inline std::string scratch_path(const char* tag) {
  const char* dir = std::getenv("HSPEC_FUZZ_TMP");
  if (!dir) dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return std::string(dir) + "/hspec_fuzz_" + tag + "_" + std::to_string(getpid());
}

inline void write_bytes(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();  // the harness itself is broken, not the reader
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}

}  // namespace hspec::fuzz
