// AVX2 kernel over packed ternary weights (kernels/packed.h: tiles of 16 output rows, each
// 64-byte vector of a 256-element block holding 4 code bytes of each of the 16 rows). Compiled
// with AVX2 flags (src/kernels/CMakeLists.txt) and reached through the AVX2 table's ternary entry
// when the model was repacked at load; internal linkage only, no standard library templates
// (see kernel_support.h).
//
// Why a packed kernel for AVX2 too: reading the file's layout a tile is 8-16 separate row
// streams, TQ2_0's 66-byte blocks straddle cache lines and each row's block scale is gathered;
// streaming from memory that kernel reached 40% of the DRAM read bandwidth where the packed
// AVX-512 kernel reaches all of it. Packed, a tile is one sequential stream.
//
// A 32-byte half of a packed vector holds 8 rows (half h: rows 8h..8h+7), one dword each, so
// VPMADDUBSW of the codes of group g (unsigned) with a broadcast dword of 4 activations gives per
// row two int16 sums of 2 products. Groups 0 and 2 are taken as codes (at most 3: |.| <= 768),
// groups 1 and 3 as 4 x their codes (masked in place, at most 12: |.| <= 3072), which saves two
// shifts per vector. The x4 sums of 4 vectors (|.| <= 24576) are divided back by 4 exactly with
// an arithmetic shift and join the others; half a block then holds at most 8 x 1536 + 2 x 6144 =
// 24576 in int16 before VPMADDWD widens it to int32: the exact integer sums, as the reference's.
// (That is decode's path; the prompt path takes every group as codes, and half a block holds at
// most 4 groups x 8 vectors x 768 = 24576 as well.)
// The float work is the reference's, lane-wise (separate multiply and add, -ffp-contract=off):
//   TQ2_0:  sum += (float)(acc_b - sum_q_b) * (d_act_b * d_w_b), blocks in order;
//   I2_S:   y = ((float)(acc - sum_q) / s) * tensor_scale.
#include <cstdint>

#include "core/bandwidth.h"
#include "kernels/x86/avx2_packed_drivers.h"
#include "kernels/x86/avx2_packed_entries.h"

namespace bitnet::kernels::avx2 {
namespace {

// The kernels drive_packed_ternary (avx2_packed_drivers.h) runs.
struct TernaryKernels {
  // Decode: NU units against the one activation row, every block of every unit in lockstep (each
  // unit whose half is 0 prefetches its tile's stream: decode runs two tiles, i.e. two streams, at
  // once). Writes out[u * 8 + lane].
  template <int NU, bool kTq2>
  static void decode(const WeightMatrix& w, const Unit* units, const ActRows& ar, float* out) {
    const int64_t nb = w.k / 256;
    const __m256i m3 = _mm256_set1_epi8(3), m12 = _mm256_set1_epi8(12),
                  ones16 = _mm256_set1_epi16(1);
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
    for (int64_t b = 0; b < nb; ++b) {
      __m256i acc32[NU];
      BITNET_UNROLL
      for (int u = 0; u < NU; ++u) acc32[u] = _mm256_setzero_si256();
      BITNET_UNROLL
      for (int part = 0; part < 2; ++part) {
        __m256i acc16[NU], hi16[NU];
        BITNET_UNROLL
        for (int u = 0; u < NU; ++u) acc16[u] = _mm256_setzero_si256();
        BITNET_UNROLL
        for (int v = 8 * part; v < 8 * part + 8; ++v) {
          if (v % 4 == 0) {
            BITNET_UNROLL
            for (int u = 0; u < NU; ++u) hi16[u] = _mm256_setzero_si256();
          }
          BITNET_UNROLL
          for (int u = 0; u < NU; ++u) {
            // Groups 1 and 3 stay 4 times their codes (at most 12): one shift instead of three.
            const __m256i wv = unit_vector(codes[u], units[u], b, v), w4 = _mm256_srli_epi16(wv, 4);
            const __m256i c0 = _mm256_and_si256(wv, m3), c1x4 = _mm256_and_si256(wv, m12),
                          c2 = _mm256_and_si256(w4, m3), c3x4 = _mm256_and_si256(w4, m12);
            const int8_t* q = ar.q[0] + 256 * b + 4 * v;
            acc16[u] = in_register(_mm256_add_epi16(
                acc16[u], _mm256_add_epi16(_mm256_maddubs_epi16(c0, bcast4(q)),
                                           _mm256_maddubs_epi16(c2, bcast4(q + 128)))));
            hi16[u] = in_register(_mm256_add_epi16(
                hi16[u], _mm256_add_epi16(_mm256_maddubs_epi16(c1x4, bcast4(q + 64)),
                                          _mm256_maddubs_epi16(c3x4, bcast4(q + 192)))));
          }
          if (v % 4 == 3) {  // every hi16 lane is a multiple of 4: the shift is exact
            BITNET_UNROLL
            for (int u = 0; u < NU; ++u)
              acc16[u] = _mm256_add_epi16(acc16[u], _mm256_srai_epi16(hi16[u], 2));
          }
        }
        BITNET_UNROLL
        for (int u = 0; u < NU; ++u)
          acc32[u] = _mm256_add_epi32(acc32[u], _mm256_madd_epi16(acc16[u], ones16));
      }
      BITNET_UNROLL
      for (int u = 0; u < NU; ++u) {
        if constexpr (kTq2) {
          const __m256 dw = _mm256_cvtph_ps(
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales[u] + kPackRows * b)));
          const __m256i iv = _mm256_sub_epi32(acc32[u], _mm256_set1_epi32(ar.sum[0][b]));
          sumf[u] = _mm256_add_ps(
              sumf[u],
              _mm256_mul_ps(_mm256_cvtepi32_ps(iv), _mm256_mul_ps(_mm256_set1_ps(ar.d[0][b]), dw)));
        } else {
          tot[u] = _mm256_add_epi32(tot[u], acc32[u]);
        }
      }
    }
    BITNET_UNROLL
    for (int u = 0; u < NU; ++u) {
      if constexpr (!kTq2) {
        const __m256i acc = _mm256_sub_epi32(tot[u], _mm256_set1_epi32(ar.sum[0][0]));
        sumf[u] = _mm256_mul_ps(_mm256_div_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(ar.d[0][0])),
                                _mm256_set1_ps(w.tensor_scale));
      }
      _mm256_storeu_ps(out + u * 8, sumf[u]);
    }
  }

  // The prompt path: both halves of tile `tile` (16 output rows) against NA activation rows, for
  // out[a * 16 + row]. Each broadcast of 4 activations feeds both halves, and only the int16 sums
  // stay in registers (NA x 2 of them, 8 for 4 rows: with the codes, the broadcast and the mask,
  // AVX2's 16 registers are enough); a block's int32 sums and the float sums live in memory, where
  // they are touched once per 8 vectors. Same integers and the same float steps as decode.
  template <int NA, bool kTq2>
  static void prompt(const WeightMatrix& w, int64_t tile, const ActRows& ar, float* out) {
    const int64_t nb = w.k / 256;
    const __m256i m3 = _mm256_set1_epi8(3), ones16 = _mm256_set1_epi16(1);
    const uint8_t* codes = packed_codes(w, tile);
    const uint16_t* scales = kTq2 ? packed_block_scales(w, tile) : nullptr;
    alignas(32) float sumf[NA][16] = {};
    alignas(32) int32_t tot[NA][16] = {};
    for (int64_t b = 0; b < nb; ++b) {
      alignas(32) int32_t acc32[NA][16];
      BITNET_UNROLL
      for (int part = 0; part < 2; ++part) {
        __m256i acc16[NA][2];
        BITNET_UNROLL
        for (int a = 0; a < NA; ++a) acc16[a][0] = acc16[a][1] = _mm256_setzero_si256();
        for (int v = 8 * part; v < 8 * part + 8; ++v) {
          const uint8_t* p = codes + b * kPackedBlockBytes + 64 * v;
          _mm_prefetch(reinterpret_cast<const char*>(p) + kNearPrefetchBytes, _MM_HINT_T0);
          const __m256i w0 = load32(p), w1 = load32(p + 32);
          BITNET_UNROLL
          for (int g = 0; g < 4; ++g) {
            const __m256i c0 = _mm256_and_si256(_mm256_srli_epi16(w0, 2 * g), m3),
                          c1 = _mm256_and_si256(_mm256_srli_epi16(w1, 2 * g), m3);
            BITNET_UNROLL
            for (int a = 0; a < NA; ++a) {
              const __m256i q = bcast4(ar.q[a] + 256 * b + 4 * v + 64 * g);
              acc16[a][0] = in_register(_mm256_add_epi16(acc16[a][0], _mm256_maddubs_epi16(c0, q)));
              acc16[a][1] = in_register(_mm256_add_epi16(acc16[a][1], _mm256_maddubs_epi16(c1, q)));
            }
          }
        }
        BITNET_UNROLL
        for (int a = 0; a < NA; ++a) BITNET_UNROLL
        for (int h = 0; h < 2; ++h) {
          __m256i* dst = reinterpret_cast<__m256i*>(acc32[a] + 8 * h);
          const __m256i m = _mm256_madd_epi16(acc16[a][h], ones16);
          _mm256_store_si256(dst, part == 0 ? m : _mm256_add_epi32(_mm256_load_si256(dst), m));
        }
      }
      BITNET_UNROLL
      for (int h = 0; h < 2; ++h) {
        BITNET_UNROLL
        for (int a = 0; a < NA; ++a) {
          const __m256i acc = _mm256_load_si256(reinterpret_cast<const __m256i*>(acc32[a] + 8 * h));
          if constexpr (kTq2) {
            const __m256 dw = _mm256_cvtph_ps(
                _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + kPackRows * b + 8 * h)));
            const __m256i iv = _mm256_sub_epi32(acc, _mm256_set1_epi32(ar.sum[a][b]));
            _mm256_store_ps(
                sumf[a] + 8 * h,
                _mm256_add_ps(_mm256_load_ps(sumf[a] + 8 * h),
                              _mm256_mul_ps(_mm256_cvtepi32_ps(iv),
                                            _mm256_mul_ps(_mm256_set1_ps(ar.d[a][b]), dw))));
          } else {
            __m256i* t = reinterpret_cast<__m256i*>(tot[a] + 8 * h);
            _mm256_store_si256(t, _mm256_add_epi32(_mm256_load_si256(t), acc));
          }
        }
      }
    }
    BITNET_UNROLL
    for (int a = 0; a < NA; ++a) BITNET_UNROLL
    for (int h = 0; h < 2; ++h) {
      __m256 y = _mm256_load_ps(sumf[a] + 8 * h);
      if constexpr (!kTq2) {
        const __m256i acc =
            _mm256_sub_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(tot[a] + 8 * h)),
                             _mm256_set1_epi32(ar.sum[a][0]));
        y = _mm256_mul_ps(_mm256_div_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(ar.d[a][0])),
                          _mm256_set1_ps(w.tensor_scale));
      }
      _mm256_storeu_ps(out + a * 16 + 8 * h, y);
    }
  }
};

}  // namespace

void packed_ternary(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
                    int64_t o_end) {
  drive_packed_ternary<TernaryKernels>(w, a, y, o_begin, o_end);
}

}  // namespace bitnet::kernels::avx2
