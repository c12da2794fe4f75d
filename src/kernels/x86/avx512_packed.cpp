// AVX-512 (F, BW, VL, VNNI) kernels over the packed layouts (kernels/packed.h). Compiled with
// the same flags as avx512_kernels.cpp and under the same rules (kernel_support.h).
//
// Ternary: a packed tile holds 16 output rows in the 16 int32 lanes, so VPDPBUSD with a
// broadcast activation dword adds 4 products to every row at once, and a block's 16 row sums
// come out in one vector: no horizontal reduction, no activation permutation, no gather of block
// scales (they are stored as one vector per tile and block). Codes of group g are only masked,
// not shifted (c << 2g, at most 192 per byte), and the group's sum is divided back by 4^g with an
// exact arithmetic shift at the end of the block. Sums per lane are exact int32 (per block:
// 64 products of at most 192 * 128 = 24576), and the float work is the reference's, lane-wise:
//   TQ2_0:  sum += (float)(acc_b - sum_q_b) * (d_act_b * d_w_b), blocks in order;
//   I2_S:   y = ((float)(acc - sum_q) / s) * tensor_scale.
//
// F16: lanes are the 16 rows of a tile; each lane runs the reference's loop (matmul.h,
// FloatSums), kDouble:
//   sum = 0.0 (double); for i in order: sum += (double)(w_i * x_i)  (product rounded to float)
// in two 8-lane double vectors; kBlocks: a float sum per block of 64 elements, widened and added
// in double at the block's end. Several tiles (decode) or activation rows (prompts) keep
// independent add chains in flight.
#include <immintrin.h>

#include "kernels/x86/avx512_units.h"

// GCC 12's own intrinsics (_mm256_undefined_si256: `__m256i __Y = __Y;`) trigger these warnings
// wherever an extract is inlined; the value is never read.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/kernel_support.h"
#include "kernels/packed.h"
#include "kernels/q8_0_head.h"

#define BITNET_UNROLL _Pragma("GCC unroll 16")

namespace bitnet::kernels::avx512 {
namespace {

using gguf::TensorType;

// Inline asm for VPDPBUSD (see avx512_kernels.cpp: GCC 12 copies the builtin's accumulator in
// and out of every loop iteration). acc + 4 products per int32 lane of unsigned bytes u8 and
// signed bytes s8.
inline __m512i dpbusd(__m512i acc, __m512i u8, __m512i s8) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "vm"(s8));
  return acc;
}
// The same with the signed operand one dword at p, broadcast to all lanes.
inline __m512i dpbusd_bcast(__m512i acc, __m512i u8, const int8_t* p) {
  asm("vpdpbusd %2%{1to16%}, %1, %0"
      : "+v"(acc)
      : "v"(u8), "m"(*reinterpret_cast<const int32_t*>(p)));
  return acc;
}

// Weights stream from DRAM once per token; a software prefetch of the line 4 KiB ahead of the
// read position keeps more misses in flight than the hardware prefetchers alone.
constexpr int64_t kPrefetchBytes = 4096;
inline void prefetch_ahead(const void* p) {
  _mm_prefetch(static_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T0);
}

// The F16 kernels' streams (one per tile, 32 bytes per element) prefetch 2 KiB ahead. Near the
// end of a tile that line lies in the next tile, which another stream of the same pass reads
// anyway, so next_stream (bytes) moves those prefetches on to where this stream reads next:
// decode passes over four consecutive tiles and the thread's next chunk goes on with the four
// after them, so tile t's stream continues at tile t + 4 (passes over one tile need no move).
// Both together: +4-6% for the head kernel alone against 4 KiB without the move, in alternating
// runs on the machines measured.
constexpr int64_t kF16PrefetchBytes = 2048;
inline void prefetch_f16(const uint16_t* p, int64_t next_stream) {
  _mm_prefetch(reinterpret_cast<const char*>(p) + kF16PrefetchBytes + next_stream, _MM_HINT_T0);
}

// ------------------------------------------------------------------ ternary

// Sum of 256 signed bytes.
inline int32_t sum_256(const int8_t* q) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i acc = _mm512_setzero_si512();
  BITNET_UNROLL
  for (int j = 0; j < 256; j += 64) acc = dpbusd(acc, ones, _mm512_loadu_si512(q + j));
  return _mm512_reduce_add_epi32(acc);
}

// sum_i c_i q_i over one packed block (1024 bytes at blk), lane l = tile row l, for NA activation
// rows (q[a]: the block's 256 activations of row a).
template <int NA>
inline void block_dot(const uint8_t* blk, const int8_t* const* q, __m512i* out) {
  const __m512i mask[4] = {_mm512_set1_epi8(0x03), _mm512_set1_epi8(0x0C), _mm512_set1_epi8(0x30),
                           _mm512_set1_epi8(static_cast<char>(0xC0))};
  // One row (decode) has only 4 sums per block; two chains each hide VPDPBUSD's latency.
  constexpr int kChains = NA == 1 ? 2 : 1;
  __m512i acc[kChains][NA][4];
  BITNET_UNROLL
  for (int c = 0; c < kChains; ++c) BITNET_UNROLL
  for (int a = 0; a < NA; ++a) BITNET_UNROLL
  for (int g = 0; g < 4; ++g) acc[c][a][g] = _mm512_setzero_si512();
  BITNET_UNROLL
  for (int v = 0; v < 16; ++v) {
    prefetch_ahead(blk + 64 * v);
    const __m512i w = _mm512_loadu_si512(blk + 64 * v);
    BITNET_UNROLL
    for (int g = 0; g < 4; ++g) {
      const __m512i c = _mm512_and_si512(w, mask[g]);
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a)
        acc[v % kChains][a][g] = dpbusd_bcast(acc[v % kChains][a][g], c, q[a] + 64 * g + 4 * v);
    }
  }
  BITNET_UNROLL
  for (int a = 0; a < NA; ++a) {
    __m512i s[4];
    BITNET_UNROLL
    for (int g = 0; g < 4; ++g)
      s[g] = kChains == 2 ? _mm512_add_epi32(acc[0][a][g], acc[kChains - 1][a][g]) : acc[0][a][g];
    out[a] =
        _mm512_add_epi32(_mm512_add_epi32(s[0], _mm512_srai_epi32(s[1], 2)),
                         _mm512_add_epi32(_mm512_srai_epi32(s[2], 4), _mm512_srai_epi32(s[3], 6)));
  }
}

// Per activation row: its codes, its scales (TQ2_0: one d per block; I2_S: s) and the sums of
// its codes (TQ2_0: per block; I2_S: the whole row, in [row * nb]).
struct ActRows {
  const int8_t* q[4];
  const float* d[4];
  const int32_t* sum[4];
};

// Activation rows in groups of 4, then 2, then 1: tile(na, t, r, out) computes tile t (16 output
// rows) for activation rows [r, r + na) into out[i * 16 + lane], and the rows of the tile inside
// [o_begin, o_end) are copied to y (m rows of n_out).
template <class Tile>
inline void for_each_tile(int64_t m, int64_t n_out, float* y, int64_t o_begin, int64_t o_end,
                          const Tile& tile) {
  const int64_t t0 = o_begin / kPackRows, t1 = (o_end + kPackRows - 1) / kPackRows;
  alignas(64) float out[4 * kPackRows];
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t lo = t * kPackRows > o_begin ? t * kPackRows : o_begin;
    const int64_t hi = (t + 1) * kPackRows < o_end ? (t + 1) * kPackRows : o_end;
    auto emit = [&](int64_t r0, int na) {
      for (int i = 0; i < na; ++i)
        for (int64_t o = lo; o < hi; ++o)
          y[(r0 + i) * n_out + o] = out[i * kPackRows + (o - t * kPackRows)];
    };
    int64_t r = 0;
    for (; r + 4 <= m; r += 4) {
      tile(std::integral_constant<int, 4>(), t, r, out);
      emit(r, 4);
    }
    if (m - r >= 2) {
      tile(std::integral_constant<int, 2>(), t, r, out);
      emit(r, 2);
      r += 2;
    }
    if (r < m) {
      tile(std::integral_constant<int, 1>(), t, r, out);
      emit(r, 1);
    }
  }
}

// Decode (one activation row): the tiles of [o_begin, o_end) as two weight streams, the range's
// two halves, a tile of each at a time (one more tile alone when their count is odd):
// tiles(nt, ts, out) computes tiles ts[0..nt) into out[i * 16 + lane]; rows inside the range go
// to y.
template <class Tiles>
inline void for_tile_pairs(int64_t o_begin, int64_t o_end, float* y, const Tiles& tiles) {
  const int64_t t0 = o_begin / kPackRows, t1 = (o_end + kPackRows - 1) / kPackRows;
  const int64_t half = (t1 - t0) / 2;
  alignas(64) float out[2 * kPackRows];
  auto emit = [&](int64_t t, const float* o) {
    for (int64_t r = std::max(t * kPackRows, o_begin); r < std::min((t + 1) * kPackRows, o_end);
         ++r)
      y[r] = o[r - t * kPackRows];
  };
  for (int64_t j = 0; j < half; ++j) {
    const int64_t ts[2] = {t0 + j, t0 + half + j};
    tiles(std::integral_constant<int, 2>(), ts, out);
    emit(ts[0], out);
    emit(ts[1], out + kPackRows);
  }
  if (t0 + 2 * half < t1) {
    const int64_t ts[1] = {t1 - 1};
    tiles(std::integral_constant<int, 1>(), ts, out);
    emit(ts[0], out);
  }
}

// One tile for NA activation rows. TQ2_0: per block, lane-wise
//   sum += (float)(acc_b - sum_q_b) * (d_act_b * d_w_b);
// I2_S: the int32 sums of all blocks, then y = ((float)(acc - sum_q) / s) * tensor_scale.
template <int NA, bool kTq2>
inline void ternary_tile(const WeightMatrix& w, int64_t tile, const ActRows& ar, float* out) {
  const int64_t nb = w.k / 256;
  const uint8_t* codes = packed_codes(w, tile);
  __m512 sumf[NA];
  __m512i tot[NA];
  BITNET_UNROLL
  for (int a = 0; a < NA; ++a) {
    sumf[a] = _mm512_setzero_ps();
    tot[a] = _mm512_setzero_si512();
  }
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* qb[NA];
    BITNET_UNROLL
    for (int a = 0; a < NA; ++a) qb[a] = ar.q[a] + 256 * b;
    __m512i s[NA];
    block_dot<NA>(codes + b * kPackedBlockBytes, qb, s);
    if constexpr (kTq2) {
      const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(
          reinterpret_cast<const __m256i*>(packed_block_scales(w, tile) + kPackRows * b)));
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a) {
        const __m512i iv = _mm512_sub_epi32(s[a], _mm512_set1_epi32(ar.sum[a][b]));
        sumf[a] = _mm512_add_ps(
            sumf[a],
            _mm512_mul_ps(_mm512_cvtepi32_ps(iv), _mm512_mul_ps(_mm512_set1_ps(ar.d[a][b]), dw)));
      }
    } else {
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a) tot[a] = _mm512_add_epi32(tot[a], s[a]);
    }
  }
  if constexpr (!kTq2) {
    const __m512 wscale = _mm512_set1_ps(w.tensor_scale);
    BITNET_UNROLL
    for (int a = 0; a < NA; ++a) {
      const __m512i acc = _mm512_sub_epi32(tot[a], _mm512_set1_epi32(ar.sum[a][0]));
      sumf[a] =
          _mm512_mul_ps(_mm512_div_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(ar.d[a][0])), wscale);
    }
  }
  BITNET_UNROLL
  for (int a = 0; a < NA; ++a) _mm512_storeu_ps(out + 16 * a, sumf[a]);
}

// Decode (one activation row): NT tiles at once, their blocks in lockstep. Each tile is its own
// sequential stream, so a thread keeps NT streams of weights in flight, which the hardware
// prefetchers serve with more misses outstanding than one; every tile's lanes do exactly the
// operations of ternary_tile<1> (its two int32 chains are an exact regrouping of these sums).
// Each stream's vectors are loaded kLoadAhead vectors before their arithmetic (a ring of
// registers): the AND / VPDPBUSD of a vector then wait on a load issued long before, instead of
// filling the scheduler while their own load misses, which lets the core keep more of the
// stream in flight (+2-3% tokens/s in alternating in-process runs; loads past the end of a
// stream repeat its last vector).
template <int NT, bool kTq2>
inline void ternary_tiles_decode(const WeightMatrix& w, const int64_t* tiles, const ActRows& ar,
                                 float* out) {
  const int64_t nb = w.k / 256;
  const __m512i mask[4] = {_mm512_set1_epi8(0x03), _mm512_set1_epi8(0x0C), _mm512_set1_epi8(0x30),
                           _mm512_set1_epi8(static_cast<char>(0xC0))};
  const uint8_t* codes[NT];
  const uint16_t* scales[NT];
  __m512 sumf[NT];
  __m512i tot[NT];
  BITNET_UNROLL
  for (int t = 0; t < NT; ++t) {
    codes[t] = packed_codes(w, tiles[t]);
    scales[t] = kTq2 ? packed_block_scales(w, tiles[t]) : nullptr;
    sumf[t] = _mm512_setzero_ps();
    tot[t] = _mm512_setzero_si512();
  }
  constexpr int kLoadAhead = 4;  // divides the 16 vectors of a block
  const int64_t last = nb * 16 - 1;
  __m512i ring[NT][kLoadAhead];
  BITNET_UNROLL
  for (int t = 0; t < NT; ++t) BITNET_UNROLL
  for (int d = 0; d < kLoadAhead; ++d)
    ring[t][d] = _mm512_loadu_si512(codes[t] + 64 * std::min<int64_t>(d, last));
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* q = ar.q[0] + 256 * b;
    __m512i acc[NT][4];
    BITNET_UNROLL
    for (int t = 0; t < NT; ++t) BITNET_UNROLL
    for (int g = 0; g < 4; ++g) acc[t][g] = _mm512_setzero_si512();
    BITNET_UNROLL
    for (int v = 0; v < 16; ++v) {
      BITNET_UNROLL
      for (int t = 0; t < NT; ++t) {
        prefetch_ahead(codes[t] + b * kPackedBlockBytes + 64 * v);
        const __m512i wv = ring[t][v % kLoadAhead];
        const int64_t next = std::min<int64_t>(16 * b + v + kLoadAhead, last);
        ring[t][v % kLoadAhead] = _mm512_loadu_si512(codes[t] + 64 * next);
        BITNET_UNROLL
        for (int g = 0; g < 4; ++g)
          acc[t][g] = dpbusd_bcast(acc[t][g], _mm512_and_si512(wv, mask[g]), q + 64 * g + 4 * v);
      }
    }
    BITNET_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m512i s = _mm512_add_epi32(
          _mm512_add_epi32(acc[t][0], _mm512_srai_epi32(acc[t][1], 2)),
          _mm512_add_epi32(_mm512_srai_epi32(acc[t][2], 4), _mm512_srai_epi32(acc[t][3], 6)));
      if constexpr (kTq2) {
        const __m512 dw = _mm512_cvtph_ps(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales[t] + kPackRows * b)));
        const __m512i iv = _mm512_sub_epi32(s, _mm512_set1_epi32(ar.sum[0][b]));
        sumf[t] = _mm512_add_ps(
            sumf[t],
            _mm512_mul_ps(_mm512_cvtepi32_ps(iv), _mm512_mul_ps(_mm512_set1_ps(ar.d[0][b]), dw)));
      } else {
        tot[t] = _mm512_add_epi32(tot[t], s);
      }
    }
  }
  BITNET_UNROLL
  for (int t = 0; t < NT; ++t) {
    if constexpr (!kTq2) {
      const __m512i acc = _mm512_sub_epi32(tot[t], _mm512_set1_epi32(ar.sum[0][0]));
      sumf[t] = _mm512_mul_ps(_mm512_div_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(ar.d[0][0])),
                              _mm512_set1_ps(w.tensor_scale));
    }
    _mm512_storeu_ps(out + 16 * t, sumf[t]);
  }
}

template <int NA>
inline void ternary_tile(bool i2s, const WeightMatrix& w, int64_t tile, const ActRows& ar,
                         float* out) {
  i2s ? ternary_tile<NA, false>(w, tile, ar, out) : ternary_tile<NA, true>(w, tile, ar, out);
}

}  // namespace

void packed_ternary(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
                    int64_t o_end) {
  const bool i2s = w.type == TensorType::I2_S;
  const int64_t m = a.rows, nb = w.k / 256;
  // Code sums: TQ2_0 per (row, block); I2_S per row (in the row's first slot).
  auto* sums =
      static_cast<int32_t*>(detail::scratch(0, static_cast<size_t>(m * nb) * sizeof(int32_t)));
  for (int64_t r = 0; r < m; ++r) {
    int32_t total = 0;
    for (int64_t b = 0; b < nb; ++b) {
      sums[r * nb + b] = sum_256(a.row(r) + 256 * b);
      total += sums[r * nb + b];
    }
    if (i2s) sums[r * nb] = total;
  }
  auto rows_of = [&](int64_t r0, int na) {
    ActRows ar{};
    for (int i = 0; i < 4; ++i) {
      const int64_t r = r0 + (i < na ? i : na - 1);
      ar.q[i] = a.row(r);
      ar.d[i] = i2s ? a.scales.data() + r : a.scales.data() + r * nb;
      ar.sum[i] = sums + r * nb;
    }
    return ar;
  };
  if (m == 1) {
    const ActRows ar = rows_of(0, 1);
    for_tile_pairs(o_begin, o_end, y, [&](auto nt, const int64_t* tiles, float* out) {
      i2s ? ternary_tiles_decode<decltype(nt)::value, false>(w, tiles, ar, out)
          : ternary_tiles_decode<decltype(nt)::value, true>(w, tiles, ar, out);
    });
    return;
  }
  for_each_tile(m, w.n_out, y, o_begin, o_end, [&](auto na, int64_t t, int64_t r, float* out) {
    ternary_tile<decltype(na)::value>(i2s, w, t, rows_of(r, na), out);
  });
}

// ------------------------------------------------------------------ Q8_0 head

namespace {

// One tile of the Q8_0 head (q8_0_head.h) for NA activation rows: per block, 8 VPDPBUSD of the
// biased codes (q + 128) with broadcast activation dwords give sum (q + 128) qx per lane (four
// chains, added at the end of the block); minus 128 sum(qx) that is the exact int32 block sum.
template <int NA>
inline void q8_0_tile(const WeightMatrix& w, int64_t tile, const ActRows& ar, float* out) {
  const int64_t nb = w.k / kQ8_0Block;
  const uint8_t* codes = q8_0_codes(w, tile);
  const uint16_t* scales = q8_0_scales(w, tile);
  __m512 sumf[NA];
  BITNET_UNROLL
  for (int a = 0; a < NA; ++a) sumf[a] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = codes + b * kQ8_0TileBlockBytes;
    __m512i acc[NA][4];
    BITNET_UNROLL
    for (int a = 0; a < NA; ++a) BITNET_UNROLL
    for (int c = 0; c < 4; ++c) acc[a][c] = _mm512_setzero_si512();
    BITNET_UNROLL
    for (int v = 0; v < 8; ++v) {
      prefetch_ahead(blk + 64 * v);
      const __m512i wv = _mm512_loadu_si512(blk + 64 * v);
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a)
        acc[a][v % 4] = dpbusd_bcast(acc[a][v % 4], wv, ar.q[a] + b * kQ8_0Block + 4 * v);
    }
    const __m512 dw =
        _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + 16 * b)));
    BITNET_UNROLL
    for (int a = 0; a < NA; ++a) {
      const __m512i s = _mm512_add_epi32(_mm512_add_epi32(acc[a][0], acc[a][1]),
                                         _mm512_add_epi32(acc[a][2], acc[a][3]));
      const __m512i iv = _mm512_sub_epi32(s, _mm512_set1_epi32(128 * ar.sum[a][b]));
      sumf[a] = _mm512_add_ps(
          sumf[a],
          _mm512_mul_ps(_mm512_cvtepi32_ps(iv), _mm512_mul_ps(dw, _mm512_set1_ps(ar.d[a][b]))));
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
    for (int t = 0; t < NT; ++t) BITNET_UNROLL
    for (int c = 0; c < 4; ++c) acc[t][c] = _mm512_setzero_si512();
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
      const __m512i iv = _mm512_sub_epi32(s, _mm512_set1_epi32(128 * ar.sum[0][b]));
      sumf[t] = _mm512_add_ps(
          sumf[t],
          _mm512_mul_ps(_mm512_cvtepi32_ps(iv), _mm512_mul_ps(dw, _mm512_set1_ps(ar.d[0][b]))));
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
    for (int64_t b = 0; b < nb; ++b) sums[r * nb + b] = sum_32(a.row(r) + b * kQ8_0Block);
  auto rows_of = [&](int64_t r0, int na) {
    ActRows ar{};
    for (int i = 0; i < 4; ++i) {
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
  for_each_tile(m, w.n_out, y, o_begin, o_end, [&](auto na, int64_t t, int64_t r, float* out) {
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
  const int64_t jump_from = k - kF16PrefetchBytes / (kPackRows * 2);
  __m512d lo[NA][NT], hi[NA][NT];
  BITNET_UNROLL
  for (int a = 0; a < NA; ++a) BITNET_UNROLL
  for (int t = 0; t < NT; ++t) lo[a][t] = hi[a][t] = _mm512_setzero_pd();
  for (int64_t i = 0; i < k; ++i) {
    BITNET_UNROLL
    for (int t = 0; t < NT; ++t) {
      const uint16_t* p = tile[t] + i * kPackRows;
      if (i % 2 == 0) prefetch_f16(p, i >= jump_from ? next_stream : 0);
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
  const int64_t jump_from = k - kF16PrefetchBytes / (kPackRows * 2);
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
        if (i % 2 == 0) prefetch_f16(p, i >= jump_from ? next_stream : 0);
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
  int64_t r = 0;
  // Prompts (all logits): four activation rows per pass over a tile.
  for (; r + 4 <= rows; r += 4) {
    const float* xr[4] = {x + r * w.k, x + (r + 1) * w.k, x + (r + 2) * w.k, x + (r + 3) * w.k};
    const bool exact = all_f16_values(x + r * w.k, 4 * w.k);
    for (int64_t t = t0; t < t1; ++t) {
      const uint16_t* tp[1] = {tile_ptr(t)};
      f16_tiles<4, 1>(w.float_sums, exact, tp, xr, w.k, out);
      emit(t, 1, r, 4);
    }
  }
  // Decode: four tiles per pass.
  const int64_t tile_bytes = w.k * kPackRows * 2;
  for (; r < rows; ++r) {
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
