// The ARM64 Q8_0 head kernel (kernels/q8_0_head.h's layout: tiles of 16 rows, in each 32-element
// block 8 vectors of 64 bytes, vector v holding codes + 128 of elements 4v..4v+3 of each row),
// bit-exact with matmul_q8_0_head_ref. XOR 0x80 turns a stored code back into its signed value
// exactly, so no bias correction is needed. With the dot-product extension: SDOT by element
// (activation word v % 4 of q[16 (v / 4) ..]); without: SMULL products (|.| <= 128 x 128) widened
// into int32 right away (SADALP). The float work is the reference's, lane-wise:
//   sum += (float)acc_b * (d_w_b * d_x_b), blocks in order. Included by both ARM64 units.
#pragma once

#include <cstdint>

#include "kernels/arm64/neon_prelude.h"
#include "kernels/q8_0_head.h"

namespace bitnet::kernels {
namespace {

// One 32-element block of one tile against q[0..31]: rows 4j..4j+3 in acc[j].
inline void q8_0_block(const uint8_t* codes, const int8_t* q, int32x4_t acc[4]) {
  const uint8x16_t bias = vdupq_n_u8(0x80);
  const int8x16_t a[2] = {vld1q_s8(q), vld1q_s8(q + 16)};
#if defined(__ARM_FEATURE_DOTPROD)
  BITNET_UNROLL
  for (int j = 0; j < 4; ++j) acc[j] = vdupq_n_s32(0);
  auto step = [&]<int kLane>(const uint8_t* p, int8x16_t av) {
    BITNET_UNROLL
    for (int j = 0; j < 4; ++j) {
      const int8x16_t c = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(p + 16 * j), bias));
      acc[j] = vdotq_laneq_s32(acc[j], c, av, kLane);
    }
  };
  BITNET_UNROLL
  for (int h = 0; h < 2; ++h) {
    const uint8_t* p = codes + 256 * h;
    step.template operator()<0>(p, a[h]);
    step.template operator()<1>(p + 64, a[h]);
    step.template operator()<2>(p + 128, a[h]);
    step.template operator()<3>(p + 192, a[h]);
  }
#else
  int32x4_t lo[4], hi[4];
  BITNET_UNROLL
  for (int j = 0; j < 4; ++j) lo[j] = hi[j] = vdupq_n_s32(0);
  auto step = [&]<int kLane>(const uint8_t* p, int8x16_t av) {
    const int8x16_t b = vreinterpretq_s8_s32(vdupq_laneq_s32(vreinterpretq_s32_s8(av), kLane));
    BITNET_UNROLL
    for (int j = 0; j < 4; ++j) {
      const int8x16_t c = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(p + 16 * j), bias));
      lo[j] = vpadalq_s16(lo[j], vmull_s8(vget_low_s8(c), vget_low_s8(b)));  // rows 4j, 4j + 1
      hi[j] = vpadalq_s16(hi[j], vmull_high_s8(c, b));                       // rows 4j + 2, 4j + 3
    }
  };
  BITNET_UNROLL
  for (int h = 0; h < 2; ++h) {
    const uint8_t* p = codes + 256 * h;
    step.template operator()<0>(p, a[h]);
    step.template operator()<1>(p + 64, a[h]);
    step.template operator()<2>(p + 128, a[h]);
    step.template operator()<3>(p + 192, a[h]);
  }
  BITNET_UNROLL
  for (int j = 0; j < 4; ++j) acc[j] = vpaddq_s32(lo[j], hi[j]);
#endif
}

inline void q8_0_head_entry(const WeightMatrix& w, const QuantizedActivations& a, float* y,
                            int64_t o_begin, int64_t o_end) {
  if (o_begin >= o_end) return;
  const int64_t nb = w.k / kQ8_0Block;
  const float* act_scales = a.scales.data();
  alignas(16) float out[16];
  for (int64_t t = o_begin / 16; t * 16 < o_end; ++t) {
    const uint8_t* codes = q8_0_codes(w, t);
    const uint16_t* scales = q8_0_scales(w, t);
    const int64_t first = t * 16;
    const int64_t lo = first > o_begin ? first : o_begin;
    const int64_t hi = first + 16 < o_end ? first + 16 : o_end;
    for (int64_t r = 0; r < a.rows; ++r) {
      const int8_t* q = a.row(r);
      float32x4_t sum[4];
      BITNET_UNROLL
      for (int j = 0; j < 4; ++j) sum[j] = vdupq_n_f32(0.0f);
      for (int64_t b = 0; b < nb; ++b) {
        int32x4_t acc[4];
        q8_0_block(codes + b * kQ8_0TileBlockBytes, q + kQ8_0Block * b, acc);
        const float32x4_t dx = vdupq_n_f32(act_scales[r * nb + b]);
        BITNET_UNROLL
        for (int j = 0; j < 4; ++j) {
          const float32x4_t dw =
              vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(scales + 16 * b + 4 * j)));
          sum[j] = vaddq_f32(sum[j], vmulq_f32(vcvtq_f32_s32(acc[j]), vmulq_f32(dw, dx)));
        }
      }
      BITNET_UNROLL
      for (int j = 0; j < 4; ++j) vst1q_f32(out + 4 * j, sum[j]);
      for (int64_t o = lo; o < hi; ++o) y[r * w.n_out + o] = out[o - first];
    }
  }
}

}  // namespace
}  // namespace bitnet::kernels
