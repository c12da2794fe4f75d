// AVX-512 (F, BW, VL, VNNI) kernels over the packed layouts (kernels/packed.h). Compiled with
// the same flags as avx512_kernels.cpp and under the same rules (kernel_support.h). The ternary
// kernels live in avx512_packed_ternary.h (a VBMI unit compiles them too).
//
// F16: lanes are the 16 rows of a tile; each lane runs the reference's loop (matmul.h,
// FloatSums), kDouble:
//   sum = 0.0 (double); for i in order: sum += (double)(w_i * x_i)  (product rounded to float)
// in two 8-lane double vectors; kBlocks: a float sum per block of 64 elements, widened and added
// in double at the block's end. Several tiles (decode) or activation rows (prompts) keep
// independent add chains in flight.
#include "kernels/q8_0_head.h"
#include "kernels/x86/avx512_packed_ternary.h"

namespace bitnet::kernels::avx512 {
namespace {

// The F16 kernels' streams (one per tile, 32 bytes per element) prefetch at the decode distances
// (prefetch_near_far). Near the end of a tile those lines lie in the next tile, which another
// stream of the same pass reads anyway, so next_stream (bytes) moves such prefetches on to where
// this stream reads next: decode passes over four consecutive tiles and the thread's next chunk
// goes on with the four after them, so tile t's stream continues at tile t + 4 (passes over one
// tile need no move). Each distance moves from its own element on (near_from / far_from). With
// the near distance at 2 KiB instead of 4 KiB, the move made the head kernel alone 4-6% faster;
// the far prefetch 5-6% more.
struct F16Prefetch {
  int64_t near_from, far_from, next_stream;
  F16Prefetch(int64_t k, int64_t next)
      : near_from(k - kNearPrefetchBytes / (kPackRows * 2)),
        far_from(k - kFarPrefetchBytes / (kPackRows * 2)),
        next_stream(next) {}
  void operator()(const uint16_t* p, int64_t i) const {
    prefetch_near_far(p, i >= near_from ? next_stream : 0, i >= far_from ? next_stream : 0);
  }
};

}  // namespace

void packed_ternary(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
                    int64_t o_end) {
  packed_ternary_with<MaskedFields>(w, a, y, o_begin, o_end);
}

// ------------------------------------------------------------------ Q8_0 head

namespace {

// One tile of the Q8_0 head (q8_0_head.h) for NA activation rows: per block, 8 VPDPBUSD of the
// biased codes (q + 128) with broadcast activation dwords give sum (q + 128) qx per lane; each
// row's accumulator starts at -128 sum(qx) (ActRows::sum holds that here: one broadcast load), so
// it ends as the exact int32 block sum without a subtraction. Up to 4 rows keep four chains each
// (added at the end of the block); 8 rows are 8 independent chains already, and one chain per row
// leaves VPDPBUSD most of the issue slots (the block's float work is 4 operations per row against
// its 8 products). Eight rows (a decode step of 8 sequences) take one pass over each tile: the tile
// streams from memory once and its products overlap its loads.
template <int NA>
inline void q8_0_tile(const WeightMatrix& w, int64_t tile, const ActRows& ar, float* out) {
  constexpr int kChains = NA >= 8 ? 1 : 4;
  const int64_t nb = w.k / kQ8_0Block;
  const uint8_t* codes = q8_0_codes(w, tile);
  const uint16_t* scales = q8_0_scales(w, tile);
  __m512 sumf[NA];
  BITNET_UNROLL
  for (int a = 0; a < NA; ++a) sumf[a] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = codes + b * kQ8_0TileBlockBytes;
    __m512i acc[NA][kChains];
    BITNET_UNROLL
    for (int a = 0; a < NA; ++a) {
      acc[a][0] = _mm512_set1_epi32(ar.sum[a][b]);
      BITNET_UNROLL
      for (int c = 1; c < kChains; ++c) acc[a][c] = _mm512_setzero_si512();
    }
    BITNET_UNROLL
    for (int v = 0; v < 8; ++v) {
      prefetch_near_far(blk + 64 * v);
      const __m512i wv = _mm512_loadu_si512(blk + 64 * v);
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a)
        acc[a][v % kChains] =
            dpbusd_bcast(acc[a][v % kChains], wv, ar.q[a] + b * kQ8_0Block + 4 * v);
    }
    const __m512 dw =
        _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + 16 * b)));
    BITNET_UNROLL
    for (int a = 0; a < NA; ++a) {
      __m512i s = acc[a][0];
      BITNET_UNROLL
      for (int c = 1; c < kChains; ++c) s = _mm512_add_epi32(s, acc[a][c]);
      sumf[a] = _mm512_add_ps(
          sumf[a],
          _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(ar.d[a][b]))));
    }
  }
  BITNET_UNROLL
  for (int a = 0; a < NA; ++a) _mm512_storeu_ps(out + 16 * a, sumf[a]);
}

// Decode (one activation row): NT tiles in lockstep, each its own weight stream (as
// ternary_tiles_decode); every tile's lanes do exactly q8_0_tile<1>'s operations.
template <int NT>
inline void q8_0_tiles_decode(const WeightMatrix& w, const int64_t* tiles, const ActRows& ar,
                              float* out) {
  const int64_t nb = w.k / kQ8_0Block;
  const uint8_t* codes[NT];
  const uint16_t* scales[NT];
  __m512 sumf[NT];
  BITNET_UNROLL
  for (int t = 0; t < NT; ++t) {
    codes[t] = q8_0_codes(w, tiles[t]);
    scales[t] = q8_0_scales(w, tiles[t]);
    sumf[t] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < nb; ++b) {
    __m512i acc[NT][4];
    BITNET_UNROLL
    for (int t = 0; t < NT; ++t) {
      acc[t][0] = _mm512_set1_epi32(ar.sum[0][b]);
      BITNET_UNROLL
      for (int c = 1; c < 4; ++c) acc[t][c] = _mm512_setzero_si512();
    }
    BITNET_UNROLL
    for (int v = 0; v < 8; ++v) {
      BITNET_UNROLL
      for (int t = 0; t < NT; ++t) {
        const uint8_t* blk = codes[t] + b * kQ8_0TileBlockBytes;
        prefetch_ahead(blk + 64 * v);
        acc[t][v % 4] = dpbusd_bcast(acc[t][v % 4], _mm512_loadu_si512(blk + 64 * v),
                                     ar.q[0] + b * kQ8_0Block + 4 * v);
      }
    }
    BITNET_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m512 dw =
          _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales[t] + 16 * b)));
      const __m512i s = _mm512_add_epi32(_mm512_add_epi32(acc[t][0], acc[t][1]),
                                         _mm512_add_epi32(acc[t][2], acc[t][3]));
      sumf[t] = _mm512_add_ps(
          sumf[t],
          _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(ar.d[0][b]))));
    }
  }
  BITNET_UNROLL
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(out + 16 * t, sumf[t]);
}

// Sum of 32 signed bytes.
inline int32_t sum_32(const int8_t* q) {
  const __m512i v = _mm512_maskz_loadu_epi8(0xFFFFFFFFull, q);
  return _mm512_reduce_add_epi32(dpbusd(_mm512_setzero_si512(), _mm512_set1_epi8(1), v));
}

}  // namespace

void q8_0_head(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
               int64_t o_end) {
  const int64_t m = a.rows, nb = w.k / kQ8_0Block;
  auto* sums =
      static_cast<int32_t*>(detail::scratch(0, static_cast<size_t>(m * nb) * sizeof(int32_t)));
  for (int64_t r = 0; r < m; ++r)
    for (int64_t b = 0; b < nb; ++b) sums[r * nb + b] = -128 * sum_32(a.row(r) + b * kQ8_0Block);
  auto rows_of = [&](int64_t r0, int na) {
    ActRows ar{};
    for (int i = 0; i < kMaxTileRows; ++i) {
      const int64_t r = r0 + (i < na ? i : na - 1);
      ar.q[i] = a.row(r);
      ar.d[i] = a.scales.data() + r * nb;
      ar.sum[i] = sums + r * nb;
    }
    return ar;
  };
  if (m == 1) {
    const ActRows ar = rows_of(0, 1);
    for_tile_pairs(o_begin, o_end, y, [&](auto nt, const int64_t* tiles, float* out) {
      q8_0_tiles_decode<decltype(nt)::value>(w, tiles, ar, out);
    });
    return;
  }
  for_each_tile<8>(m, w.n_out, y, o_begin, o_end, [&](auto na, int64_t t, int64_t r, float* out) {
    q8_0_tile<decltype(na)::value>(w, t, rows_of(r, na), out);
  });
}

// ------------------------------------------------------------------ F16

namespace {

// Whether every x_i is an f16 value (the head's input after upstream's f16 rounding). Then each
// product w_i * x_i of two f16 values is exact in float (at most 22 significant bits, exponents
// far inside float's range), so the reference's sum += (double)(w_i * x_i) is one double FMA
// with both operands widened exactly.
bool all_f16_values(const float* x, int64_t k) {
  for (int64_t i = 0; i < k; i += 16) {
    const __mmask16 m =
        k - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (k - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 back =
        _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if ((_mm512_cmp_ps_mask(v, back, _CMP_EQ_OQ) & m) != m) return false;
  }
  return true;
}

// The double sums of NT tiles x NA activation rows (lanes 0-7 in lo, 8-15 in hi), rounded to
// float into out[(a * NT + t) * 16 + lane].
template <int NA, int NT>
inline void store_sums(const __m512d (&lo)[NA][NT], const __m512d (&hi)[NA][NT], float* out) {
  BITNET_UNROLL
  for (int a = 0; a < NA; ++a) {
    BITNET_UNROLL
    for (int t = 0; t < NT; ++t) {
      _mm256_storeu_ps(out + (a * NT + t) * 16, _mm512_cvtpd_ps(lo[a][t]));
      _mm256_storeu_ps(out + (a * NT + t) * 16 + 8, _mm512_cvtpd_ps(hi[a][t]));
    }
  }
}

// NT tiles x NA activation rows; out[(a * NT + t) * 16 + lane], summed as FloatSums kDouble.
// Weights are widened 8 at a time (256-bit VCVTPH2PS, then VCVTPS2PD into a 512-bit double
// vector): on the machines measured this runs ~1.4x faster than widening 16 at once and
// splitting the products, with the same operations per lane. kExact (all_f16_values for every
// row): sum = fma(w, x, sum) in double; otherwise the float product (VMULPS, 8 lanes) is widened
// and added.
template <int NA, int NT, bool kExact>
inline void f16_tiles_double(const uint16_t* const* tile, const float* const* x, int64_t k,
                             float* out, int64_t next_stream) {
  const F16Prefetch prefetch(k, next_stream);
  __m512d lo[NA][NT], hi[NA][NT];
  BITNET_UNROLL
  for (int a = 0; a < NA; ++a) BITNET_UNROLL
  for (int t = 0; t < NT; ++t) lo[a][t] = hi[a][t] = _mm512_setzero_pd();
  for (int64_t i = 0; i < k; ++i) {
    BITNET_UNROLL
    for (int t = 0; t < NT; ++t) {
      const uint16_t* p = tile[t] + i * kPackRows;
      if (i % 2 == 0) prefetch(p, i);
      const __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      const __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)));
      if constexpr (kExact) {
        const __m512d wd0 = _mm512_cvtps_pd(w0), wd1 = _mm512_cvtps_pd(w1);
        BITNET_UNROLL
        for (int a = 0; a < NA; ++a) {
          const __m512d xd = _mm512_set1_pd(static_cast<double>(x[a][i]));
          lo[a][t] = _mm512_fmadd_pd(wd0, xd, lo[a][t]);
          hi[a][t] = _mm512_fmadd_pd(wd1, xd, hi[a][t]);
        }
      } else {
        BITNET_UNROLL
        for (int a = 0; a < NA; ++a) {
          const __m256 xa = _mm256_set1_ps(x[a][i]);
          lo[a][t] = _mm512_add_pd(lo[a][t], _mm512_cvtps_pd(_mm256_mul_ps(w0, xa)));
          hi[a][t] = _mm512_add_pd(hi[a][t], _mm512_cvtps_pd(_mm256_mul_ps(w1, xa)));
        }
      }
    }
  }
  store_sums<NA, NT>(lo, hi, out);
}

// The same summed as FloatSums kBlocks: one 16-lane float sum per tile and row within each block
// of kFloatSumBlock elements (one VCVTPH2PS and one FMA per 16 weights), then the block's sums
// widened and added in double. kExact: the product of two f16 values is exact in float, so
// fma(w, x, s) rounds once, as s + (float)(w * x) does; otherwise VMULPS then VADDPS.
template <int NA, int NT, bool kExact>
inline void f16_tiles_blocks(const uint16_t* const* tile, const float* const* x, int64_t k,
                             float* out, int64_t next_stream) {
  const F16Prefetch prefetch(k, next_stream);
  __m512d lo[NA][NT], hi[NA][NT];
  BITNET_UNROLL
  for (int a = 0; a < NA; ++a) BITNET_UNROLL
  for (int t = 0; t < NT; ++t) lo[a][t] = hi[a][t] = _mm512_setzero_pd();
  for (int64_t b = 0; b < k; b += kFloatSumBlock) {
    const int64_t e = std::min(k, b + kFloatSumBlock);
    __m512 s[NA][NT];
    BITNET_UNROLL
    for (int a = 0; a < NA; ++a) BITNET_UNROLL
    for (int t = 0; t < NT; ++t) s[a][t] = _mm512_setzero_ps();
    for (int64_t i = b; i < e; ++i) {
      BITNET_UNROLL
      for (int t = 0; t < NT; ++t) {
        const uint16_t* p = tile[t] + i * kPackRows;
        if (i % 2 == 0) prefetch(p, i);
        const __m512 w = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
        BITNET_UNROLL
        for (int a = 0; a < NA; ++a) {
          const __m512 xa = _mm512_set1_ps(x[a][i]);
          s[a][t] = kExact ? _mm512_fmadd_ps(w, xa, s[a][t])
                           : _mm512_add_ps(s[a][t], _mm512_mul_ps(w, xa));
        }
      }
    }
    BITNET_UNROLL
    for (int a = 0; a < NA; ++a) BITNET_UNROLL
    for (int t = 0; t < NT; ++t) {
      lo[a][t] = _mm512_add_pd(lo[a][t], lo_pd(s[a][t]));
      hi[a][t] = _mm512_add_pd(hi[a][t], hi_pd(s[a][t]));
    }
  }
  store_sums<NA, NT>(lo, hi, out);
}

template <int NA, int NT>
inline void f16_tiles(FloatSums sums, bool exact, const uint16_t* const* tile,
                      const float* const* x, int64_t k, float* out, int64_t next_stream = 0) {
  if (sums == FloatSums::kBlocks) {
    exact ? f16_tiles_blocks<NA, NT, true>(tile, x, k, out, next_stream)
          : f16_tiles_blocks<NA, NT, false>(tile, x, k, out, next_stream);
  } else {
    exact ? f16_tiles_double<NA, NT, true>(tile, x, k, out, next_stream)
          : f16_tiles_double<NA, NT, false>(tile, x, k, out, next_stream);
  }
}

}  // namespace

void packed_f16(const WeightMatrix& w, const float* x, int64_t rows, float* y, int64_t o_begin,
                int64_t o_end) {
  const auto* base = reinterpret_cast<const uint16_t*>(w.packed);
  auto tile_ptr = [&](int64_t t) { return base + t * w.k * kPackRows; };
  const int64_t t0 = o_begin / kPackRows, t1 = (o_end + kPackRows - 1) / kPackRows;
  alignas(64) float out[4 * kPackRows];
  // Rows of tiles [t, t + nt) for activation rows [r0, r0 + na), out laid out as f16_tiles does.
  auto emit = [&](int64_t t, int nt, int64_t r0, int na) {
    for (int a = 0; a < na; ++a)
      for (int j = 0; j < nt; ++j)
        for (int64_t l = 0; l < kPackRows; ++l) {
          const int64_t o = (t + j) * kPackRows + l;
          if (o >= o_begin && o < o_end)
            y[(r0 + a) * w.n_out + o] = out[(a * nt + j) * kPackRows + l];
        }
  };
  // Four rows or more (prompts with all logits, batches of sequences): tile by tile, each tile
  // read from memory once for every row, four activation rows at a time while it is in cache
  // (then the rows left one by one).
  if (rows >= 4) {
    constexpr int64_t kMaxGroups = 64;
    bool exact[kMaxGroups + 3];
    for (int64_t r0 = 0; r0 < rows; r0 += 4 * kMaxGroups) {
      const int64_t n_groups = std::min<int64_t>(kMaxGroups, (rows - r0) / 4);
      const int64_t r_end = std::min<int64_t>(rows, r0 + 4 * kMaxGroups);
      for (int64_t g = 0; g < n_groups; ++g)
        exact[g] = all_f16_values(x + (r0 + 4 * g) * w.k, 4 * w.k);
      for (int64_t r = r0 + 4 * n_groups; r < r_end; ++r)  // the rows left, after the groups
        exact[n_groups + (r - r0 - 4 * n_groups)] = all_f16_values(x + r * w.k, w.k);
      for (int64_t t = t0; t < t1; ++t) {
        const uint16_t* tp[1] = {tile_ptr(t)};
        for (int64_t g = 0; g < n_groups; ++g) {
          const int64_t r = r0 + 4 * g;
          const float* xr[4] = {x + r * w.k, x + (r + 1) * w.k, x + (r + 2) * w.k,
                                x + (r + 3) * w.k};
          f16_tiles<4, 1>(w.float_sums, exact[g], tp, xr, w.k, out);
          emit(t, 1, r, 4);
        }
        for (int64_t r = r0 + 4 * n_groups; r < r_end; ++r) {
          const float* xr[1] = {x + r * w.k};
          f16_tiles<1, 1>(w.float_sums, exact[n_groups + (r - r0 - 4 * n_groups)], tp, xr, w.k,
                          out);
          emit(t, 1, r, 1);
        }
      }
    }
    return;
  }
  // Decode: four tiles per pass.
  const int64_t tile_bytes = w.k * kPackRows * 2;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr[1] = {x + r * w.k};
    const bool exact = all_f16_values(xr[0], w.k);
    int64_t t = t0;
    for (; t + 4 <= t1; t += 4) {
      const uint16_t* tp[4] = {tile_ptr(t), tile_ptr(t + 1), tile_ptr(t + 2), tile_ptr(t + 3)};
      f16_tiles<1, 4>(w.float_sums, exact, tp, xr, w.k, out, 3 * tile_bytes);
      emit(t, 4, r, 1);
    }
    for (; t < t1; ++t) {
      const uint16_t* tp[1] = {tile_ptr(t)};
      f16_tiles<1, 1>(w.float_sums, exact, tp, xr, w.k, out);
      emit(t, 1, r, 1);
    }
  }
}

}  // namespace bitnet::kernels::avx512
