// TQ1_0: llama.cpp's 1.6875 bits/weight ternary format (ggml type 34). Five trits share a byte
// (3^5 = 243 <= 256). Per 256 weights, 54 bytes:
//
//   [0, 32)   weights 0..159:   byte m holds weights m + 32k,       k = 0..4
//   [32, 48)  weights 160..239: byte 32 + m holds weights 160 + m + 16k, k = 0..4
//   [48, 52)  weights 240..255: byte 48 + j holds weights 240 + j + 4k,  k = 0..3 (5th trit 0)
//   [52, 54)  d, the block scale, fp16 little endian: weight = value * d.
//
// A byte stores the trits c_k = value + 1 as the base-3 fraction 0.c0c1c2c3c4 scaled to 256:
// byte = ceil(256 * sum c_k 3^(4-k) / 243). Multiplying by 3^k (mod 256) drops the first k
// trits, and (byte * 3) >> 8 reads the leading one; the ceiling keeps the truncation error on
// the safe side. Any byte decodes to valid trits, so TQ1_0 has no invalid codes; bytes a
// quantizer never writes (non-canonical) still decode, and re-packing canonicalises them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/result.h"
#include "quant/tq_common.h"

namespace bitnet::quant {

inline constexpr size_t kTq1BlockBytes = 54;

// Bytes taken by n elements (n a multiple of 256).
constexpr size_t tq1_0_nbytes(size_t n) { return n / kTqBlockElems * kTq1BlockBytes; }

// llama.cpp's quantizer (quantize_row_tq1_0_ref, what ggml_quantize_chunk writes); same rules
// and failures as quantize_tq2_0.
Status quantize_tq1_0(const float* x, size_t n, uint8_t* out);

// Packs ternary values with one fp16-exact scale per block; see pack_tq2_0.
Status pack_tq1_0(const int8_t* ternary, size_t n, const float* block_scales, uint8_t* out);

// Decodes the n values in {-1, 0, 1} without their scales.
Status unpack_tq1_0(const uint8_t* bytes, size_t n, int8_t* out);

// The scale of block `block` (elements [256 * block, 256 * block + 256)).
float tq1_0_block_scale(const uint8_t* bytes, size_t block);

// out[i] = value[i] * d of its block; bit-identical to ggml's dequantize_row_tq1_0.
Status dequantize_tq1_0(const uint8_t* bytes, size_t n, float* out);

// Ok when n is a multiple of 256 and every scale is finite.
Status validate_tq1_0(const uint8_t* bytes, size_t n);

// One block (no checks): 256 values in {-1, 0, 1} plus d (fp16 bits) <-> 54 bytes.
void tq1_0_pack_block(const int8_t* values, uint16_t d, uint8_t* out);
uint16_t tq1_0_unpack_block(const uint8_t* bytes, int8_t* values);

// The block geometry for the shared loops in tq_common.h.
extern const TqFormat kTq1Format;

}  // namespace bitnet::quant
