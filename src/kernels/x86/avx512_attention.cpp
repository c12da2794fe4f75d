// AVX-512 attention products (kernels/attention.h), bit-exact with ref/attention_ref.cpp.
// Compiled with the AVX-512 flags (src/kernels/CMakeLists.txt), under kernel_support.h's rules.
//
// Scores: lanes are 16 cache positions (K is stored transposed, so they are one load); each lane
// adds its float products in double in element order, in two 8-lane double vectors. Four blocks
// of 16 positions go together: eight independent add chains.
// Values: lanes are head dimensions (V by position); for each position in order, every lane adds
// (double)(p_j * v_ji): the reference's loop with the dimensions side by side.
//
// Groups of query rows sharing K and V, F16 cache: each K or V vector is converted to double
// once for up to 4 rows, and each row adds its product with one double FMA. The caller has
// rounded q and p to f16 (attention.h), so q_i * k_ji is exact in float (11 x 11 significant
// bits, exponents well inside float's range): the float product the reference converts to
// double is the exact product, and fma(k, q, acc) rounds acc + that product once, as the
// reference's add does. An F32 cache has no such guarantee and takes the single-row kernels.
#include <cstdint>

#include "kernels/attention.h"
#include "kernels/x86/avx512_units.h"
#include "kernels/x86/intrinsics_prelude.h"

namespace bitnet::kernels::avx512 {
namespace {

template <bool F16>
inline __m512 load16(const void* base, int64_t at, __mmask16 m) {
  if constexpr (F16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(base) + at));
  } else {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(base) + at);
  }
}

// 16 floats from two 8-lane double vectors (AVX512F only: no DQ insert).
inline __m512 join(__m512d lo, __m512d hi) {
  return _mm512_castpd_ps(
      _mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo))),
                         _mm256_castps_pd(_mm512_cvtpd_ps(hi)), 1));
}

// NB blocks of 16 positions starting at j0.
template <bool F16, int NB>
inline void score_blocks(const AttentionHead& a, int64_t j0, float* s) {
  __m512d lo[NB], hi[NB];
  __mmask16 m[NB];
  BITNET_UNROLL
  for (int b = 0; b < NB; ++b) {
    lo[b] = hi[b] = _mm512_setzero_pd();
    m[b] = lanes_below(a.n_kv - (j0 + 16 * b));
  }
  for (int i = 0; i < a.head_dim; ++i) {
    const __m512 qi = _mm512_set1_ps(a.q[i]);
    BITNET_UNROLL
    for (int b = 0; b < NB; ++b) {
      const __m512 prod = _mm512_mul_ps(load16<F16>(a.k, i * a.k_stride + j0 + 16 * b, m[b]), qi);
      lo[b] = _mm512_add_pd(lo[b], lo_pd(prod));
      hi[b] = _mm512_add_pd(hi[b], hi_pd(prod));
    }
  }
  const __m512 scale = _mm512_set1_ps(a.scale);
  BITNET_UNROLL
  for (int b = 0; b < NB; ++b) {
    const __m512 dot = join(lo[b], hi[b]);
    _mm512_mask_storeu_ps(s + j0 + 16 * b, m[b], _mm512_mul_ps(dot, scale));
  }
}

template <bool F16>
void scores(const AttentionHead& a, float* s) {
  int64_t j = 0;
  for (; j + 64 <= a.n_kv; j += 64) score_blocks<F16, 4>(a, j, s);
  // The last 1-63 positions also in one pass (each block has at least one position): one add
  // chain pair per block would otherwise wait out head_dim add latencies per 16 positions.
  const int64_t left = a.n_kv - j;
  if (left > 48) {
    score_blocks<F16, 4>(a, j, s);
  } else if (left > 32) {
    score_blocks<F16, 3>(a, j, s);
  } else if (left > 16) {
    score_blocks<F16, 2>(a, j, s);
  } else if (left > 0) {
    score_blocks<F16, 1>(a, j, s);
  }
}

// Dimensions [d0, d0 + 16 * ND) (masked past head_dim).
template <bool F16, int ND>
inline void value_dims(const AttentionHead& a, const float* p, int64_t d0, float* out) {
  __m512d lo[ND], hi[ND];
  __mmask16 m[ND];
  BITNET_UNROLL
  for (int c = 0; c < ND; ++c) {
    lo[c] = hi[c] = _mm512_setzero_pd();
    m[c] = lanes_below(a.head_dim - (d0 + 16 * c));
  }
  for (int j = 0; j < a.n_kv; ++j) {
    const __m512 pj = _mm512_set1_ps(p[j]);
    BITNET_UNROLL
    for (int c = 0; c < ND; ++c) {
      const __m512 prod = _mm512_mul_ps(load16<F16>(a.v, j * a.v_stride + d0 + 16 * c, m[c]), pj);
      lo[c] = _mm512_add_pd(lo[c], lo_pd(prod));
      hi[c] = _mm512_add_pd(hi[c], hi_pd(prod));
    }
  }
  BITNET_UNROLL
  for (int c = 0; c < ND; ++c) {
    const __m512 r = join(lo[c], hi[c]);
    _mm512_mask_storeu_ps(out + d0 + 16 * c, m[c], r);
  }
}

template <bool F16>
void values(const AttentionHead& a, const float* p, float* out) {
  // 128 dimensions (16 double vectors) per pass over the positions.
  for (int64_t d = 0; d < a.head_dim; d += 128) value_dims<F16, 8>(a, p, d, out);
}

// ---- groups of rows, F16 cache

constexpr int kGroupRows = 4;

// 16 f16 values at base + at (masked), as two 8-lane double vectors.
inline void load16_pd(const uint16_t* base, int64_t at, __mmask16 m, __m512d* lo, __m512d* hi) {
  const __m512 f = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, base + at));
  *lo = lo_pd(f);
  *hi = hi_pd(f);
}

// Scores of R rows for NB blocks of 16 positions from j0; qd[r * head_dim + i] = q_r[i].
template <int R, int NB>
inline void score_group_blocks(const AttentionHead& a, const double* qd, int64_t j0,
                               float* const* s) {
  const auto* k = static_cast<const uint16_t*>(a.k);
  __m512d lo[R][NB], hi[R][NB];
  __mmask16 m[NB];
  BITNET_UNROLL
  for (int b = 0; b < NB; ++b) {
    m[b] = lanes_below(a.n_kv - (j0 + 16 * b));
    BITNET_UNROLL
    for (int r = 0; r < R; ++r) lo[r][b] = hi[r][b] = _mm512_setzero_pd();
  }
  for (int i = 0; i < a.head_dim; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(k + i * a.k_stride + j0 + kScorePrefetchPositions),
                 _MM_HINT_T0);
    BITNET_UNROLL
    for (int b = 0; b < NB; ++b) {
      __m512d klo, khi;
      load16_pd(k, i * a.k_stride + j0 + 16 * b, m[b], &klo, &khi);
      BITNET_UNROLL
      for (int r = 0; r < R; ++r) {
        const __m512d q = _mm512_set1_pd(qd[r * a.head_dim + i]);
        lo[r][b] = _mm512_fmadd_pd(klo, q, lo[r][b]);
        hi[r][b] = _mm512_fmadd_pd(khi, q, hi[r][b]);
      }
    }
  }
  const __m512 scale = _mm512_set1_ps(a.scale);
  BITNET_UNROLL
  for (int r = 0; r < R; ++r) BITNET_UNROLL
  for (int b = 0; b < NB; ++b) {
    const __m512 dot = join(lo[r][b], hi[r][b]);
    _mm512_mask_storeu_ps(s[r] + j0 + 16 * b, m[b], _mm512_mul_ps(dot, scale));
  }
}

template <int R>
void score_group(const AttentionHead& a, const float* const* qs, float* const* s) {
  alignas(64) double qd[R * kMaxAttentionHeadDim];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < a.head_dim; ++i) qd[r * a.head_dim + i] = qs[r][i];
  int64_t j = 0;
  for (; j + 32 <= a.n_kv; j += 32) score_group_blocks<R, 2>(a, qd, j, s);
  if (j < a.n_kv) {
    a.n_kv - j > 16 ? score_group_blocks<R, 2>(a, qd, j, s) : score_group_blocks<R, 1>(a, qd, j, s);
  }
}

// Values of R rows for dimensions [d0, d0 + 16 * ND); pd[r * kChunk + j - j0] = p_r[j].
template <int R, int ND>
inline void value_group_dims(const AttentionHead& a, const float* const* p, int64_t d0,
                             float* const* out) {
  constexpr int kChunk = 64;
  const auto* v = static_cast<const uint16_t*>(a.v);
  __m512d lo[R][ND], hi[R][ND];
  __mmask16 m[ND];
  BITNET_UNROLL
  for (int c = 0; c < ND; ++c) {
    m[c] = lanes_below(a.head_dim - (d0 + 16 * c));
    BITNET_UNROLL
    for (int r = 0; r < R; ++r) lo[r][c] = hi[r][c] = _mm512_setzero_pd();
  }
  alignas(64) double pd[R * kChunk];
  for (int64_t j0 = 0; j0 < a.n_kv; j0 += kChunk) {
    const int64_t n = a.n_kv - j0 < kChunk ? a.n_kv - j0 : kChunk;
    for (int r = 0; r < R; ++r)
      for (int64_t j = 0; j < n; ++j) pd[r * kChunk + j] = p[r][j0 + j];
    for (int64_t j = 0; j < n; ++j) {
      _mm_prefetch(
          reinterpret_cast<const char*>(v + (j0 + j + kValuePrefetchPositions) * a.v_stride + d0),
          _MM_HINT_T0);
      BITNET_UNROLL
      for (int c = 0; c < ND; ++c) {
        __m512d vlo, vhi;
        load16_pd(v, (j0 + j) * a.v_stride + d0 + 16 * c, m[c], &vlo, &vhi);
        BITNET_UNROLL
        for (int r = 0; r < R; ++r) {
          const __m512d pj = _mm512_set1_pd(pd[r * kChunk + j]);
          lo[r][c] = _mm512_fmadd_pd(vlo, pj, lo[r][c]);
          hi[r][c] = _mm512_fmadd_pd(vhi, pj, hi[r][c]);
        }
      }
    }
  }
  BITNET_UNROLL
  for (int r = 0; r < R; ++r) BITNET_UNROLL
  for (int c = 0; c < ND; ++c)
    _mm512_mask_storeu_ps(out[r] + d0 + 16 * c, m[c], join(lo[r][c], hi[r][c]));
}

template <int R>
void value_group(const AttentionHead& a, const float* const* p, float* const* out) {
  // 32 dimensions (4 double vectors) of R rows per pass over the positions.
  for (int64_t d = 0; d < a.head_dim; d += 32) value_group_dims<R, 2>(a, p, d, out);
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

}  // namespace

void attention_scores_group(const AttentionHead& a, const float* const* qs, int n_q,
                            float* const* s) {
  if (!a.f16 || a.head_dim > kMaxAttentionHeadDim) {
    AttentionHead row = a;
    for (int r = 0; r < n_q; ++r) {
      row.q = qs[r];
      a.f16 ? scores<true>(row, s[r]) : scores<false>(row, s[r]);
    }
    return;
  }
  by_fours(n_q, [&]<int R>(int r) { score_group<R>(a, qs + r, s + r); });
}

void attention_values_group(const AttentionHead& a, int n_q, const float* const* p,
                            float* const* out) {
  if (!a.f16) {
    for (int r = 0; r < n_q; ++r) values<false>(a, p[r], out[r]);
    return;
  }
  by_fours(n_q, [&]<int R>(int r) { value_group<R>(a, p + r, out + r); });
}

void attention_scores(const AttentionHead& a, float* s) {
  a.f16 ? scores<true>(a, s) : scores<false>(a, s);
}
void attention_values(const AttentionHead& a, const float* p, float* out) {
  a.f16 ? values<true>(a, p, out) : values<false>(a, p, out);
}

}  // namespace bitnet::kernels::avx512
