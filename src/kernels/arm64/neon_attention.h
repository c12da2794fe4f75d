// ARM64 attention products (kernels/attention.h), bit-exact with ref/attention_ref.cpp: the x86
// kernels' scheme (x86/avx2_attention.cpp) on 4-lane float and 2-lane double vectors. Included by
// both ARM64 units (internal linkage).
//
// Scores: lanes are 4 cache positions (K is stored transposed); each lane adds its float products
// in double in element order, in two 2-lane double vectors; four blocks of 4 positions go
// together (eight add chains). Values: lanes are head dimensions; for each position in order,
// every lane adds (double)(p_j * v_ji). Groups of query rows sharing an F16 K and V: each K or V
// vector is converted to double once for up to 4 rows, and each row adds its product with one
// double FMA, exact because the caller rounded q and p to f16 (an f16 x f16 product is exact in
// float, so the FMA rounds once where the reference rounds its add once).
#pragma once

#include <cstdint>

#include "kernels/arm64/neon_units.h"
#include "kernels/attention.h"

namespace bitnet::kernels {
namespace {

inline float64x2_t lo_pd(float32x4_t v) { return vcvt_f64_f32(vget_low_f32(v)); }
inline float64x2_t hi_pd(float32x4_t v) { return vcvt_high_f64_f32(v); }
// 4 floats from two 2-lane double vectors.
inline float32x4_t join(float64x2_t lo, float64x2_t hi) {
  return vcvt_high_f32_f64(vcvt_f32_f64(lo), hi);
}

// NB blocks of 4 positions starting at j0 (each block holds at least one position).
template <bool F16, int NB>
inline void score_blocks(const AttentionHead& a, int64_t j0, float* s) {
  float64x2_t lo[NB], hi[NB];
  int64_t n[NB];
  BITNET_UNROLL
  for (int b = 0; b < NB; ++b) {
    lo[b] = hi[b] = vdupq_n_f64(0.0);
    n[b] = a.n_kv - (j0 + 4 * b);
  }
  for (int i = 0; i < a.head_dim; ++i) {
    const float32x4_t qi = vdupq_n_f32(a.q[i]);
    BITNET_UNROLL
    for (int b = 0; b < NB; ++b) {
      const float32x4_t prod =
          vmulq_f32(load_part<F16>(a.k, i * a.k_stride + j0 + 4 * b, n[b]), qi);
      lo[b] = vaddq_f64(lo[b], lo_pd(prod));
      hi[b] = vaddq_f64(hi[b], hi_pd(prod));
    }
  }
  const float32x4_t scale = vdupq_n_f32(a.scale);
  BITNET_UNROLL
  for (int b = 0; b < NB; ++b)
    store_part(s + j0 + 4 * b, vmulq_f32(join(lo[b], hi[b]), scale), n[b]);
}

template <bool F16>
void scores(const AttentionHead& a, float* s) {
  int64_t j = 0;
  for (; j + 16 <= a.n_kv; j += 16) score_blocks<F16, 4>(a, j, s);
  const int64_t left = a.n_kv - j;  // 0-15, in one pass
  if (left > 12) {
    score_blocks<F16, 4>(a, j, s);
  } else if (left > 8) {
    score_blocks<F16, 3>(a, j, s);
  } else if (left > 4) {
    score_blocks<F16, 2>(a, j, s);
  } else if (left > 0) {
    score_blocks<F16, 1>(a, j, s);
  }
}

// Dimensions [d0, d0 + 4 * ND) (those past head_dim are neither read nor written).
template <bool F16, int ND>
inline void value_dims(const AttentionHead& a, const float* p, int64_t d0, float* out) {
  float64x2_t lo[ND], hi[ND];
  int64_t n[ND];
  BITNET_UNROLL
  for (int c = 0; c < ND; ++c) {
    lo[c] = hi[c] = vdupq_n_f64(0.0);
    n[c] = a.head_dim - (d0 + 4 * c);
  }
  for (int j = 0; j < a.n_kv; ++j) {
    const float32x4_t pj = vdupq_n_f32(p[j]);
    BITNET_UNROLL
    for (int c = 0; c < ND; ++c) {
      if (n[c] <= 0) continue;
      const float32x4_t prod =
          vmulq_f32(load_part<F16>(a.v, j * a.v_stride + d0 + 4 * c, n[c]), pj);
      lo[c] = vaddq_f64(lo[c], lo_pd(prod));
      hi[c] = vaddq_f64(hi[c], hi_pd(prod));
    }
  }
  BITNET_UNROLL
  for (int c = 0; c < ND; ++c)
    if (n[c] > 0) store_part(out + d0 + 4 * c, join(lo[c], hi[c]), n[c]);
}

template <bool F16>
void values(const AttentionHead& a, const float* p, float* out) {
  // 16 dimensions (8 double vectors) per pass over the positions.
  for (int64_t d = 0; d < a.head_dim; d += 16) value_dims<F16, 4>(a, p, d, out);
}

// ---- groups of rows, F16 cache

constexpr int kGroupRows = 4;

// Scores of R rows for the 4 positions from j0; qd[r * head_dim + i] = q_r[i].
template <int R>
inline void score_group_block(const AttentionHead& a, const double* qd, int64_t j0,
                              float* const* s) {
  const int64_t n = a.n_kv - j0;
  float64x2_t lo[R], hi[R];
  BITNET_UNROLL
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = vdupq_n_f64(0.0);
  const auto* kp = static_cast<const uint16_t*>(a.k);
  for (int i = 0; i < a.head_dim; ++i) {
    __builtin_prefetch(kp + i * a.k_stride + j0 + kScorePrefetchPositions);
    const float32x4_t k = load_part<true>(a.k, i * a.k_stride + j0, n);
    const float64x2_t klo = lo_pd(k), khi = hi_pd(k);
    BITNET_UNROLL
    for (int r = 0; r < R; ++r) {
      const float64x2_t q = vdupq_n_f64(qd[r * a.head_dim + i]);
      lo[r] = vfmaq_f64(lo[r], klo, q);
      hi[r] = vfmaq_f64(hi[r], khi, q);
    }
  }
  const float32x4_t scale = vdupq_n_f32(a.scale);
  BITNET_UNROLL
  for (int r = 0; r < R; ++r) store_part(s[r] + j0, vmulq_f32(join(lo[r], hi[r]), scale), n);
}

template <int R>
void score_group(const AttentionHead& a, const float* const* qs, float* const* s) {
  double qd[R * kMaxAttentionHeadDim];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < a.head_dim; ++i) qd[r * a.head_dim + i] = qs[r][i];
  for (int64_t j = 0; j < a.n_kv; j += 4) score_group_block<R>(a, qd, j, s);
}

// Values of R rows for the 4 dimensions from d0; pd[r * kChunk + j - j0] = p_r[j].
template <int R>
inline void value_group_dims(const AttentionHead& a, const float* const* p, int64_t d0,
                             float* const* out) {
  constexpr int kChunk = 64;
  const int64_t n = a.head_dim - d0;
  float64x2_t lo[R], hi[R];
  BITNET_UNROLL
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = vdupq_n_f64(0.0);
  double pd[R * kChunk];
  for (int64_t j0 = 0; j0 < a.n_kv; j0 += kChunk) {
    const int64_t m = a.n_kv - j0 < kChunk ? a.n_kv - j0 : kChunk;
    for (int r = 0; r < R; ++r)
      for (int64_t j = 0; j < m; ++j) pd[r * kChunk + j] = p[r][j0 + j];
    for (int64_t j = 0; j < m; ++j) {
      __builtin_prefetch(static_cast<const uint16_t*>(a.v) +
                         (j0 + j + kValuePrefetchPositions) * a.v_stride + d0);
      const float32x4_t v = load_part<true>(a.v, (j0 + j) * a.v_stride + d0, n);
      const float64x2_t vlo = lo_pd(v), vhi = hi_pd(v);
      BITNET_UNROLL
      for (int r = 0; r < R; ++r) {
        const float64x2_t pj = vdupq_n_f64(pd[r * kChunk + j]);
        lo[r] = vfmaq_f64(lo[r], vlo, pj);
        hi[r] = vfmaq_f64(hi[r], vhi, pj);
      }
    }
  }
  BITNET_UNROLL
  for (int r = 0; r < R; ++r) store_part(out[r] + d0, join(lo[r], hi[r]), n);
}

template <int R>
void value_group(const AttentionHead& a, const float* const* p, float* const* out) {
  for (int64_t d = 0; d < a.head_dim; d += 4) value_group_dims<R>(a, p, d, out);
}

// Rows in groups of 4, the rest (1-3) together: fn.template operator()<R>(r) for rows [r, r + R).
template <class Fn>
inline void by_fours(int n_q, const Fn& fn) {
  int r = 0;
  for (; r + kGroupRows <= n_q; r += kGroupRows) fn.template operator()<kGroupRows>(r);
  switch (n_q - r) {
    case 3:
      fn.template operator()<3>(r);
      break;
    case 2:
      fn.template operator()<2>(r);
      break;
    case 1:
      fn.template operator()<1>(r);
      break;
    default:
      break;
  }
}

inline void scores_entry(const AttentionHead& a, float* s) {
  a.f16 ? scores<true>(a, s) : scores<false>(a, s);
}

inline void values_entry(const AttentionHead& a, const float* p, float* out) {
  a.f16 ? values<true>(a, p, out) : values<false>(a, p, out);
}

inline void scores_group_entry(const AttentionHead& a, const float* const* qs, int n_q,
                               float* const* s) {
  if (!a.f16 || a.head_dim > kMaxAttentionHeadDim) {
    AttentionHead row = a;
    for (int r = 0; r < n_q; ++r) {
      row.q = qs[r];
      scores_entry(row, s[r]);
    }
    return;
  }
  by_fours(n_q, [&]<int R>(int r) { score_group<R>(a, qs + r, s + r); });
}

inline void values_group_entry(const AttentionHead& a, int n_q, const float* const* p,
                               float* const* out) {
  if (!a.f16) {
    for (int r = 0; r < n_q; ++r) values<false>(a, p[r], out[r]);
    return;
  }
  by_fours(n_q, [&]<int R>(int r) { value_group<R>(a, p + r, out + r); });
}

}  // namespace
}  // namespace bitnet::kernels
