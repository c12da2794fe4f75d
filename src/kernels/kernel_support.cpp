#include "kernels/kernel_support.h"

#include <cstdlib>
#include <new>

namespace bitnet::kernels::detail {

void shape_quantized(ActQuant kind, int64_t rows, int64_t k, QuantizedActivations* out) {
  out->kind = kind;
  out->rows = rows;
  out->k = k;
  out->q.resize(static_cast<size_t>(rows * k));
  if (kind == ActQuant::kPerTokenInt8) {
    out->scales.resize(static_cast<size_t>(rows));
    out->bsums.clear();
  } else {
    out->scales.resize(static_cast<size_t>(rows * (k / kQ8KBlock)));
    out->bsums.resize(static_cast<size_t>(rows * k / 16));
  }
}

namespace {

struct ScratchBuffer {
  void* data = nullptr;
  size_t size = 0;
  ~ScratchBuffer() { std::free(data); }
};

}  // namespace

void* scratch(int slot, size_t bytes) {
  thread_local ScratchBuffer buffers[kScratchSlots];
  ScratchBuffer& b = buffers[slot];
  if (b.size < bytes) {
    std::free(b.data);
    // Round up to whole cache lines (aligned_alloc needs a multiple of the alignment) and grow
    // geometrically so a slowly growing prompt does not reallocate every call.
    size_t want = (bytes + 63) & ~size_t{63};
    if (want < 2 * b.size) want = 2 * b.size;
    b.data = std::aligned_alloc(64, want);
    if (b.data == nullptr) throw std::bad_alloc();
    b.size = want;
  }
  return b.data;
}

}  // namespace bitnet::kernels::detail
