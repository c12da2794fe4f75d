// AVX-512 elementwise ops (kernels/elementwise.h), bit-exact with ref/elementwise_ref.cpp.
// Compiled with the AVX-512 flags and -ffp-contract=off (src/kernels/CMakeLists.txt): every
// multiply and add below stays a separate, rounded operation, as in the reference.
//
// swiglu: ggml's SSE2 ggml_v_expf is a lane-wise formula with data-dependent branches (|n| > 126,
// |n| > 192); here all three results are computed for 16 lanes and each lane picks the one its
// scalar evaluation would return. The same lanes as the reference (whole groups of 4) take this
// formula; the tail of fewer than 4 stays scalar (libm's expf).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/elementwise.h"
#include "kernels/ggml_math.h"
#include "kernels/x86/avx512_units.h"
#include "kernels/x86/intrinsics_prelude.h"

namespace bitnet::kernels::avx512 {
namespace {

inline __m512 from_bits(__m512i v) { return _mm512_castsi512_ps(v); }
inline __m512i to_bits(__m512 v) { return _mm512_castps_si512(v); }

// 16 lanes of ggml_vexpf (ggml_math.h), operation for operation.
inline __m512 vexpf16(__m512 x) {
  const __m512 r = _mm512_set1_ps(0x1.8p23f);
  const __m512 z = _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(0x1.715476p+0f)), r);
  const __m512 n = _mm512_sub_ps(z, r);
  const __m512 b = _mm512_sub_ps(_mm512_sub_ps(x, _mm512_mul_ps(n, _mm512_set1_ps(0x1.62e4p-1f))),
                                 _mm512_mul_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f)));
  const __m512i e = _mm512_slli_epi32(to_bits(z), 23);
  const __m512 k = from_bits(_mm512_add_epi32(e, to_bits(_mm512_set1_ps(1.0f))));
  const __m512 u = _mm512_mul_ps(b, b);
  const __m512 p1 = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(0x1.0e4020p-7f), b),
                                  _mm512_set1_ps(0x1.573e2ep-5f));
  const __m512 p2 = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(0x1.555e66p-3f), b),
                                  _mm512_set1_ps(0x1.fffdb6p-2f));
  const __m512 j = _mm512_add_ps(_mm512_mul_ps(_mm512_add_ps(_mm512_mul_ps(p1, u), p2), u),
                                 _mm512_mul_ps(_mm512_set1_ps(0x1.ffffecp-1f), b));
  const __m512 normal = _mm512_add_ps(_mm512_mul_ps(j, k), k);
  const __m512 abs_n = _mm512_abs_ps(n);
  // Ordered comparisons: a NaN n is not > 126, so such lanes keep `normal`, as in the scalar.
  const __mmask16 big = _mm512_cmp_ps_mask(abs_n, _mm512_set1_ps(126.0f), _CMP_GT_OQ);
  if (big == 0) return normal;
  const __mmask16 neg = _mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ);
  const __m512i g = _mm512_maskz_mov_epi32(neg, _mm512_set1_epi32(static_cast<int>(0x82000000u)));
  const __m512 s1 = from_bits(_mm512_add_epi32(g, _mm512_set1_epi32(0x7f000000)));
  const __m512 s2 = from_bits(_mm512_sub_epi32(e, g));
  const __m512 huge = _mm512_mul_ps(s1, s1);
  const __m512 scaled = _mm512_mul_ps(_mm512_add_ps(_mm512_mul_ps(s2, j), s2), s1);
  const __mmask16 very_big = _mm512_cmp_ps_mask(abs_n, _mm512_set1_ps(192.0f), _CMP_GT_OQ);
  __m512 out = _mm512_mask_blend_ps(big, normal, scaled);
  return _mm512_mask_blend_ps(very_big, out, huge);
}

}  // namespace

void swiglu(int64_t n, float* y, const float* x, const float* g) {
  const int64_t full = n / 4 * 4;  // the reference's vector lanes (whole groups of 4)
  int64_t i = 0;
  for (; i + 16 <= full; i += 16) {
    const __m512 xv = _mm512_loadu_ps(x + i);
    const __m512 e = vexpf16(_mm512_sub_ps(_mm512_setzero_ps(), xv));
    const __m512 silu = _mm512_div_ps(xv, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    _mm512_storeu_ps(y + i, _mm512_mul_ps(silu, _mm512_loadu_ps(g + i)));
  }
  for (; i < full; ++i) y[i] = ggml_vsilu(x[i]) * g[i];
  for (; i < n; ++i) y[i] = x[i] / (1.0f + std::exp(-x[i])) * g[i];
}

// MAXPS returns its second operand unless the first is greater, so max(x, 0) is exactly the
// reference's x > 0 ? x : 0, NaN and -0 included.
void relu_sqr_mul(int64_t n, float* y, const float* x, const float* g) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 r = _mm512_max_ps(_mm512_loadu_ps(x + i), _mm512_setzero_ps());
    _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_mul_ps(r, r), _mm512_loadu_ps(g + i)));
  }
  if (i < n) {
    const __mmask16 m = lanes_below(n - i);
    const __m512 r = _mm512_max_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_setzero_ps());
    _mm512_mask_storeu_ps(y + i, m,
                          _mm512_mul_ps(_mm512_mul_ps(r, r), _mm512_maskz_loadu_ps(m, g + i)));
  }
}

void fp32_to_fp16_row(const float* x, int64_t n, uint16_t* y) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i),
                        _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  }
  if (i < n) {
    const __mmask16 m = lanes_below(n - i);
    _mm256_mask_storeu_epi16(
        y + i, m, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT));
  }
}

// The squares summed in 32 double lanes (4 vectors, each lane in element order), then the lanes;
// mean_square_from_sum turns that into the reference's mean (elementwise.h).
void rms_norm(const float* x, const float* w, int64_t n, float eps, float* y) {
  __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
    const __m512 s0 = _mm512_mul_ps(v0, v0), s1 = _mm512_mul_ps(v1, v1);
    a0 = _mm512_add_pd(a0, lo_pd(s0));
    a1 = _mm512_add_pd(a1, hi_pd(s0));
    a2 = _mm512_add_pd(a2, lo_pd(s1));
    a3 = _mm512_add_pd(a3, hi_pd(s1));
  }
  for (; i < n; i += 16) {  // masked-off lanes load 0, whose square adds nothing
    const __m512 v = _mm512_maskz_loadu_ps(lanes_below(n - i), x + i);
    const __m512 sq = _mm512_mul_ps(v, v);
    a0 = _mm512_add_pd(a0, lo_pd(sq));
    a1 = _mm512_add_pd(a1, hi_pd(sq));
  }
  const double sum =
      _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
  const float scale = 1.0f / std::sqrt(mean_square_from_sum(sum, x, n) + eps);
  const __m512 vs = _mm512_set1_ps(scale);
  for (i = 0; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(
        y + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), vs), _mm512_loadu_ps(w + i)));
  }
  for (; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}

namespace {

// F16C's conversion is core/fp16.h's, bit for bit (round to nearest even, NaN payloads kept).
inline __m512 via_f16(__m512 v) {
  return _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}

}  // namespace

void round_to_f16(float* x, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes_below(n - i);
    _mm512_mask_storeu_ps(x + i, m, via_f16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

// The reference's steps on 16 lanes. Max: VMAXPS returns its second operand when the first is
// NaN, as std::max(max, s_j) keeps max. Sums: within each group of 4 lanes, (e0 + e1) + (e2 + e3)
// by two in-lane swaps and adds (lane 0 of the group holds it); lanes past n are 0, as the
// reference's missing group members; the groups' sums are then added in double in order.
void softmax_probs(float* s, int64_t n, bool round_f16) {
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  __m512 vmax = ninf;
  for (int64_t i = 0; i < n; i += 16)
    vmax = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, lanes_below(n - i), s + i), vmax);
  const __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
  double sum = 0.0;
  alignas(64) float groups[16];
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes_below(n - i);
    const __m512 e =
        _mm512_maskz_mov_ps(m, vexpf16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + i), max)));
    _mm512_mask_storeu_ps(s + i, m, e);
    const __m512 pairs = _mm512_add_ps(e, _mm512_permute_ps(e, 0xB1));  // e0 + e1, e2 + e3
    _mm512_store_ps(groups, _mm512_add_ps(pairs, _mm512_permute_ps(pairs, 0x4E)));
    const int64_t n_groups = std::min<int64_t>(4, (n - i + 3) / 4);
    for (int64_t g = 0; g < n_groups; ++g) sum += static_cast<double>(groups[4 * g]);
  }
  const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / sum));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes_below(n - i);
    const __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + i), inv);
    _mm512_mask_storeu_ps(s + i, m, round_f16 ? via_f16(p) : p);
  }
}

}  // namespace bitnet::kernels::avx512
