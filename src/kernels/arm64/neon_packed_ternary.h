// The ARM64 ternary kernel over packed weights (kernels/packed.h: tiles of 16 output rows; in a
// 256-element block, 64-byte vector v holds 4 code bytes of each of the 16 rows, and bits 2g..2g+1
// of byte e of row l are the code of element 64g + 4v + e). Included by the two ARM64 kernel
// units, each compiled with its own flags: with the dot-product extension (__ARM_FEATURE_DOTPROD)
// the products are SDOT by element, without it SMLAL. Everything here has internal linkage, so
// the two units' copies never mix (see kernel_support.h).
//
// A 16-byte quarter j of a packed vector holds rows 4j..4j+3, one 4-byte word each, so both ways
// pair it with one word of 4 activations repeated:
//  - SDOT by element: lane i of the accumulator adds the 4 products of row 4j + i's word with
//    activation word `lane` of a 16-byte vector: the codes of group g against
//    q[64g + 16m .. + 15] with lane v % 4 (m = v / 4). Groups 1 and 3 are taken as 4 x their codes
//    (masked in place, one shift instead of three) into their own accumulator, divided back by 4
//    exactly with an arithmetic shift at the end of the block.
//  - SMLAL: int8 x int8 -> int16 products added into int16 lanes (lane = one row's element e):
//    a lane adds 16 vectors x 4 groups = 64 products of |c q| <= 3 x 128 per block, at most
//    24576 < 32767; pairwise widening adds (SADDLP, ADDP) then give each row's int32 sum.
// Codes are 0..3 (value + 1, as packed.h says), so the kernel sums c q and subtracts the block's
// sum of q: the exact integer sums of the reference. Its float work, lane-wise (separate multiply
// and add, -ffp-contract=off):
//   TQ2_0:  sum += (float)(acc_b - sum_q_b) * (d_act_b * d_w_b), blocks in order;
//   I2_S:   y = ((float)(acc - sum_q) / s) * tensor_scale.
#pragma once

#include <cstdint>

#include "kernels/arm64/neon_prelude.h"
#include "kernels/kernel_support.h"
#include "kernels/packed.h"

namespace bitnet::kernels {
namespace {

// Sum of 256 signed bytes (an int16 lane adds 32 of them: |.| <= 4096).
inline int32_t sum_256(const int8_t* q) {
  int16x8_t s = vdupq_n_s16(0);
  BITNET_UNROLL
  for (int i = 0; i < 16; ++i) s = vpadalq_s8(s, vld1q_s8(q + 16 * i));
  return vaddlvq_s16(s);
}

#if defined(__ARM_FEATURE_DOTPROD)

// Vector v = 4m + kLane of a block (p points at it) against the activations of its four groups
// (a[g] = q[64g + 16m .. +15]).
template <int kLane>
inline void dot_vector(const uint8_t* p, const int8x16_t a[4], int32x4_t lo[4], int32x4_t hi[4]) {
  const uint8x16_t m3 = vdupq_n_u8(3), m12 = vdupq_n_u8(12);
  BITNET_UNROLL
  for (int j = 0; j < 4; ++j) {
    const uint8x16_t wv = vld1q_u8(p + 16 * j), w4 = vshrq_n_u8(wv, 4);
    lo[j] = vdotq_laneq_s32(lo[j], vreinterpretq_s8_u8(vandq_u8(wv, m3)), a[0], kLane);
    lo[j] = vdotq_laneq_s32(lo[j], vreinterpretq_s8_u8(vandq_u8(w4, m3)), a[2], kLane);
    hi[j] = vdotq_laneq_s32(hi[j], vreinterpretq_s8_u8(vandq_u8(wv, m12)), a[1], kLane);
    hi[j] = vdotq_laneq_s32(hi[j], vreinterpretq_s8_u8(vandq_u8(w4, m12)), a[3], kLane);
  }
}

// The exact sums sum_e c_e q_e of one 256-element block of a tile: rows 4j..4j+3 in acc[j].
inline void block_sums(const uint8_t* codes, const int8_t* q, int32x4_t acc[4]) {
  int32x4_t lo[4], hi[4];
  BITNET_UNROLL
  for (int j = 0; j < 4; ++j) lo[j] = hi[j] = vdupq_n_s32(0);
  BITNET_UNROLL
  for (int m = 0; m < 4; ++m) {
    const int8x16_t a[4] = {vld1q_s8(q + 16 * m), vld1q_s8(q + 64 + 16 * m),
                            vld1q_s8(q + 128 + 16 * m), vld1q_s8(q + 192 + 16 * m)};
    const uint8_t* p = codes + 64 * 4 * m;
    dot_vector<0>(p, a, lo, hi);
    dot_vector<1>(p + 64, a, lo, hi);
    dot_vector<2>(p + 128, a, lo, hi);
    dot_vector<3>(p + 192, a, lo, hi);
  }
  BITNET_UNROLL
  for (int j = 0; j < 4; ++j) acc[j] = vaddq_s32(lo[j], vshrq_n_s32(hi[j], 2));
}

#else

// Activation word kLane of each group's vector, repeated over all four words.
template <int kLane>
inline void dot_vector(const uint8_t* p, const int8x16_t a[4], int16x8_t lo[4], int16x8_t hi[4]) {
  const uint8x16_t m3 = vdupq_n_u8(3);
  int8x16_t b[4];
  BITNET_UNROLL
  for (int g = 0; g < 4; ++g)
    b[g] = vreinterpretq_s8_s32(vdupq_laneq_s32(vreinterpretq_s32_s8(a[g]), kLane));
  BITNET_UNROLL
  for (int j = 0; j < 4; ++j) {
    const uint8x16_t wv = vld1q_u8(p + 16 * j);
    const int8x16_t c[4] = {vreinterpretq_s8_u8(vandq_u8(wv, m3)),
                            vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(wv, 2), m3)),
                            vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(wv, 4), m3)),
                            vreinterpretq_s8_u8(vshrq_n_u8(wv, 6))};
    BITNET_UNROLL
    for (int g = 0; g < 4; ++g) {
      lo[j] = vmlal_s8(lo[j], vget_low_s8(c[g]), vget_low_s8(b[g]));  // rows 4j, 4j + 1
      hi[j] = vmlal_high_s8(hi[j], c[g], b[g]);                       // rows 4j + 2, 4j + 3
    }
  }
}

inline void block_sums(const uint8_t* codes, const int8_t* q, int32x4_t acc[4]) {
  int16x8_t lo[4], hi[4];
  BITNET_UNROLL
  for (int j = 0; j < 4; ++j) lo[j] = hi[j] = vdupq_n_s16(0);
  BITNET_UNROLL
  for (int m = 0; m < 4; ++m) {
    const int8x16_t a[4] = {vld1q_s8(q + 16 * m), vld1q_s8(q + 64 + 16 * m),
                            vld1q_s8(q + 128 + 16 * m), vld1q_s8(q + 192 + 16 * m)};
    const uint8_t* p = codes + 64 * 4 * m;
    dot_vector<0>(p, a, lo, hi);
    dot_vector<1>(p + 64, a, lo, hi);
    dot_vector<2>(p + 128, a, lo, hi);
    dot_vector<3>(p + 192, a, lo, hi);
  }
  // lo[j]'s int16 lanes are (row 4j: elements 0..3, row 4j + 1: 0..3); SADDLP leaves two int32
  // halves per row, ADDP of the two vectors adds them in row order.
  BITNET_UNROLL
  for (int j = 0; j < 4; ++j) acc[j] = vpaddq_s32(vpaddlq_s16(lo[j]), vpaddlq_s16(hi[j]));
}

#endif

// One tile's 16 rows against one activation row q (scales d: TQ2_0 one per block, I2_S s in d[0];
// sums: TQ2_0 per block, I2_S the row's in sums[0]).
template <bool kTq2>
inline void tile_dot(const WeightMatrix& w, int64_t tile, const int8_t* q, const float* d,
                     const int32_t* sums, float out[kPackRows]) {
  const int64_t nb = w.k / 256;
  const uint8_t* codes = packed_codes(w, tile);
  const uint16_t* scales = kTq2 ? packed_block_scales(w, tile) : nullptr;
  float32x4_t sumf[4];
  int32x4_t tot[4];
  BITNET_UNROLL
  for (int j = 0; j < 4; ++j) {
    sumf[j] = vdupq_n_f32(0.0f);
    tot[j] = vdupq_n_s32(0);
  }
  for (int64_t b = 0; b < nb; ++b) {
    int32x4_t acc[4];
    block_sums(codes + b * kPackedBlockBytes, q + 256 * b, acc);
    if constexpr (kTq2) {
      const float32x4_t da = vdupq_n_f32(d[b]);
      const int32x4_t sq = vdupq_n_s32(sums[b]);
      BITNET_UNROLL
      for (int j = 0; j < 4; ++j) {
        const float32x4_t dw =
            vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(scales + kPackRows * b + 4 * j)));
        sumf[j] =
            vaddq_f32(sumf[j], vmulq_f32(vcvtq_f32_s32(vsubq_s32(acc[j], sq)), vmulq_f32(da, dw)));
      }
    } else {
      BITNET_UNROLL
      for (int j = 0; j < 4; ++j) tot[j] = vaddq_s32(tot[j], acc[j]);
    }
  }
  BITNET_UNROLL
  for (int j = 0; j < 4; ++j) {
    if constexpr (!kTq2) {
      const float32x4_t acc = vcvtq_f32_s32(vsubq_s32(tot[j], vdupq_n_s32(sums[0])));
      sumf[j] = vmulq_f32(vdivq_f32(acc, vdupq_n_f32(d[0])), vdupq_n_f32(w.tensor_scale));
    }
    vst1q_f32(out + 4 * j, sumf[j]);
  }
}

// The packed_ternary entry of both ARM64 units: tile by tile, each activation row against the
// tile (its codes stay in cache for the next row).
inline void packed_ternary_impl(const WeightMatrix& w, const QuantizedActivations& a, float* y,
                                int64_t o_begin, int64_t o_end) {
  if (o_begin >= o_end || a.rows == 0) return;
  const bool i2s = w.type == gguf::TensorType::I2_S;
  const int64_t m = a.rows, nb = w.k / 256;
  const int32_t* sums = detail::ternary_code_sums(a, i2s, 1, sum_256);
  const float* scales = a.scales.data();
  alignas(16) float out[kPackRows];
  for (int64_t t = o_begin / kPackRows; t * kPackRows < o_end; ++t) {
    const int64_t first = t * kPackRows;
    const int64_t lo = first > o_begin ? first : o_begin;
    const int64_t hi = first + kPackRows < o_end ? first + kPackRows : o_end;
    for (int64_t r = 0; r < m; ++r) {
      if (i2s) {
        tile_dot<false>(w, t, a.row(r), scales + r, sums + r * nb, out);
      } else {
        tile_dot<true>(w, t, a.row(r), scales + r * nb, sums + r * nb, out);
      }
      for (int64_t o = lo; o < hi; ++o) y[r * w.n_out + o] = out[o - first];
    }
  }
}

}  // namespace
}  // namespace bitnet::kernels
