// Column-major block views (n x k, leading dimension ld) and where their memory lives.
#pragma once
#include <cstdint>

namespace hspec {

enum class Where { Host, Device };

// A non-owning view of an n x k column-major block. Column j starts at data + j * ld.
// The memory may be on the host or on a device; only code of the matching backend
// dereferences it.
template <class T>
struct BlockView {
  T* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t ld = 0;

  BlockView() = default;
  BlockView(T* d, int64_t r, int64_t c, int64_t l) : data(d), rows(r), cols(c), ld(l) {}
  BlockView(T* d, int64_t r, int64_t c) : data(d), rows(r), cols(c), ld(r) {}

  // Columns [j0, j0 + n) of this block.
  BlockView columns(int64_t j0, int64_t n) const { return BlockView(data + j0 * ld, rows, n, ld); }
  T* col(int64_t j) const { return data + j * ld; }
  bool empty() const { return rows == 0 || cols == 0; }

  // A read-only view of the same memory.
  operator BlockView<const T>() const { return BlockView<const T>(data, rows, cols, ld); }
};

}  // namespace hspec
