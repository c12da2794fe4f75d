// TQ2_0: llama.cpp's 2.0625 bits/weight ternary format (ggml type 35). Per 256 weights, 66
// bytes:
//
//   [0, 64)   2-bit codes (0 -> -1, 1 -> 0, 2 -> +1), two halves of 128 weights / 32 bytes;
//             byte m of half h holds weights 128h + m + 32k in bits 2k+1..2k (k = 0..3). Same
//             grouping as I2_S but with the first weight in the LOW bits, not the high ones.
//   [64, 66)  d, the block scale, fp16 little endian: weight = value * d.
//
// Code 3 is never written; like ggml's dequantize_row_tq2_0 (which computes code - 1), every
// reader here decodes it as +2. validate_tq2_0 reports it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/result.h"
#include "quant/tq_common.h"

namespace bitnet::quant {

inline constexpr size_t kTq2BlockBytes = 66;

// Bytes taken by n elements (n a multiple of 256).
constexpr size_t tq2_0_nbytes(size_t n) { return n / kTqBlockElems * kTq2BlockBytes; }

// llama.cpp's quantizer (quantize_row_tq2_0_ref, what ggml_quantize_chunk writes): per block,
// d = fp16(max |x|), values round(x / max |x|). Byte-identical to it for finite input; fails on
// NaN or infinite input (ggml's output for those is an artefact) and on n % 256 != 0.
Status quantize_tq2_0(const float* x, size_t n, uint8_t* out);

// Packs ternary values with one scale per block (n / 256 of them). Each scale must be exactly
// representable in fp16 (e.g. a power of two), so the stored weights are exactly the requested
// ones; fails otherwise, or on a non-ternary value, writing nothing.
Status pack_tq2_0(const int8_t* ternary, size_t n, const float* block_scales, uint8_t* out);

// Decodes the n values (code - 1) without their scales.
Status unpack_tq2_0(const uint8_t* bytes, size_t n, int8_t* out);

// The scale of block `block` (elements [256 * block, 256 * block + 256)).
float tq2_0_block_scale(const uint8_t* bytes, size_t block);

// out[i] = value[i] * d of its block; bit-identical to ggml's dequantize_row_tq2_0.
Status dequantize_tq2_0(const uint8_t* bytes, size_t n, float* out);

// Ok when n is a multiple of 256, no code is 3 and every scale is finite.
Status validate_tq2_0(const uint8_t* bytes, size_t n);

// One block (no checks): 256 values in {-1, 0, 1, 2} plus d (fp16 bits) <-> 66 bytes.
void tq2_0_pack_block(const int8_t* values, uint16_t d, uint8_t* out);
uint16_t tq2_0_unpack_block(const uint8_t* bytes, int8_t* values);

// The block geometry for the shared loops in tq_common.h.
extern const TqFormat kTq2Format;

}  // namespace bitnet::quant
