// Helpers the ISA translation units call instead of instantiating standard-library containers
// themselves. An inline or template function instantiated in a file compiled with -mavx512f may
// be emitted there as a weak symbol, and the linker may then use that copy everywhere - also on
// CPUs without AVX-512 (likewise +dotprod on ARM64). So x86/*.cpp and arm64/*.cpp only touch
// std::vector through data()/operator[] and get memory from here (this file is compiled with the
// baseline flags).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/activations.h"

namespace bitnet::kernels::detail {

// Largest row length the SIMD ternary kernels accept. Their widest int32 lane (the AVX-512 I2_S
// GEMV, which keeps weight codes pre-shifted by up to 6 bits) grows by at most 384 per element,
// so k <= 2^22 keeps every lane below 2^31 (see x86/avx512_kernels.cpp). Longer rows fall back to
// the scalar reference, whose own int32 accumulator is safe up to 2^23.
inline constexpr int64_t kMaxSimdK = int64_t{1} << 22;

// Sizes out's arrays exactly as quantize_activations_ref does (q: rows*k, scales, bsums) and sets
// kind/rows/k. The caller fills every element.
void shape_quantized(ActQuant kind, int64_t rows, int64_t k, QuantizedActivations* out);

// A 64-byte aligned buffer of at least `bytes` bytes owned by the calling thread, one per slot
// (0 <= slot < kScratchSlots); reused across calls, so a kernel must not hold it across another
// kernel call on the same slot.
inline constexpr int kScratchSlots = 4;
void* scratch(int slot, size_t bytes);

namespace {

// The activation code sums the packed ternary kernels subtract (they take the weight codes
// unsigned, w + 1): per row and block of 256 for TQ2_0, per row for I2_S (then in the row's first
// slot), held in scratch slot `slot`. sum_256 is the calling unit's own vector sum of 256 codes;
// internal linkage, so each unit keeps its own copy built with its own flags.
template <class Sum256>
inline int32_t* ternary_code_sums(const QuantizedActivations& a, bool per_row, int slot,
                                  Sum256 sum_256) {
  const int64_t nb = a.k / 256;
  auto* sums = static_cast<int32_t*>(scratch(slot, static_cast<size_t>(a.rows * nb) * 4));
  for (int64_t r = 0; r < a.rows; ++r) {
    int32_t total = 0;
    for (int64_t b = 0; b < nb; ++b) {
      sums[r * nb + b] = sum_256(a.row(r) + 256 * b);
      total += sums[r * nb + b];
    }
    if (per_row) sums[r * nb] = total;
  }
  return sums;
}

}  // namespace
}  // namespace bitnet::kernels::detail
