// The AVX-512 kernels over packed ternary weights (kernels/packed.h) and the helpers the packed
// Q8_0 head shares with them. A header because two translation units compile them:
// avx512_packed.cpp (F, BW, VL, VNNI: MaskedFields) and avx512_vbmi_packed.cpp (the same plus
// VBMI: PermutedFields). Everything here has internal linkage (an unnamed namespace), so each unit
// keeps its own copy built with its own flags: a shared inline definition could be merged by the
// linker into the VBMI unit's copy and then run on a CPU without VBMI.
//
// Ternary: a packed tile holds 16 output rows in the 16 int32 lanes, so VPDPBUSD with a
// broadcast activation dword adds 4 products to every row at once, and a block's 16 row sums
// come out in one vector: no horizontal reduction, no activation permutation, no gather of block
// scales (they are stored as one vector per tile and block). How the 2-bit codes are taken
// out of a vector is described at MaskedFields below; either way every group's sum is exact in
// int32 (per block: 64 products of at most 192 * 128 = 24576 per group), so the integer block
// sums are the reference's, and the float work is the reference's too, lane-wise:
//   TQ2_0:  sum += (float)(acc_b - sum_q_b) * (d_act_b * d_w_b), blocks in order;
//   I2_S:   y = ((float)(acc - sum_q) / s) * tensor_scale.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/bandwidth.h"
#include "kernels/kernel_support.h"
#include "kernels/packed.h"
#include "kernels/x86/avx512_units.h"
#include "kernels/x86/intrinsics_prelude.h"

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

// Decode streams prefetch at two distances (core/bandwidth.h, which the roofline reader shares):
// the line 2 KiB ahead into L1 and the line 8 KiB ahead into L2. The far prefetch keeps more of
// the stream in flight than the near one alone (which holds a fill buffer per line until it
// arrives): +4-6% for the ternary decode kernel and for the F16 head kernel alone, in
// alternating runs on the machines measured. near_move / far_move (bytes) shift either line, for
// a stream that goes on elsewhere than right after its end (the F16 head's tiles).
inline void prefetch_near_far(const void* p, int64_t near_move = 0, int64_t far_move = 0) {
  _mm_prefetch(static_cast<const char*>(p) + kNearPrefetchBytes + near_move, _MM_HINT_T0);
  _mm_prefetch(static_cast<const char*>(p) + kFarPrefetchBytes + far_move, _MM_HINT_T1);
}

// How a kernel takes group g's codes out of a packed vector. Decode: field(w, g) keeps bits
// 2g..2g+1 of every byte in place (c << 2g), one operation per group, and the group's sum is
// divided back by 4^g once per block. Several activation rows: low(w, g) (g = 0..2) moves the
// codes down to 0..3, so one accumulator per row sums all three groups, and top(w) keeps group 3
// in place (c << 6, at most 192, in an accumulator of its own); the operations that take a
// vector apart are shared by the rows, the accumulators are not. Both policies give the same
// integer sums.
struct MaskedFields {
  const __m512i mask[4] = {_mm512_set1_epi8(0x03), _mm512_set1_epi8(0x0C), _mm512_set1_epi8(0x30),
                           _mm512_set1_epi8(static_cast<char>(0xC0))};
  __m512i operator()(__m512i w, int g) const { return _mm512_and_si512(w, mask[g]); }
  // Bits crossing into a byte from its neighbour in the 16-bit shift are masked off.
  __m512i low(__m512i w, int g) const {
    return _mm512_and_si512(g == 0 ? w : _mm512_srli_epi16(w, 2 * g), mask[0]);
  }
  __m512i top(__m512i w) const { return _mm512_and_si512(w, mask[3]); }
};

#ifdef __AVX512VBMI__
// VPERMB looks each byte's low six bits up in a 64-byte table, so groups 0-2 are table lookups
// (in place: entry i holds i & (3 << 2g); moved down: (i >> 2g) & 3); group 3 (bits 6-7) is
// still masked. A mask competes with VPDPBUSD for the same execution ports; on the machines
// measured the permute leaves them to it: -10% time per weight byte for the decode kernel in
// cache, +2-3% for it streaming from memory and +1.4% tokens/s (alternating in-process runs).
struct FieldTables {
  alignas(64) uint8_t t[3][64];
  alignas(64) uint8_t low[3][64];
};
constexpr FieldTables make_field_tables() {
  FieldTables f{};
  for (int g = 0; g < 3; ++g)
    for (int i = 0; i < 64; ++i) {
      f.t[g][i] = static_cast<uint8_t>(i & (3 << (2 * g)));
      f.low[g][i] = static_cast<uint8_t>((i >> (2 * g)) & 3);
    }
  return f;
}
inline constexpr FieldTables kFieldTables = make_field_tables();

struct PermutedFields {
  const __m512i table[3] = {_mm512_load_si512(kFieldTables.t[0]),
                            _mm512_load_si512(kFieldTables.t[1]),
                            _mm512_load_si512(kFieldTables.t[2])};
  const __m512i low_table[3] = {_mm512_load_si512(kFieldTables.low[0]),
                                _mm512_load_si512(kFieldTables.low[1]),
                                _mm512_load_si512(kFieldTables.low[2])};
  const __m512i top_mask = _mm512_set1_epi8(static_cast<char>(0xC0));
  __m512i operator()(__m512i w, int g) const {
    return g < 3 ? _mm512_permutexvar_epi8(w, table[g]) : _mm512_and_si512(w, top_mask);
  }
  __m512i low(__m512i w, int g) const { return _mm512_permutexvar_epi8(w, low_table[g]); }
  __m512i top(__m512i w) const { return _mm512_and_si512(w, top_mask); }
};
#endif

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
// rows (q[a]: the block's 256 activations of row a). Per row, groups 0-2 share an accumulator
// and group 3 has its own (Fields::low / top); fewer than 8 rows keep two of each, alternating
// by vector, so that VPDPBUSD's latency stays hidden behind the other rows' products.
template <int NA, class Fields>
inline void block_dot(const uint8_t* blk, const int8_t* const* q, __m512i* out) {
  const Fields fields;
  constexpr int kChains = NA >= 8 ? 1 : 2;
  __m512i low[kChains][NA], top[kChains][NA];
  BITNET_UNROLL
  for (int c = 0; c < kChains; ++c) BITNET_UNROLL
  for (int a = 0; a < NA; ++a) low[c][a] = top[c][a] = _mm512_setzero_si512();
  BITNET_UNROLL
  for (int v = 0; v < 16; ++v) {
    prefetch_ahead(blk + 64 * v);
    const __m512i w = _mm512_loadu_si512(blk + 64 * v);
    const int c = v % kChains;
    BITNET_UNROLL
    for (int g = 0; g < 3; ++g) {
      const __m512i f = fields.low(w, g);
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a) low[c][a] = dpbusd_bcast(low[c][a], f, q[a] + 64 * g + 4 * v);
    }
    const __m512i f = fields.top(w);
    BITNET_UNROLL
    for (int a = 0; a < NA; ++a) top[c][a] = dpbusd_bcast(top[c][a], f, q[a] + 192 + 4 * v);
  }
  BITNET_UNROLL
  for (int a = 0; a < NA; ++a) {
    __m512i l = low[0][a], t = top[0][a];
    if constexpr (kChains == 2) {
      l = _mm512_add_epi32(l, low[1][a]);
      t = _mm512_add_epi32(t, top[1][a]);
    }
    out[a] = _mm512_add_epi32(l, _mm512_srai_epi32(t, 6));
  }
}

// Per activation row: its codes, its scales (TQ2_0: one d per block; I2_S: s) and the sums of
// its codes (TQ2_0: per block; I2_S: the whole row, in [row * nb]).
constexpr int kMaxTileRows = 8;
struct ActRows {
  const int8_t* q[kMaxTileRows];
  const float* d[kMaxTileRows];
  const int32_t* sum[kMaxTileRows];
};

// Activation rows in groups of kMaxNA (4 or 8), then 4, 2, 1: tile(na, t, r, out) computes tile
// t (16 output rows) for activation rows [r, r + na) into out[i * 16 + lane], and the rows of the
// tile inside [o_begin, o_end) are copied to y (m rows of n_out).
template <int kMaxNA, class Tile>
inline void for_each_tile(int64_t m, int64_t n_out, float* y, int64_t o_begin, int64_t o_end,
                          const Tile& tile) {
  static_assert(kMaxNA == 4 || kMaxNA == 8);
  const int64_t t0 = o_begin / kPackRows, t1 = (o_end + kPackRows - 1) / kPackRows;
  alignas(64) float out[kMaxNA * kPackRows];
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t lo = t * kPackRows > o_begin ? t * kPackRows : o_begin;
    const int64_t hi = (t + 1) * kPackRows < o_end ? (t + 1) * kPackRows : o_end;
    const bool whole = hi - lo == kPackRows;
    auto emit = [&](int64_t r0, int na) {
      for (int i = 0; i < na; ++i) {
        if (whole) {  // one vector store (a length-dependent copy would call memmove)
          _mm512_storeu_ps(y + (r0 + i) * n_out + lo, _mm512_load_ps(out + i * kPackRows));
          continue;
        }
        for (int64_t o = lo; o < hi; ++o)
          y[(r0 + i) * n_out + o] = out[i * kPackRows + (o - t * kPackRows)];
      }
    };
    int64_t r = 0;
    for (; r + kMaxNA <= m; r += kMaxNA) {
      tile(std::integral_constant<int, kMaxNA>(), t, r, out);
      emit(r, kMaxNA);
    }
    if (kMaxNA == 8 && m - r >= 4) {
      tile(std::integral_constant<int, 4>(), t, r, out);
      emit(r, 4);
      r += 4;
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
    const int64_t lo = std::max(t * kPackRows, o_begin), hi = std::min((t + 1) * kPackRows, o_end);
    if (hi - lo == kPackRows) return _mm512_storeu_ps(y + lo, _mm512_load_ps(o));
    for (int64_t r = lo; r < hi; ++r) y[r] = o[r - t * kPackRows];
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
template <int NA, bool kTq2, class Fields>
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
    block_dot<NA, Fields>(codes + b * kPackedBlockBytes, qb, s);
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
template <int NT, bool kTq2, class Fields>
inline void ternary_tiles_decode(const WeightMatrix& w, const int64_t* tiles, const ActRows& ar,
                                 float* out) {
  const int64_t nb = w.k / 256;
  const Fields fields;
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
        prefetch_near_far(codes[t] + b * kPackedBlockBytes + 64 * v);
        const __m512i wv = ring[t][v % kLoadAhead];
        const int64_t next = std::min<int64_t>(16 * b + v + kLoadAhead, last);
        ring[t][v % kLoadAhead] = _mm512_loadu_si512(codes[t] + 64 * next);
        BITNET_UNROLL
        for (int g = 0; g < 4; ++g)
          acc[t][g] = dpbusd_bcast(acc[t][g], fields(wv, g), q + 64 * g + 4 * v);
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

template <int NA, class Fields>
inline void ternary_tile(bool i2s, const WeightMatrix& w, int64_t tile, const ActRows& ar,
                         float* out) {
  i2s ? ternary_tile<NA, false, Fields>(w, tile, ar, out)
      : ternary_tile<NA, true, Fields>(w, tile, ar, out);
}

// I2_S / TQ2_0 with w.packed set (avx512_units.h), the codes' fields taken apart by Fields.
template <class Fields>
inline void packed_ternary_with(const WeightMatrix& w, const QuantizedActivations& a, float* y,
                                int64_t o_begin, int64_t o_end) {
  const bool i2s = w.type == TensorType::I2_S;
  const int64_t m = a.rows, nb = w.k / 256;
  const int32_t* sums = detail::ternary_code_sums(a, i2s, 0, sum_256);
  auto rows_of = [&](int64_t r0, int na) {
    ActRows ar{};
    for (int i = 0; i < kMaxTileRows; ++i) {
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
      i2s ? ternary_tiles_decode<decltype(nt)::value, false, Fields>(w, tiles, ar, out)
          : ternary_tiles_decode<decltype(nt)::value, true, Fields>(w, tiles, ar, out);
    });
    return;
  }
  for_each_tile<8>(m, w.n_out, y, o_begin, o_end, [&](auto na, int64_t t, int64_t r, float* out) {
    ternary_tile<decltype(na)::value, Fields>(i2s, w, t, rows_of(r, na), out);
  });
}

}  // namespace
}  // namespace bitnet::kernels::avx512
