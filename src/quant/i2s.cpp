#include "quant/i2s.h"

#include <bit>
#include <cmath>
#include <cstring>

#include "quant/ternary.h"

namespace bitnet::quant {
namespace {

// Element i, i+32, i+64, i+96 of a block go to bits 7-6, 5-4, 3-2, 1-0 of byte i.
constexpr int kGroupStride = 32;
constexpr int shift_of_group(int g) { return 6 - 2 * g; }

Status check_count(size_t n) {
  if (n % kI2sBlockElems != 0) {
    return make_error("I2_S: element count %zu is not a multiple of %zu", n, kI2sBlockElems);
  }
  return {};
}

}  // namespace

void i2s_pack_block(const int8_t* values, uint8_t* out) {
  for (int i = 0; i < kGroupStride; ++i) {
    unsigned byte = 0;
    for (int g = 0; g < 4; ++g) {
      const unsigned code = static_cast<unsigned>(values[i + g * kGroupStride] + 1) & 3u;
      byte |= code << shift_of_group(g);
    }
    out[i] = static_cast<uint8_t>(byte);
  }
}

void i2s_unpack_block(const uint8_t* bytes, int8_t* values) {
  for (int i = 0; i < kGroupStride; ++i) {
    for (int g = 0; g < 4; ++g) {
      const int code = (bytes[i] >> shift_of_group(g)) & 3;
      values[i + g * kGroupStride] = static_cast<int8_t>(code - 1);
    }
  }
}

Status pack_i2s(const int8_t* ternary, size_t n, float scale, uint8_t* out) {
  BITNET_TRY(check_count(n));
  BITNET_TRY(validate_ternary(ternary, n));
  for (size_t b = 0; b < n / kI2sBlockElems; ++b) {
    i2s_pack_block(ternary + b * kI2sBlockElems, out + b * kI2sBlockBytes);
  }
  // Byte by byte so the file is little endian whatever the host is.
  const uint32_t bits = std::bit_cast<uint32_t>(scale);
  uint8_t* tail = out + n / 4;
  for (int k = 0; k < 4; ++k) tail[k] = static_cast<uint8_t>(bits >> (8 * k));
  std::memset(tail + 4, 0, kI2sTailBytes - 4);
  return {};
}

Status unpack_i2s(const uint8_t* bytes, size_t n, int8_t* out) {
  BITNET_TRY(check_count(n));
  for (size_t b = 0; b < n / kI2sBlockElems; ++b) {
    i2s_unpack_block(bytes + b * kI2sBlockBytes, out + b * kI2sBlockElems);
  }
  return {};
}

float i2s_scale(const uint8_t* bytes, size_t n) {
  const uint8_t* tail = bytes + n / 4;
  uint32_t bits = 0;
  for (int k = 0; k < 4; ++k) bits |= static_cast<uint32_t>(tail[k]) << (8 * k);
  return std::bit_cast<float>(bits);
}

Status dequantize_i2s(const uint8_t* bytes, size_t n, float* out) {
  BITNET_TRY(check_count(n));
  const float scale = i2s_scale(bytes, n);
  int8_t values[kI2sBlockElems];
  for (size_t b = 0; b < n / kI2sBlockElems; ++b) {
    i2s_unpack_block(bytes + b * kI2sBlockBytes, values);
    for (size_t i = 0; i < kI2sBlockElems; ++i) {
      out[b * kI2sBlockElems + i] = static_cast<float>(values[i]) * scale;
    }
  }
  return {};
}

Status validate_i2s(const uint8_t* bytes, size_t n) {
  BITNET_TRY(check_count(n));
  int8_t values[kI2sBlockElems];
  for (size_t b = 0; b < n / kI2sBlockElems; ++b) {
    i2s_unpack_block(bytes + b * kI2sBlockBytes, values);
    for (size_t i = 0; i < kI2sBlockElems; ++i) {
      if (values[i] == 2) {
        return make_error("I2_S: element %zu has the unused code 3", b * kI2sBlockElems + i);
      }
    }
  }
  const float scale = i2s_scale(bytes, n);
  if (!std::isfinite(scale)) return make_error("I2_S: scale is %g", scale);
  return {};
}

}  // namespace bitnet::quant
