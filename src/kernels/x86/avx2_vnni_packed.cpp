// The avx2-vnni variant's kernels over the packed layouts (kernels/packed.h, q8_0_head.h): the
// AVX2 variant's loops with AVX-VNNI's VPDPBUSD (u8 x s8, four products added into an int32 lane)
// in place of VPMADDUBSW + VPADDW + VPMADDWD. Compiled with -mavxvnni (src/kernels/CMakeLists.txt)
// and reached only through avx2_vnni_table(), which dispatch.cpp offers where the CPU reports
// AVX-VNNI; internal linkage only, no standard library templates (see kernel_support.h).
//
// What VPDPBUSD changes: the int32 lanes never saturate, so no activation splitting (the Q8_0
// head's x = 16 xh + xl) and no int16 sums to widen every 8 vectors; one instruction per 32
// multiply-adds instead of two or three. The integers are the exact sums the AVX2 kernels and
// the scalar reference compute, and the float steps are theirs, lane-wise (separate multiply and
// add, -ffp-contract=off):
//   ternary TQ2_0: sum += (float)(acc_b - sum_q_b) * (d_act_b * d_w_b), blocks in order;
//   ternary I2_S:  y = ((float)(acc - sum_q) / s) * tensor_scale;
//   Q8_0 head:     sum += (float)acc_b * (d_w_b * d_x_b), blocks in order.
// VEX-encoded AVX-VNNI has only AVX's 16 vector registers and no broadcast memory operand, so the
// loops keep the AVX2 kernels' shapes (two units of 8 rows in decode, 4 activation rows in
// prompts).
#include <cstdint>

#include "core/bandwidth.h"
#include "kernels/x86/avx2_packed_drivers.h"
#include "kernels/x86/avx2_vnni_entries.h"

namespace bitnet::kernels::avx2vnni {
namespace {

using avx2::ActRows;
using avx2::bcast4;
using avx2::in_register;
using avx2::load32;
using avx2::Q8Rows;
using avx2::Unit;
using avx2::unit_vector;

inline __m256i dot(__m256i acc, __m256i u8, __m256i s8) {
  return _mm256_dpbusd_avx_epi32(acc, u8, s8);
}
// Sum of 32 signed bytes.
inline int32_t sum_32(const int8_t* q) {
  const __m256i acc = dot(_mm256_setzero_si256(), _mm256_set1_epi8(1), load32(q));
  const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
  const __m128i t = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  return _mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1)));
}

// ------------------------------------------------------------------ ternary

// A block's exact sum (TQ2_0: its float step; I2_S: added to tot).
template <bool kTq2>
inline void finish_block(__m256i acc, const ActRows& ar, int a, int64_t b, const uint16_t* scales,
                         __m256* sumf, __m256i* tot) {
  if constexpr (kTq2) {
    const __m256 dw =
        _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + kPackRows * b)));
    const __m256i iv = _mm256_sub_epi32(acc, _mm256_set1_epi32(ar.sum[a][b]));
    *sumf = _mm256_add_ps(*sumf, _mm256_mul_ps(_mm256_cvtepi32_ps(iv),
                                               _mm256_mul_ps(_mm256_set1_ps(ar.d[a][b]), dw)));
  } else {
    *tot = _mm256_add_epi32(*tot, acc);
  }
}

template <bool kTq2>
inline __m256 finish_row(__m256 sumf, __m256i tot, const ActRows& ar, int a,
                         const WeightMatrix& w) {
  if constexpr (kTq2) return sumf;
  const __m256i acc = _mm256_sub_epi32(tot, _mm256_set1_epi32(ar.sum[a][0]));
  return _mm256_mul_ps(_mm256_div_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(ar.d[a][0])),
                       _mm256_set1_ps(w.tensor_scale));
}

// The kernels drive_packed_ternary (avx2_packed_drivers.h) runs.
struct TernaryKernels {
  // Decode: NU units against the one activation row, every block of every unit in lockstep (each
  // unit whose half is 0 prefetches its tile's stream). Per unit four int32 chains, one per code
  // group (2-bit field g of each byte); groups 1 and 3 are taken as 4 x their codes (masked in
  // place: one shift per vector instead of three) and divided back exactly with an arithmetic
  // shift at the block's end. Writes out[u * 8 + lane].
  template <int NU, bool kTq2>
  static void decode(const WeightMatrix& w, const Unit* units, const ActRows& ar, float* out) {
    const int64_t nb = w.k / 256;
    const __m256i m3 = _mm256_set1_epi8(3), m12 = _mm256_set1_epi8(12);
    const uint8_t* codes[NU];
    const uint16_t* scales[NU];
    __m256 sumf[NU];
    __m256i tot[NU];
    BITNET_UNROLL
    for (int u = 0; u < NU; ++u) {
      codes[u] = packed_codes(w, units[u].tile) + 32 * units[u].half;
      scales[u] = kTq2 ? packed_block_scales(w, units[u].tile) + 8 * units[u].half : nullptr;
      sumf[u] = _mm256_setzero_ps();
      tot[u] = _mm256_setzero_si256();
    }
    const __m256i zero = _mm256_setzero_si256();
    for (int64_t b = 0; b < nb; ++b) {
      __m256i acc02[NU], acc13[NU];
      BITNET_UNROLL
      for (int u = 0; u < NU; ++u) acc02[u] = acc13[u] = _mm256_setzero_si256();
      const int8_t* q = ar.q[0] + 256 * b;
      BITNET_UNROLL
      for (int v = 0; v < 16; ++v) {
        const __m256i x0 = bcast4(q + 4 * v), x1 = bcast4(q + 64 + 4 * v),
                      x2 = bcast4(q + 128 + 4 * v), x3 = bcast4(q + 192 + 4 * v);
        BITNET_UNROLL
        for (int u = 0; u < NU; ++u) {
          const __m256i wv = unit_vector(codes[u], units[u], b, v), w4 = _mm256_srli_epi16(wv, 4);
          // Each vector's two products per sum start from zero and join the block's sum with one
          // add: a chain of VPDPBUSD through the block would wait on its latency every vector.
          acc02[u] =
              in_register(_mm256_add_epi32(acc02[u], dot(dot(zero, _mm256_and_si256(wv, m3), x0),
                                                         _mm256_and_si256(w4, m3), x2)));
          acc13[u] =
              in_register(_mm256_add_epi32(acc13[u], dot(dot(zero, _mm256_and_si256(wv, m12), x1),
                                                         _mm256_and_si256(w4, m12), x3)));
        }
      }
      BITNET_UNROLL
      for (int u = 0; u < NU; ++u) {
        const __m256i s = _mm256_add_epi32(acc02[u], _mm256_srai_epi32(acc13[u], 2));
        finish_block<kTq2>(s, ar, 0, b, scales[u], &sumf[u], &tot[u]);
      }
    }
    BITNET_UNROLL
    for (int u = 0; u < NU; ++u)
      _mm256_storeu_ps(out + u * 8, finish_row<kTq2>(sumf[u], tot[u], ar, 0, w));
  }

  // The prompt path: both halves of tile `tile` (16 output rows) against NA activation rows, for
  // out[a * 16 + row]. Each broadcast of 4 activations feeds both halves; the NA x 2 int32 sums
  // stay in registers for the block, the float sums live in memory (touched once per block).
  template <int NA, bool kTq2>
  static void prompt(const WeightMatrix& w, int64_t tile, const ActRows& ar, float* out) {
    const int64_t nb = w.k / 256;
    const __m256i m3 = _mm256_set1_epi8(3), zero = _mm256_setzero_si256();
    const uint8_t* codes = packed_codes(w, tile);
    const uint16_t* scales = kTq2 ? packed_block_scales(w, tile) : nullptr;
    __m256 sumf[NA][2];
    __m256i tot[NA][2];
    BITNET_UNROLL
    for (int a = 0; a < NA; ++a) BITNET_UNROLL
    for (int h = 0; h < 2; ++h) {
      sumf[a][h] = _mm256_setzero_ps();
      tot[a][h] = _mm256_setzero_si256();
    }
    for (int64_t b = 0; b < nb; ++b) {
      __m256i acc[NA][2];
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a) acc[a][0] = acc[a][1] = _mm256_setzero_si256();
      for (int v = 0; v < 16; ++v) {
        const uint8_t* p = codes + b * kPackedBlockBytes + 64 * v;
        _mm_prefetch(reinterpret_cast<const char*>(p) + kNearPrefetchBytes, _MM_HINT_T0);
        const __m256i w0 = load32(p), w1 = load32(p + 32);
        BITNET_UNROLL
        for (int g = 0; g < 4; g += 2) {
          const __m256i c0 = _mm256_and_si256(_mm256_srli_epi16(w0, 2 * g), m3),
                        c1 = _mm256_and_si256(_mm256_srli_epi16(w1, 2 * g), m3),
                        d0 = _mm256_and_si256(_mm256_srli_epi16(w0, 2 * g + 2), m3),
                        d1 = _mm256_and_si256(_mm256_srli_epi16(w1, 2 * g + 2), m3);
          BITNET_UNROLL
          for (int a = 0; a < NA; ++a) {
            const __m256i x = bcast4(ar.q[a] + 256 * b + 4 * v + 64 * g),
                          y = bcast4(ar.q[a] + 256 * b + 4 * v + 64 * g + 64);
            acc[a][0] = in_register(_mm256_add_epi32(acc[a][0], dot(dot(zero, c0, x), d0, y)));
            acc[a][1] = in_register(_mm256_add_epi32(acc[a][1], dot(dot(zero, c1, x), d1, y)));
          }
        }
      }
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a) BITNET_UNROLL
      for (int h = 0; h < 2; ++h) {
        finish_block<kTq2>(acc[a][h], ar, a, b, scales == nullptr ? nullptr : scales + 8 * h,
                           &sumf[a][h], &tot[a][h]);
      }
    }
    BITNET_UNROLL
    for (int a = 0; a < NA; ++a) BITNET_UNROLL
    for (int h = 0; h < 2; ++h)
      _mm256_storeu_ps(out + a * 16 + 8 * h, finish_row<kTq2>(sumf[a][h], tot[a][h], ar, a, w));
  }
};

// ------------------------------------------------------------------ Q8_0 head

// NT tiles x NA activation rows into out[(a * NT + t) * 16 + lane]. A tile block's 64-byte vector
// v is two 32-byte halves (rows 0-7, rows 8-15), each dword the 4 biased codes c = w + 128 of one
// row, VPDPBUSD's unsigned operand as they are; a sum starts at -128 sum(x) so that it ends as
// the block's exact sum(w x). Two chains per sum (even and odd vectors).
template <int NT, int NA>
inline void q8_0_tiles(const WeightMatrix& w, const int64_t* tiles, const Q8Rows& ar, float* out) {
  const int64_t nb = w.k / kQ8_0Block;
  const uint8_t* codes[NT];
  const uint16_t* scales[NT];
  BITNET_UNROLL
  for (int t = 0; t < NT; ++t) {
    codes[t] = q8_0_codes(w, tiles[t]);
    scales[t] = q8_0_scales(w, tiles[t]);
  }
  BITNET_UNROLL
  for (int i = 0; i < NA * NT * 16; i += 8) _mm256_storeu_ps(out + i, _mm256_setzero_ps());
  for (int64_t b = 0; b < nb; ++b) {
    BITNET_UNROLL
    for (int h = 0; h < 2; ++h) {
      __m256i acc[NA][NT][2];
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a) BITNET_UNROLL
      for (int t = 0; t < NT; ++t) {
        acc[a][t][0] = _mm256_set1_epi32(ar.bias[a][b]);
        acc[a][t][1] = _mm256_setzero_si256();
      }
      BITNET_UNROLL
      for (int v = 0; v < 8; ++v) {
        __m256i c[NT];
        BITNET_UNROLL
        for (int t = 0; t < NT; ++t) {
          const uint8_t* p = codes[t] + b * kQ8_0TileBlockBytes + 64 * v;
          if (h == 0)
            _mm_prefetch(reinterpret_cast<const char*>(p) + kNearPrefetchBytes, _MM_HINT_T0);
          c[t] = load32(p + 32 * h);
        }
        BITNET_UNROLL
        for (int a = 0; a < NA; ++a) {
          const __m256i x = bcast4(ar.x[a] + b * kQ8_0Block + 4 * v);
          BITNET_UNROLL
          for (int t = 0; t < NT; ++t) acc[a][t][v % 2] = dot(acc[a][t][v % 2], c[t], x);
        }
      }
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a) {
        const __m256 dx = _mm256_set1_ps(ar.d[a][b]);
        BITNET_UNROLL
        for (int t = 0; t < NT; ++t) {
          const __m256 dw = _mm256_cvtph_ps(
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales[t] + 16 * b + 8 * h)));
          const __m256i s = _mm256_add_epi32(acc[a][t][0], acc[a][t][1]);
          float* sum = out + (a * NT + t) * 16 + 8 * h;
          _mm256_storeu_ps(
              sum, _mm256_add_ps(_mm256_loadu_ps(sum),
                                 _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, dx))));
        }
      }
    }
  }
}

// The codes go to VPDPBUSD as they are; a block's sum starts from its bias, -128 x the sum of
// its codes.
struct Q8Kernels {
  static constexpr int64_t kPreparedBytes = 0;
  static void prepare(const int8_t* q, int64_t nb, int8_t*, int32_t* bias) {
    for (int64_t b = 0; b < nb; ++b) bias[b] = -128 * sum_32(q + b * kQ8_0Block);
  }
  template <int NT, int NA>
  static void tiles(const WeightMatrix& w, const int64_t* ts, const Q8Rows& ar, float* out) {
    q8_0_tiles<NT, NA>(w, ts, ar, out);
  }
};

}  // namespace

void packed_ternary(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
                    int64_t o_end) {
  avx2::drive_packed_ternary<TernaryKernels>(w, a, y, o_begin, o_end);
}

void q8_0_head(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
               int64_t o_end) {
  avx2::drive_q8_0_head<Q8Kernels>(w, a, y, o_begin, o_end);
}

}  // namespace bitnet::kernels::avx2vnni
