// AVX2 SwiGLU and softmax (kernels/elementwise.h), bit-exact with ref/elementwise_ref.cpp: the
// AVX-512 kernels' scheme (avx512_elementwise.cpp) on 8 lanes. Compiled with the AVX2 flags and
// -ffp-contract=off (src/kernels/CMakeLists.txt): every multiply and add stays a separate,
// rounded operation, as in the reference. Tails go to the references themselves (compiled with
// the baseline flags) rather than to inline copies of their formulas built here.
#include <cstdint>

#include "kernels/elementwise.h"
#include "kernels/x86/avx2_elementwise_entries.h"
#include "kernels/x86/avx2_units.h"

namespace bitnet::kernels::avx2 {
namespace {

inline __m256 from_bits(__m256i v) { return _mm256_castsi256_ps(v); }
inline __m256i to_bits(__m256 v) { return _mm256_castps_si256(v); }

// 8 lanes of ggml_vexpf (ggml_math.h), operation for operation; each lane takes the result its
// scalar evaluation returns (ordered comparisons: a NaN n keeps the normal formula).
inline __m256 vexpf8(__m256 x) {
  const __m256 r = _mm256_set1_ps(0x1.8p23f);
  const __m256 z = _mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(0x1.715476p+0f)), r);
  const __m256 n = _mm256_sub_ps(z, r);
  const __m256 b = _mm256_sub_ps(_mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0x1.62e4p-1f))),
                                 _mm256_mul_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f)));
  const __m256i e = _mm256_slli_epi32(to_bits(z), 23);
  const __m256 k = from_bits(_mm256_add_epi32(e, to_bits(_mm256_set1_ps(1.0f))));
  const __m256 u = _mm256_mul_ps(b, b);
  const __m256 p1 = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(0x1.0e4020p-7f), b),
                                  _mm256_set1_ps(0x1.573e2ep-5f));
  const __m256 p2 = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(0x1.555e66p-3f), b),
                                  _mm256_set1_ps(0x1.fffdb6p-2f));
  const __m256 j = _mm256_add_ps(_mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(p1, u), p2), u),
                                 _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
  const __m256 normal = _mm256_add_ps(_mm256_mul_ps(j, k), k);
  const __m256 abs_n = _mm256_and_ps(n, from_bits(_mm256_set1_epi32(0x7fffffff)));
  const __m256 big = _mm256_cmp_ps(abs_n, _mm256_set1_ps(126.0f), _CMP_GT_OQ);
  if (_mm256_movemask_ps(big) == 0) return normal;
  const __m256 neg = _mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ);
  const __m256i g =
      _mm256_and_si256(to_bits(neg), _mm256_set1_epi32(static_cast<int>(0x82000000u)));
  const __m256 s1 = from_bits(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
  const __m256 s2 = from_bits(_mm256_sub_epi32(e, g));
  const __m256 huge = _mm256_mul_ps(s1, s1);
  const __m256 scaled = _mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(s2, j), s2), s1);
  const __m256 very_big = _mm256_cmp_ps(abs_n, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
  return _mm256_blendv_ps(_mm256_blendv_ps(normal, scaled, big), huge, very_big);
}

// Lanes below n (all when n >= 8) as an all-ones mask.
inline __m256 lanes_below(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const int c = n >= 8 ? 8 : static_cast<int>(n);
  return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(c), idx));
}

// F16C's conversion is core/fp16.h's, bit for bit (round to nearest even, NaN payloads kept).
inline __m256 via_f16(__m256 v) {
  return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}

}  // namespace

void swiglu(int64_t n, float* y, const float* x, const float* g) {
  const int64_t full = n / 4 * 4;  // the reference's vector lanes (whole groups of 4)
  int64_t i = 0;
  for (; i + 8 <= full; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    const __m256 e = vexpf8(_mm256_sub_ps(_mm256_setzero_ps(), xv));
    const __m256 silu = _mm256_div_ps(xv, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(silu, _mm256_loadu_ps(g + i)));
  }
  // i is a multiple of 4, so the rest has the reference's grouping from its own start.
  if (i < n) swiglu_ref(n - i, y + i, x + i, g + i);
}

// The reference's steps on 8 lanes. Max: VMAXPS returns its second operand when the first is
// NaN, as std::max(max, s_j) keeps max. Sums: within each group of 4 lanes, (e0 + e1) + (e2 + e3)
// by two in-lane swaps and adds (lane 0 of the group holds it); lanes past n are 0, as the
// reference's missing group members; the groups' sums are then added in double in order.
void softmax_probs(float* s, int64_t n, bool round_f16) {
  __m256 vmax = _mm256_set1_ps(-__builtin_inff());
  for (int64_t i = 0; i < n; i += 8)
    vmax = _mm256_max_ps(load_part<false>(s, i, n - i, -__builtin_inff()), vmax);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, vmax);
  float m = lanes[0];
  for (int l = 1; l < 8; ++l) m = lanes[l] > m ? lanes[l] : m;
  const __m256 max = _mm256_set1_ps(m);
  double sum = 0.0;
  alignas(32) float groups[8];
  for (int64_t i = 0; i < n; i += 8) {
    const __m256 e = _mm256_and_ps(lanes_below(n - i),
                                   vexpf8(_mm256_sub_ps(load_part<false>(s, i, n - i), max)));
    store_part(s + i, e, n - i);
    const __m256 pairs = _mm256_add_ps(e, _mm256_permute_ps(e, 0xB1));  // e0 + e1, e2 + e3
    _mm256_store_ps(groups, _mm256_add_ps(pairs, _mm256_permute_ps(pairs, 0x4E)));
    sum += static_cast<double>(groups[0]);
    if (n - i > 4) sum += static_cast<double>(groups[4]);
  }
  const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / sum));
  for (int64_t i = 0; i < n; i += 8) {
    const __m256 p = _mm256_mul_ps(load_part<false>(s, i, n - i), inv);
    store_part(s + i, round_f16 ? via_f16(p) : p, n - i);
  }
}

}  // namespace bitnet::kernels::avx2
