#include "quant/tq1_0.h"

#include "core/fp16.h"

namespace bitnet::quant {
namespace {

// The three runs of bytes in a block (see tq1_0.h). In each, byte `first_byte + m` holds the
// weights first_elem + m + k * stride for k < trits, where the stride is the run's length.
struct Run {
  size_t first_elem;
  size_t first_byte;
  size_t length;
  unsigned trits;
};
constexpr Run kRuns[] = {{0, 0, 32, 5}, {160, 32, 16, 5}, {240, 48, 4, 4}};
constexpr size_t kScaleOffset = 52;
constexpr unsigned kPow3[5] = {1, 3, 9, 27, 81};

uint8_t encode_trits(const int8_t* values, size_t stride, unsigned trits) {
  unsigned v = 0;
  for (unsigned k = 0; k < 5; ++k) {
    const unsigned digit = k < trits ? static_cast<unsigned>(values[k * stride] + 1) : 0;
    v = v * 3 + digit;
  }
  return static_cast<uint8_t>((v * 256 + 242) / 243);  // ceil(v * 256 / 243)
}

int8_t decode_trit(uint8_t byte, unsigned k) {
  const uint8_t shifted = static_cast<uint8_t>(byte * kPow3[k]);  // drop the first k trits
  return static_cast<int8_t>(((shifted * 3u) >> 8) - 1);
}

}  // namespace

void tq1_0_pack_block(const int8_t* values, uint16_t d, uint8_t* out) {
  for (const Run& r : kRuns) {
    for (size_t m = 0; m < r.length; ++m) {
      out[r.first_byte + m] = encode_trits(values + r.first_elem + m, r.length, r.trits);
    }
  }
  store_d(d, out + kScaleOffset);
}

uint16_t tq1_0_unpack_block(const uint8_t* bytes, int8_t* values) {
  for (const Run& r : kRuns) {
    for (size_t m = 0; m < r.length; ++m) {
      for (unsigned k = 0; k < r.trits; ++k) {
        values[r.first_elem + m + k * r.length] = decode_trit(bytes[r.first_byte + m], k);
      }
    }
  }
  return load_d(bytes + kScaleOffset);
}

const TqFormat kTq1Format = {"TQ1_0", kTq1BlockBytes, tq1_0_pack_block, tq1_0_unpack_block};

Status quantize_tq1_0(const float* x, size_t n, uint8_t* out) {
  return tq_quantize(kTq1Format, x, n, out);
}

Status pack_tq1_0(const int8_t* ternary, size_t n, const float* block_scales, uint8_t* out) {
  return tq_pack(kTq1Format, ternary, n, block_scales, out);
}

Status unpack_tq1_0(const uint8_t* bytes, size_t n, int8_t* out) {
  return tq_unpack(kTq1Format, bytes, n, out);
}

float tq1_0_block_scale(const uint8_t* bytes, size_t block) {
  return fp16_to_fp32(tq_block_d(kTq1Format, bytes, block));
}

Status dequantize_tq1_0(const uint8_t* bytes, size_t n, float* out) {
  return tq_dequantize(kTq1Format, bytes, n, out);
}

Status validate_tq1_0(const uint8_t* bytes, size_t n) { return tq_validate(kTq1Format, bytes, n); }

}  // namespace bitnet::quant
