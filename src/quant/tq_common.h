// Pieces shared by llama.cpp's two ternary block formats, TQ1_0 and TQ2_0: both cut a tensor
// (rows laid end to end; a row is a whole number of blocks) into blocks of 256 weights with one
// fp16 scale each, and both quantize floats the same way before packing the trits differently.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/result.h"

namespace bitnet::quant {

inline constexpr size_t kTqBlockElems = 256;  // ggml's QK_K

// Ok when n is a whole number of 256-element blocks; `type` names the format in the message.
Status check_tq_count(size_t n, const char* type);

// llama.cpp's reference ternarisation of one block (quantize_row_tq{1,2}_0_ref): d = max |x|,
// t[i] = round-half-away(x[i] * (1/d)) in {-1, 0, 1} (all 0 when d == 0). Returns d as fp16
// bits; note the trits use the f32 d, not the fp16-rounded one, exactly as ggml does.
// x must be finite (callers check): ggml's result for NaN depends on where the NaN sits.
uint16_t ternarize_block_absmax(const float* x, int8_t* t);

// The fp16 bits of `scale` when converting it to fp16 and back gives the same f32 bits, so
// that packing with it stores exactly the weights the caller asked for; otherwise an error.
Result<uint16_t> exact_fp16(float scale);

// A TQ block format: its block size and how one block of 256 values + fp16 scale is laid out.
// The tensor-level loops below are the same for TQ1_0 and TQ2_0; tq1_0.h / tq2_0.h wrap them.
struct TqFormat {
  const char* name;  // "TQ1_0", for messages
  size_t block_bytes;
  // values: 256 entries in {-1, 0, 1} (TQ2_0 also encodes 2, as code 3); d: fp16 bits.
  void (*pack_block)(const int8_t* values, uint16_t d, uint8_t* out);
  // Returns the block's d (fp16 bits).
  uint16_t (*unpack_block)(const uint8_t* bytes, int8_t* values);
};

// Both formats end a block with d as fp16, little endian (written byte by byte, so the files
// are the same on any host).
inline uint16_t load_d(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline void store_d(uint16_t d, uint8_t* p) {
  p[0] = static_cast<uint8_t>(d);
  p[1] = static_cast<uint8_t>(d >> 8);
}

// The fp16 scale (d) of block `block`.
inline uint16_t tq_block_d(const TqFormat& f, const uint8_t* bytes, size_t block) {
  return load_d(bytes + (block + 1) * f.block_bytes - 2);
}

Status tq_quantize(const TqFormat& f, const float* x, size_t n, uint8_t* out);
Status tq_pack(const TqFormat& f, const int8_t* ternary, size_t n, const float* block_scales,
               uint8_t* out);
Status tq_unpack(const TqFormat& f, const uint8_t* bytes, size_t n, int8_t* out);
Status tq_dequantize(const TqFormat& f, const uint8_t* bytes, size_t n, float* out);
Status tq_validate(const TqFormat& f, const uint8_t* bytes, size_t n);

}  // namespace bitnet::quant
