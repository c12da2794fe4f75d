#include "kernels/packed.h"

#include <cstring>

#include "quant/i2s.h"
#include "quant/tq2_0.h"

namespace bitnet::kernels {

using gguf::TensorType;

bool packable(const WeightMatrix& w) {
  if (w.n_out <= 0 || w.k <= 0) return false;
  if (w.type == TensorType::F16) return true;
  return (w.type == TensorType::I2_S || w.type == TensorType::TQ2_0) && w.k % 256 == 0;
}

int64_t packed_tiles(const WeightMatrix& w) { return (w.n_out + kPackRows - 1) / kPackRows; }

size_t packed_size(const WeightMatrix& w) {
  const auto tiles = static_cast<size_t>(packed_tiles(w));
  if (w.type == TensorType::F16) return tiles * static_cast<size_t>(w.k) * kPackRows * 2;
  const auto nb = static_cast<size_t>(w.k / 256);
  const size_t scales = w.type == TensorType::TQ2_0 ? tiles * nb * kPackRows * 2 : 0;
  return tiles * nb * kPackedBlockBytes + scales;
}

namespace {

// The 64 packed bytes of one row's 256-element block (packed.h): byte j gets, in bits 2g..2g+1,
// the code of element 64g + j. Both file formats keep element 128h + 32s + m in byte m of the
// h-th 32-byte half, at a shift depending on s only (TQ2_0: 2s; I2_S: 6 - 2s), so element
// 64g + j sits in half g / 2, byte j % 32, with s = 2 (g % 2) + j / 32. Eight bytes at a time:
// every shift below moves bits inside a byte, and the masks keep exactly those.
void pack_row_block(const uint8_t* src, bool i2s, uint8_t* out) {
  constexpr uint64_t k03 = 0x0303030303030303ull, k0C = k03 << 2, k30 = k03 << 4, kC0 = k03 << 6;
  for (int w = 0; w < 4; ++w) {
    uint64_t lo, hi;  // bytes m = 8w..8w+7 of the two halves
    std::memcpy(&lo, src + 8 * w, 8);
    std::memcpy(&hi, src + 32 + 8 * w, 8);
    uint64_t first, second;  // packed bytes j = m (s = 0 / 2) and j = 32 + m (s = 1 / 3)
    if (i2s) {               // s -> shift 6, 4, 2, 0
      first = ((lo >> 6) & k03) | (lo & k0C) | ((hi >> 2) & k30) | ((hi << 4) & kC0);
      second = ((lo >> 4) & k03) | ((lo << 2) & k0C) | (hi & k30) | ((hi << 6) & kC0);
    } else {  // s -> shift 0, 2, 4, 6
      first = (lo & k03) | ((lo >> 2) & k0C) | ((hi << 4) & k30) | ((hi << 2) & kC0);
      second = ((lo >> 2) & k03) | ((lo >> 4) & k0C) | ((hi << 2) & k30) | (hi & kC0);
    }
    std::memcpy(out + 8 * w, &first, 8);
    std::memcpy(out + 32 + 8 * w, &second, 8);
  }
}

void pack_ternary(const WeightMatrix& w, uint8_t* dst, int64_t t0, int64_t t1) {
  const bool i2s = w.type == TensorType::I2_S;
  const int64_t nb = w.k / 256;
  auto* scales = reinterpret_cast<uint16_t*>(dst + packed_tiles(w) * nb * kPackedBlockBytes);
  uint8_t row_bytes[64];
  for (int64_t t = t0; t < t1; ++t) {
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* out = dst + (t * nb + b) * kPackedBlockBytes;
      for (int64_t l = 0; l < kPackRows; ++l) {
        const int64_t r = t * kPackRows + l;
        uint16_t d = 0;
        if (r < w.n_out) {
          // I2_S: 256-element block b is the file's 128-element blocks 2b and 2b + 1 (32 bytes
          // each, adjacent). TQ2_0: block b's 64 code bytes, then its f16 scale.
          const uint8_t* src =
              w.row(r) + (i2s ? b * 64 : b * static_cast<int64_t>(quant::kTq2BlockBytes));
          pack_row_block(src, i2s, row_bytes);
          if (!i2s) std::memcpy(&d, src + 64, 2);
        } else {
          std::memset(row_bytes, 0x55, sizeof row_bytes);  // code 1 = weight 0 (padding rows)
        }
        for (int v = 0; v < 16; ++v) std::memcpy(out + v * 64 + l * 4, row_bytes + 4 * v, 4);
        if (!i2s) scales[(t * nb + b) * kPackRows + l] = d;
      }
    }
  }
}

void pack_f16(const WeightMatrix& w, uint8_t* dst, int64_t t0, int64_t t1) {
  auto* out = reinterpret_cast<uint16_t*>(dst);
  for (int64_t t = t0; t < t1; ++t) {
    uint16_t* tile = out + t * w.k * kPackRows;
    for (int64_t l = 0; l < kPackRows; ++l) {
      const int64_t r = t * kPackRows + l;
      if (r >= w.n_out) {
        for (int64_t i = 0; i < w.k; ++i) tile[i * kPackRows + l] = 0;
        continue;
      }
      const uint8_t* src = w.row(r);
      for (int64_t i = 0; i < w.k; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        tile[i * kPackRows + l] = h;
      }
    }
  }
}

}  // namespace

void pack_tiles(const WeightMatrix& w, uint8_t* dst, int64_t tile_begin, int64_t tile_end) {
  if (w.type == TensorType::F16) {
    pack_f16(w, dst, tile_begin, tile_end);
  } else {
    pack_ternary(w, dst, tile_begin, tile_end);
  }
}

}  // namespace bitnet::kernels
