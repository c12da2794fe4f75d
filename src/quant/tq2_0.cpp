#include "quant/tq2_0.h"

#include "core/fp16.h"

namespace bitnet::quant {
namespace {

constexpr size_t kHalfElems = 128;
constexpr size_t kHalfBytes = 32;
constexpr size_t kScaleOffset = 64;

}  // namespace

void tq2_0_pack_block(const int8_t* values, uint16_t d, uint8_t* out) {
  for (size_t h = 0; h < 2; ++h) {
    const int8_t* v = values + h * kHalfElems;
    for (size_t m = 0; m < kHalfBytes; ++m) {
      unsigned byte = 0;
      for (unsigned k = 0; k < 4; ++k) {
        byte |= (static_cast<unsigned>(v[m + k * kHalfBytes] + 1) & 3u) << (2 * k);
      }
      out[h * kHalfBytes + m] = static_cast<uint8_t>(byte);
    }
  }
  store_d(d, out + kScaleOffset);
}

uint16_t tq2_0_unpack_block(const uint8_t* bytes, int8_t* values) {
  for (size_t h = 0; h < 2; ++h) {
    int8_t* v = values + h * kHalfElems;
    for (size_t m = 0; m < kHalfBytes; ++m) {
      const unsigned byte = bytes[h * kHalfBytes + m];
      for (unsigned k = 0; k < 4; ++k) {
        v[m + k * kHalfBytes] = static_cast<int8_t>(static_cast<int>((byte >> (2 * k)) & 3u) - 1);
      }
    }
  }
  return load_d(bytes + kScaleOffset);
}

const TqFormat kTq2Format = {"TQ2_0", kTq2BlockBytes, tq2_0_pack_block, tq2_0_unpack_block};

Status quantize_tq2_0(const float* x, size_t n, uint8_t* out) {
  return tq_quantize(kTq2Format, x, n, out);
}

Status pack_tq2_0(const int8_t* ternary, size_t n, const float* block_scales, uint8_t* out) {
  return tq_pack(kTq2Format, ternary, n, block_scales, out);
}

Status unpack_tq2_0(const uint8_t* bytes, size_t n, int8_t* out) {
  return tq_unpack(kTq2Format, bytes, n, out);
}

float tq2_0_block_scale(const uint8_t* bytes, size_t block) {
  return fp16_to_fp32(tq_block_d(kTq2Format, bytes, block));
}

Status dequantize_tq2_0(const uint8_t* bytes, size_t n, float* out) {
  return tq_dequantize(kTq2Format, bytes, n, out);
}

Status validate_tq2_0(const uint8_t* bytes, size_t n) { return tq_validate(kTq2Format, bytes, n); }

}  // namespace bitnet::quant
