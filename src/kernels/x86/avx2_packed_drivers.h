// The loops around the AVX2-width tile kernels over the packed layouts (kernels/packed.h,
// q8_0_head.h), shared by the avx2 variant (avx2_packed.cpp, avx2_kernels.cpp) and the avx2-vnni
// variant (avx2_vnni_packed.cpp): which tiles and activation rows go to a kernel call together,
// and which of its outputs land in y. The variants differ only in the kernels, passed as a type.
// Everything has internal linkage (an unnamed namespace), so each unit keeps its own copy built
// with its own flags (see kernel_support.h).
#pragma once

#include <cstdint>

#include "core/bandwidth.h"
#include "kernels/kernel_support.h"
#include "kernels/packed.h"
#include "kernels/q8_0_head.h"
#include "kernels/x86/avx2_units.h"
#include "kernels/x86/intrinsics_prelude.h"

namespace bitnet::kernels::avx2 {
namespace {

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

// Sum of 256 signed bytes (the activation code sums the ternary kernels subtract).
inline int32_t sum_256(const int8_t* q) {
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  __m256i acc = _mm256_setzero_si256();
  BITNET_UNROLL
  for (int j = 0; j < 256; j += 32) {
    acc = _mm256_add_epi32(acc,
                           _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, load32(q + j)), ones16));
  }
  const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
  const __m128i t = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  return _mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1)));
}

// ------------------------------------------------------------------ ternary

// Per activation row: its codes, scales (TQ2_0: one d per block; I2_S: s) and code sums (TQ2_0:
// per block; I2_S: the whole row's, in slot 0).
constexpr int kMaxRows = 4;
struct ActRows {
  const int8_t* q[kMaxRows];
  const float* d[kMaxRows];
  const int32_t* sum[kMaxRows];
};

// Eight output rows: half `half` of packed tile `tile` (a 32-byte half of each 64-byte vector).
struct Unit {
  int64_t tile;
  int half;
};

// Vector v of block b of a unit's codes (codes: the unit's half of its tile). The unit whose half
// is 0 prefetches the tile's stream for both: decode runs two tiles, i.e. two streams, at once.
inline __m256i unit_vector(const uint8_t* codes, const Unit& unit, int64_t b, int v) {
  const uint8_t* p = codes + b * kPackedBlockBytes + 64 * v;
  if (unit.half == 0) {
    _mm_prefetch(reinterpret_cast<const char*>(p) + kNearPrefetchBytes, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(p) + kFarPrefetchBytes, _MM_HINT_T1);
  }
  return load32(p);
}

// Copies the 8 rows of `unit` held at o that lie in [o_begin, o_end) to y_row.
inline void emit(const Unit& unit, const float* o, int64_t o_begin, int64_t o_end, float* y_row) {
  const int64_t first = unit.tile * kPackRows + 8 * unit.half;
  for (int64_t r = max64(first, o_begin); r < min64(first + 8, o_end); ++r) y_row[r] = o[r - first];
}

// Rows [o_begin, o_end) of every activation row through K's kernels:
//   K::decode<NU, kTq2>(w, units, ar, out): NU units against activation row 0, out[u * 8 + lane];
//   K::prompt<NA, kTq2>(w, tile, ar, out): both halves of a tile against NA rows,
//     out[a * 16 + row].
template <class K, bool kTq2>
void drive_packed_ternary(const WeightMatrix& w, const QuantizedActivations& a, float* y,
                          int64_t o_begin, int64_t o_end) {
  const int64_t m = a.rows, nb = w.k / 256;
  const int32_t* sums = detail::ternary_code_sums(a, !kTq2, 1, sum_256);
  auto rows_of = [&](int64_t r0, int na) {
    ActRows ar{};
    for (int i = 0; i < kMaxRows; ++i) {
      const int64_t r = r0 + (i < na ? i : na - 1);
      ar.q[i] = a.row(r);
      ar.d[i] = kTq2 ? a.scales.data() + r * nb : a.scales.data() + r;
      ar.sum[i] = sums + r * nb;
    }
    return ar;
  };
  const int64_t t0 = o_begin / kPackRows, t1 = (o_end + kPackRows - 1) / kPackRows;
  alignas(32) float out[kMaxRows * 16];
  if (m == 1) {
    // Decode: the range's tiles as two streams (its two halves), a tile of each at a time (one
    // more alone when their count is odd), one half of both tiles, then the other: four units at
    // once need more than AVX's 16 vector registers and spilled.
    const ActRows ar = rows_of(0, 1);
    const int64_t half = (t1 - t0) / 2;
    for (int64_t j = 0; j < half; ++j) {
      for (int h = 0; h < 2; ++h) {
        const Unit units[2] = {{t0 + j, h}, {t0 + half + j, h}};
        K::template decode<2, kTq2>(w, units, ar, out);
        for (int u = 0; u < 2; ++u) emit(units[u], out + 8 * u, o_begin, o_end, y);
      }
    }
    if (t0 + 2 * half < t1) {
      const Unit units[2] = {{t1 - 1, 0}, {t1 - 1, 1}};
      K::template decode<2, kTq2>(w, units, ar, out);
      for (int u = 0; u < 2; ++u) emit(units[u], out + 8 * u, o_begin, o_end, y);
    }
    return;
  }
  // Several rows: each tile (its codes stay in cache) against 4 activation rows at a time, then
  // 2, then 1.
  for (int64_t t = t0; t < t1; ++t) {
    const Unit halves[2] = {{t, 0}, {t, 1}};
    auto emit_rows = [&](int64_t r, int na) {
      for (int i = 0; i < na; ++i)
        for (int h = 0; h < 2; ++h)
          emit(halves[h], out + 16 * i + 8 * h, o_begin, o_end, y + (r + i) * w.n_out);
    };
    int64_t r = 0;
    for (; r + 4 <= m; r += 4) {
      K::template prompt<4, kTq2>(w, t, rows_of(r, 4), out);
      emit_rows(r, 4);
    }
    if (m - r >= 2) {
      K::template prompt<2, kTq2>(w, t, rows_of(r, 2), out);
      emit_rows(r, 2);
      r += 2;
    }
    if (r < m) {
      K::template prompt<1, kTq2>(w, t, rows_of(r, 1), out);
      emit_rows(r, 1);
    }
  }
}

template <class K>
void drive_packed_ternary(const WeightMatrix& w, const QuantizedActivations& a, float* y,
                          int64_t o_begin, int64_t o_end) {
  if (o_begin >= o_end || a.rows == 0) return;
  if (w.type == gguf::TensorType::I2_S)
    return drive_packed_ternary<K, false>(w, a, y, o_begin, o_end);
  drive_packed_ternary<K, true>(w, a, y, o_begin, o_end);
}

// ------------------------------------------------------------------ Q8_0 head

// Activation rows prepared at once, then taken 4 at a time over every tile of the range.
constexpr int64_t kQ8RowBatch = 16;

// Per activation row (up to 4): its prepared codes (K's form), per-block biases (K's meaning)
// and block scales d_x.
struct Q8Rows {
  const int8_t* x[4];
  const int32_t* bias[4];
  const float* d[4];
};

// Rows [o_begin, o_end) of the Q8_0 head through K:
//   K::kPreparedBytes: bytes per block of K's prepared activation codes (0: the codes as they
//     are, no preparation);
//   K::prepare(q, nb, x, bias): one activation row's prepared codes (if any) and block biases;
//   K::tiles<NT, NA>(w, tiles, ar, out): NT tiles x NA rows into out[(a * NT + t) * 16 + lane].
template <class K>
void drive_q8_0_head(const WeightMatrix& w, const QuantizedActivations& a, float* y,
                     int64_t o_begin, int64_t o_end) {
  if (o_begin >= o_end || a.rows == 0) return;
  const int64_t m = a.rows, nb = w.k / kQ8_0Block;
  const int64_t batch = min64(m, kQ8RowBatch), row_bytes = nb * K::kPreparedBytes;
  auto* prepared =
      K::kPreparedBytes == 0
          ? nullptr
          : static_cast<int8_t*>(detail::scratch(0, static_cast<size_t>(batch * row_bytes)));
  auto* bias =
      static_cast<int32_t*>(detail::scratch(1, static_cast<size_t>(batch * nb) * sizeof(int32_t)));
  const int64_t t0 = o_begin / kPackRows, t1 = (o_end + kPackRows - 1) / kPackRows;
  alignas(32) float out[4 * kPackRows];
  // Activation rows [r0, r0 + na) of tiles ts[0..nt) from out to y, the output rows inside
  // [o_begin, o_end) only.
  auto emit_q8 = [&](int64_t r0, int na, const int64_t* ts, int nt) {
    for (int i = 0; i < na; ++i) {
      for (int j = 0; j < nt; ++j) {
        const int64_t first = ts[j] * kPackRows;
        for (int64_t o = max64(first, o_begin); o < min64(first + kPackRows, o_end); ++o)
          y[(r0 + i) * w.n_out + o] = out[(i * nt + j) * kPackRows + (o - first)];
      }
    }
  };
  for (int64_t r_batch = 0; r_batch < m; r_batch += batch) {
    const int64_t n = min64(m - r_batch, batch);
    for (int64_t r = 0; r < n; ++r)
      K::prepare(a.row(r_batch + r), nb, prepared == nullptr ? nullptr : prepared + r * row_bytes,
                 bias + r * nb);
    // The batch's rows [r, r + na); the other slots repeat the last one (computed, not emitted).
    auto rows_of = [&](int64_t r, int na) {
      Q8Rows ar{};
      for (int i = 0; i < 4; ++i) {
        const int64_t ri = r + (i < na ? i : na - 1);
        ar.x[i] = prepared == nullptr ? a.row(r_batch + ri) : prepared + ri * row_bytes;
        ar.bias[i] = bias + ri * nb;
        ar.d[i] = a.scales.data() + (r_batch + ri) * nb;
      }
      return ar;
    };
    if (n == 1) {
      // One activation row (decode): two weight streams, the range's two halves, a tile of each
      // at a time.
      const Q8Rows ar = rows_of(0, 1);
      const int64_t half = (t1 - t0) / 2;
      for (int64_t j = 0; j < half; ++j) {
        const int64_t ts[2] = {t0 + j, t0 + half + j};
        K::template tiles<2, 1>(w, ts, ar, out);
        emit_q8(r_batch, 1, ts, 2);
      }
      if (t0 + 2 * half < t1) {
        const int64_t ts[1] = {t1 - 1};
        K::template tiles<1, 1>(w, ts, ar, out);
        emit_q8(r_batch, 1, ts, 1);
      }
      continue;
    }
    // Tile by tile (it stays in cache), the batch's rows 4, then 2, then 1 at a time.
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t ts[1] = {t};
      int64_t r = 0;
      for (; r + 4 <= n; r += 4) {
        K::template tiles<1, 4>(w, ts, rows_of(r, 4), out);
        emit_q8(r_batch + r, 4, ts, 1);
      }
      if (n - r >= 2) {
        K::template tiles<1, 2>(w, ts, rows_of(r, 2), out);
        emit_q8(r_batch + r, 2, ts, 1);
        r += 2;
      }
      if (r < n) {
        K::template tiles<1, 1>(w, ts, rows_of(r, 1), out);
        emit_q8(r_batch + r, 1, ts, 1);
      }
    }
  }
}

}  // namespace
}  // namespace bitnet::kernels::avx2
