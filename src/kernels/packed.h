// Weight layouts repacked at load for the AVX-512 kernels. The file's layouts stay the
// specification: the scalar reference reads them, the mapping is kept (so it still can), and
// the packed kernels are tested bit-exact against it.
//
// Why repack: in the file, TQ2_0 blocks are 66 bytes (most 64-byte loads straddle two cache
// lines and each output row's block scale has to be gathered), I2_S and TQ2_0 codes need a
// permuted activation row, and an F16 matrix must be transposed in registers so that the
// vector lanes hold output rows (the exact head sums every row in element order, so rows, not
// elements, are what a lane can hold). Repacked, each kernel reads one aligned sequential
// stream whose every 64-byte vector already holds 16 output rows.
//
// Output rows are grouped in tiles of kPackRows = 16 (the last tile padded with zero weights).
//
//  Ternary (I2_S, TQ2_0; k % 256 == 0), per tile and 256-element block b, 1024 bytes:
//    vector v (0..15), lane l (0..15), byte e (0..3) holds byte j = 4v + e of row 16t + l's
//    block, whose bits 2g..2g+1 (g = 0..3) are the code (value + 1: 0, 1, 2; 3 = +2 as the
//    readers of both formats decode it) of element 256b + 64g + j. So vector v masked to group g
//    pairs with the four activations q[256b + 64g + 4v .. +3], the same for every lane: one
//    VPDPBUSD with a broadcast activation dword adds 4 products to each of 16 rows.
//    TQ2_0 then stores the block scales: per tile and block, 16 f16 in row order, after all codes.
//  F16, per tile and element i: the 16 rows' f16 values (32 bytes).
//
// Sizes equal the file's (TQ2_0: a 66-byte block becomes 64 + 2 bytes; I2_S: the tensor scale
// lives in WeightMatrix), so a packed model whose file pages are released costs no more memory
// than the mapped file did.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/matmul.h"

namespace bitnet::kernels {

inline constexpr int64_t kPackRows = 16;
inline constexpr int64_t kPackedBlockBytes = 1024;  // ternary: one tile x 256 elements of codes

// Whether `w` has a packed layout (I2_S / TQ2_0 with k % 256 == 0, F16).
bool packable(const WeightMatrix& w);
int64_t packed_tiles(const WeightMatrix& w);
size_t packed_size(const WeightMatrix& w);
// Writes tiles [tile_begin, tile_end) of w's packed layout into dst (packed_size(w) bytes;
// tiles may be written by different threads).
void pack_tiles(const WeightMatrix& w, uint8_t* dst, int64_t tile_begin, int64_t tile_end);

// Offsets into a packed ternary matrix.
inline const uint8_t* packed_codes(const WeightMatrix& w, int64_t tile) {
  return w.packed + tile * (w.k / 256) * kPackedBlockBytes;
}
inline const uint16_t* packed_block_scales(const WeightMatrix& w, int64_t tile) {
  const int64_t nb = w.k / 256;
  return reinterpret_cast<const uint16_t*>(w.packed + packed_tiles(w) * nb * kPackedBlockBytes) +
         tile * nb * kPackRows;
}

// Element i of row r of a packed F16 matrix.
inline uint16_t packed_f16_at(const WeightMatrix& w, int64_t r, int64_t i) {
  const auto* p = reinterpret_cast<const uint16_t*>(w.packed);
  return p[((r / kPackRows) * w.k + i) * kPackRows + r % kPackRows];
}

}  // namespace bitnet::kernels
