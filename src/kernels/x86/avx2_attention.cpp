// AVX2 attention products (kernels/attention.h), bit-exact with ref/attention_ref.cpp: the
// AVX-512 kernels' scheme (avx512_attention.cpp) on 8-lane vectors. Compiled with the AVX2 flags
// (src/kernels/CMakeLists.txt), under kernel_support.h's rules.
//
// Scores: lanes are 8 cache positions (K is stored transposed); each lane adds its float products
// in double in element order, in two 4-lane double vectors; four blocks of 8 positions go
// together (eight add chains). Values: lanes are head dimensions; for each position in order,
// every lane adds (double)(p_j * v_ji). Groups of query rows sharing an F16 K and V: each K or V
// vector is converted to double once for up to 4 rows, and each row adds its product with one
// double FMA, exact because the caller rounded q and p to f16 (see avx512_attention.cpp).
// A block that runs past the cache or the head is loaded and stored in part (avx2_units.h).
#include <cstdint>

#include "kernels/attention.h"
#include "kernels/x86/avx2_attention_entries.h"
#include "kernels/x86/avx2_units.h"

namespace bitnet::kernels::avx2 {
namespace {

inline __m256d lo_pd(__m256 v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
inline __m256d hi_pd(__m256 v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
// 8 floats from two 4-lane double vectors.
inline __m256 join(__m256d lo, __m256d hi) {
  return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(lo)), _mm256_cvtpd_ps(hi), 1);
}

// NB blocks of 8 positions starting at j0 (each block holds at least one position).
template <bool F16, int NB>
inline void score_blocks(const AttentionHead& a, int64_t j0, float* s) {
  __m256d lo[NB], hi[NB];
  int64_t n[NB];
  BITNET_UNROLL
  for (int b = 0; b < NB; ++b) {
    lo[b] = hi[b] = _mm256_setzero_pd();
    n[b] = a.n_kv - (j0 + 8 * b);
  }
  for (int i = 0; i < a.head_dim; ++i) {
    const __m256 qi = _mm256_set1_ps(a.q[i]);
    BITNET_UNROLL
    for (int b = 0; b < NB; ++b) {
      const __m256 prod = _mm256_mul_ps(load_part<F16>(a.k, i * a.k_stride + j0 + 8 * b, n[b]), qi);
      lo[b] = _mm256_add_pd(lo[b], lo_pd(prod));
      hi[b] = _mm256_add_pd(hi[b], hi_pd(prod));
    }
  }
  const __m256 scale = _mm256_set1_ps(a.scale);
  BITNET_UNROLL
  for (int b = 0; b < NB; ++b)
    store_part(s + j0 + 8 * b, _mm256_mul_ps(join(lo[b], hi[b]), scale), n[b]);
}

template <bool F16>
void scores(const AttentionHead& a, float* s) {
  int64_t j = 0;
  for (; j + 32 <= a.n_kv; j += 32) score_blocks<F16, 4>(a, j, s);
  const int64_t left = a.n_kv - j;  // 0-31, in one pass
  if (left > 24) {
    score_blocks<F16, 4>(a, j, s);
  } else if (left > 16) {
    score_blocks<F16, 3>(a, j, s);
  } else if (left > 8) {
    score_blocks<F16, 2>(a, j, s);
  } else if (left > 0) {
    score_blocks<F16, 1>(a, j, s);
  }
}

// Dimensions [d0, d0 + 8 * ND) (those past head_dim are neither read nor written).
template <bool F16, int ND>
inline void value_dims(const AttentionHead& a, const float* p, int64_t d0, float* out) {
  __m256d lo[ND], hi[ND];
  int64_t n[ND];
  BITNET_UNROLL
  for (int c = 0; c < ND; ++c) {
    lo[c] = hi[c] = _mm256_setzero_pd();
    n[c] = a.head_dim - (d0 + 8 * c);
  }
  for (int j = 0; j < a.n_kv; ++j) {
    const __m256 pj = _mm256_set1_ps(p[j]);
    BITNET_UNROLL
    for (int c = 0; c < ND; ++c) {
      if (n[c] <= 0) continue;
      const __m256 prod = _mm256_mul_ps(load_part<F16>(a.v, j * a.v_stride + d0 + 8 * c, n[c]), pj);
      lo[c] = _mm256_add_pd(lo[c], lo_pd(prod));
      hi[c] = _mm256_add_pd(hi[c], hi_pd(prod));
    }
  }
  BITNET_UNROLL
  for (int c = 0; c < ND; ++c)
    if (n[c] > 0) store_part(out + d0 + 8 * c, join(lo[c], hi[c]), n[c]);
}

template <bool F16>
void values(const AttentionHead& a, const float* p, float* out) {
  // 32 dimensions (8 double vectors) per pass over the positions.
  for (int64_t d = 0; d < a.head_dim; d += 32) value_dims<F16, 4>(a, p, d, out);
}

// ---- groups of rows, F16 cache

constexpr int kGroupRows = 4;

// Scores of R rows for the 8 positions from j0; qd[r * head_dim + i] = q_r[i].
template <int R>
inline void score_group_block(const AttentionHead& a, const double* qd, int64_t j0,
                              float* const* s) {
  const int64_t n = a.n_kv - j0;
  __m256d lo[R], hi[R];
  BITNET_UNROLL
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm256_setzero_pd();
  const auto* kp = static_cast<const uint16_t*>(a.k);
  for (int i = 0; i < a.head_dim; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(kp + i * a.k_stride + j0 + kScorePrefetchPositions),
                 _MM_HINT_T0);
    const __m256 k = load_part<true>(a.k, i * a.k_stride + j0, n);
    const __m256d klo = lo_pd(k), khi = hi_pd(k);
    BITNET_UNROLL
    for (int r = 0; r < R; ++r) {
      const __m256d q = _mm256_broadcast_sd(qd + r * a.head_dim + i);
      lo[r] = _mm256_fmadd_pd(klo, q, lo[r]);
      hi[r] = _mm256_fmadd_pd(khi, q, hi[r]);
    }
  }
  const __m256 scale = _mm256_set1_ps(a.scale);
  BITNET_UNROLL
  for (int r = 0; r < R; ++r) store_part(s[r] + j0, _mm256_mul_ps(join(lo[r], hi[r]), scale), n);
}

template <int R>
void score_group(const AttentionHead& a, const float* const* qs, float* const* s) {
  alignas(32) double qd[R * kMaxAttentionHeadDim];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < a.head_dim; ++i) qd[r * a.head_dim + i] = qs[r][i];
  for (int64_t j = 0; j < a.n_kv; j += 8) score_group_block<R>(a, qd, j, s);
}

// Values of R rows for the 8 dimensions from d0; pd[r * kChunk + j - j0] = p_r[j].
template <int R>
inline void value_group_dims(const AttentionHead& a, const float* const* p, int64_t d0,
                             float* const* out) {
  constexpr int kChunk = 64;
  const int64_t n = a.head_dim - d0;
  __m256d lo[R], hi[R];
  BITNET_UNROLL
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm256_setzero_pd();
  alignas(32) double pd[R * kChunk];
  for (int64_t j0 = 0; j0 < a.n_kv; j0 += kChunk) {
    const int64_t m = a.n_kv - j0 < kChunk ? a.n_kv - j0 : kChunk;
    for (int r = 0; r < R; ++r)
      for (int64_t j = 0; j < m; ++j) pd[r * kChunk + j] = p[r][j0 + j];
    for (int64_t j = 0; j < m; ++j) {
      _mm_prefetch(
          reinterpret_cast<const char*>(static_cast<const uint16_t*>(a.v) +
                                        (j0 + j + kValuePrefetchPositions) * a.v_stride + d0),
          _MM_HINT_T0);
      const __m256 v = load_part<true>(a.v, (j0 + j) * a.v_stride + d0, n);
      const __m256d vlo = lo_pd(v), vhi = hi_pd(v);
      BITNET_UNROLL
      for (int r = 0; r < R; ++r) {
        const __m256d pj = _mm256_broadcast_sd(pd + r * kChunk + j);
        lo[r] = _mm256_fmadd_pd(vlo, pj, lo[r]);
        hi[r] = _mm256_fmadd_pd(vhi, pj, hi[r]);
      }
    }
  }
  BITNET_UNROLL
  for (int r = 0; r < R; ++r) store_part(out[r] + d0, join(lo[r], hi[r]), n);
}

template <int R>
void value_group(const AttentionHead& a, const float* const* p, float* const* out) {
  for (int64_t d = 0; d < a.head_dim; d += 8) value_group_dims<R>(a, p, d, out);
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

void attention_scores(const AttentionHead& a, float* s) {
  a.f16 ? scores<true>(a, s) : scores<false>(a, s);
}

void attention_values(const AttentionHead& a, const float* p, float* out) {
  a.f16 ? values<true>(a, p, out) : values<false>(a, p, out);
}

void attention_scores_group(const AttentionHead& a, const float* const* qs, int n_q,
                            float* const* s) {
  if (!a.f16 || a.head_dim > kMaxAttentionHeadDim) {
    AttentionHead row = a;
    for (int r = 0; r < n_q; ++r) {
      row.q = qs[r];
      attention_scores(row, s[r]);
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

}  // namespace bitnet::kernels::avx2
