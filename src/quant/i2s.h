// I2_S: bitnet.cpp's 2-bit ternary tensor format (x86 layout, the one in the official
// bitnet-b1.58-2B-4T GGUF). A tensor of n elements (n a multiple of 128) takes n/4 + 32 bytes:
//
//   [0, n/4)          2-bit codes, 0 -> -1, 1 -> 0, 2 -> +1, in blocks of 128 elements / 32
//                     bytes; byte i of a block holds elements i, i+32, i+64, i+96 in bits 7-6,
//                     5-4, 3-2, 1-0 (so a SIMD kernel gets 32 consecutive weights per shift).
//   [n/4, n/4 + 4)    one f32 scale for the whole tensor, little endian: weight = value * scale.
//   [n/4 + 4, +28)    padding; written as zeros, ignored when reading.
//
// Code 3 is never written. Decoding maps every code c to c - 1, so code 3 reads as +2: that is
// what bitnet.cpp's kernel computes with it (it multiplies by the raw code and subtracts the
// activation sum), so a model carrying code 3 decodes as the reference engine runs it.
// validate_i2s reports code 3 as an error for loaders that want to refuse such data.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/result.h"

namespace bitnet::quant {

inline constexpr size_t kI2sBlockElems = 128;
inline constexpr size_t kI2sBlockBytes = 32;
inline constexpr size_t kI2sTailBytes = 32;  // f32 scale + 28 bytes of padding

// Bytes taken by an I2_S tensor of n elements (n a multiple of 128).
constexpr size_t i2s_nbytes(size_t n) { return n / 4 + kI2sTailBytes; }

// Packs n ternary values (each -1, 0 or 1) and the tensor scale into out[0, i2s_nbytes(n)).
// Fails, writing nothing, if n is not a multiple of 128 or a value is not ternary.
Status pack_i2s(const int8_t* ternary, size_t n, float scale, uint8_t* out);

// Decodes the n codes of `bytes` to values code - 1 (in {-1, 0, 1}; +2 for code 3).
// Fails only if n is not a multiple of 128.
Status unpack_i2s(const uint8_t* bytes, size_t n, int8_t* out);

// The tensor scale stored after the codes. bytes must hold i2s_nbytes(n) bytes.
float i2s_scale(const uint8_t* bytes, size_t n);

// out[i] = value[i] * scale, in f32. Fails only if n is not a multiple of 128.
Status dequantize_i2s(const uint8_t* bytes, size_t n, float* out);

// Ok when n is a multiple of 128, no code is 3 and the scale is finite; otherwise says which
// rule failed and where (the first offending element).
Status validate_i2s(const uint8_t* bytes, size_t n);

// One 128-element block: 128 values in {-1, 0, 1, 2} <-> 32 bytes (no checks).
void i2s_pack_block(const int8_t* values, uint8_t* out);
void i2s_unpack_block(const uint8_t* bytes, int8_t* values);

}  // namespace bitnet::quant
