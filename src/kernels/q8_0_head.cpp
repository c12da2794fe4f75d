#include "kernels/q8_0_head.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/fp16.h"

namespace bitnet::kernels {

using gguf::TensorType;

size_t q8_0_head_size(int64_t k, int64_t n_out) {
  const auto tiles = static_cast<size_t>((n_out + 15) / 16),
             nb = static_cast<size_t>(k / kQ8_0Block);
  return tiles * nb * (kQ8_0TileBlockBytes + 16 * 2);
}

namespace {

// ggml's Q8_0 block quantization: d = max|v| / 127, q = roundf(v / d) (via id = 1 / d), d as
// f16. NaN inputs give code 0 (the block's d is NaN then, and so is every product with it).
inline uint16_t quantize_block(const float* v, int8_t* q) {
  float amax = 0.0f;
  for (int64_t i = 0; i < kQ8_0Block; ++i) amax = std::max(amax, std::fabs(v[i]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int64_t i = 0; i < kQ8_0Block; ++i) {
    const float r = std::round(v[i] * id);
    q[i] = std::isnan(r) ? int8_t{0} : static_cast<int8_t>(std::max(-128.0f, std::min(127.0f, r)));
  }
  return fp32_to_fp16(d);
}

}  // namespace

void q8_0_head_pack_tiles(const WeightMatrix& src, uint8_t* dst, int64_t tile_begin,
                          int64_t tile_end) {
  const int64_t k = src.k, nb = k / kQ8_0Block, tiles = (src.n_out + 15) / 16;
  auto* scales = reinterpret_cast<uint16_t*>(dst + tiles * nb * kQ8_0TileBlockBytes);
  std::vector<float> row(static_cast<size_t>(k));
  int8_t q[kQ8_0Block];
  for (int64_t t = tile_begin; t < tile_end; ++t) {
    for (int64_t l = 0; l < 16; ++l) {
      const int64_t r = t * 16 + l;
      if (r < src.n_out) {
        row_to_float(src, r, row.data());
      } else {
        std::fill(row.begin(), row.end(), 0.0f);  // padding rows: weight 0, d 0
      }
      for (int64_t b = 0; b < nb; ++b) {
        scales[(t * nb + b) * 16 + l] = quantize_block(row.data() + b * kQ8_0Block, q);
        uint8_t* out = dst + (t * nb + b) * kQ8_0TileBlockBytes;
        for (int64_t e = 0; e < kQ8_0Block; ++e) {
          out[(e / 4) * 64 + l * 4 + e % 4] = static_cast<uint8_t>(static_cast<int>(q[e]) + 128);
        }
      }
    }
  }
}

WeightMatrix q8_0_head_view(const uint8_t* packed, int64_t k, int64_t n_out) {
  WeightMatrix w;
  w.type = TensorType::Q8_0;
  w.k = k;
  w.n_out = n_out;
  w.packed = packed;
  return w;
}

void quantize_q8_0_ref(const float* x, int64_t rows, int64_t k, QuantizedActivations* out) {
  const int64_t nb = k / kQ8_0Block;
  out->kind = ActQuant::kQ8_0;
  out->rows = rows;
  out->k = k;
  out->q.resize(static_cast<size_t>(rows * k));
  out->scales.resize(static_cast<size_t>(rows * nb));
  out->bsums.clear();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t at = r * k + b * kQ8_0Block;
      out->scales[static_cast<size_t>(r * nb + b)] =
          fp16_to_fp32(quantize_block(x + at, out->q.data() + at));
    }
  }
}

float q8_0_head_row_ref(const WeightMatrix& w, int64_t o, const QuantizedActivations& a,
                        int64_t r) {
  const int64_t nb = w.k / kQ8_0Block, l = o % 16;
  const uint8_t* codes = q8_0_codes(w, o / 16);
  const uint16_t* scales = q8_0_scales(w, o / 16);
  const int8_t* q = a.row(r);
  float sum = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t acc = 0;
    for (int64_t e = 0; e < kQ8_0Block; ++e) {
      const int code =
          static_cast<int>(codes[b * kQ8_0TileBlockBytes + (e / 4) * 64 + l * 4 + e % 4]) - 128;
      acc += code * q[b * kQ8_0Block + e];
    }
    sum += static_cast<float>(acc) *
           (fp16_to_fp32(scales[b * 16 + l]) * a.scales[static_cast<size_t>(r * nb + b)]);
  }
  return sum;
}

void matmul_q8_0_head_ref(const WeightMatrix& w, const QuantizedActivations& a, float* y,
                          int64_t o_begin, int64_t o_end) {
  for (int64_t r = 0; r < a.rows; ++r)
    for (int64_t o = o_begin; o < o_end; ++o) y[r * w.n_out + o] = q8_0_head_row_ref(w, o, a, r);
}

}  // namespace bitnet::kernels
