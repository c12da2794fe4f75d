// AVX2 + FMA + F16C kernels (Haswell and later, Zen). Compiled with their own flags
// (src/kernels/CMakeLists.txt) and chosen at run time (dispatch.cpp); internal linkage only, no
// standard library templates instantiated (see kernel_support.h).
//
// Ternary kernels are bit-exact with ref/matmul_ref.cpp; see avx512_kernels.cpp for the scheme
// (sum c q - sum q with codes c in {0..3}, exact int32 sums, the reference's float operations).
// Here the products come from VPMADDUBSW (unsigned codes x signed activations -> int16 pair
// sums, saturating) and VPMADDWD with ones (int16 -> int32):
//  - a VPMADDUBSW lane is c_a q_a + c_b q_b with c <= 3, |q| <= 128: |.| <= 768, never saturates;
//  - at most 10 such results are added in int16 before widening (TQ1_0: 5 trits x 2 parts;
//    I2_S: 4 groups; TQ2_0: 8): |.| <= 7680 < 32767;
//  - int32 lanes: |.| <= 384 k / 8, and the final sums <= 512 k, inside int32 for k <= 2^22.
// I2_S and TQ2_0 activations are used in place (group g of a 128-element half is 32 consecutive
// codes); TQ1_0's second part (16 + 4 bytes) gets rearranged activation vectors.
//
// The Q8_0 head: bit-exact with its reference as well, from VPMADDUBSW on the stored biased codes
// and activation codes split into parts small enough that no int16 sum saturates (see its
// section).
//
// Float kernels: bit-exact with the scalar reference too (8 output rows in the lanes, each
// adding its float products in double in the reference's order, from transposed 8 x 8 weight
// blocks).
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/fp16.h"
#include "kernels/kernel_support.h"
#include "kernels/kernel_table.h"
#include "kernels/x86/avx2_attention_entries.h"
#include "kernels/x86/avx2_elementwise_entries.h"
#include "kernels/x86/avx2_packed_drivers.h"
#include "kernels/x86/avx2_packed_entries.h"
#include "kernels/x86/avx2_vnni_entries.h"
#include "kernels/x86/intrinsics_prelude.h"

namespace bitnet::kernels {
namespace {

using gguf::TensorType;

inline float hmax8(__m256 v) {
  __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  x = _mm_max_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

inline int32_t hsum8_epi32(__m256i v) {
  __m128i x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  x = _mm_add_epi32(x, _mm_unpackhi_epi64(x, x));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(x);
}

inline __m256 abs_ps(__m256 v) {
  return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
}

// The low byte of each int32 lane of a, b, c, d (in that order) -> 32 bytes, i.e. the C++
// conversion int -> int8_t.
inline __m256i low_bytes(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ff = _mm256_set1_epi32(0xFF);
  const __m256i ab = _mm256_packus_epi32(_mm256_and_si256(a, ff), _mm256_and_si256(b, ff));
  const __m256i cd = _mm256_packus_epi32(_mm256_and_si256(c, ff), _mm256_and_si256(d, ff));
  // Per 128-bit lane: a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7 (dwords).
  return _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd),
                                     _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// 4 KiB software prefetch ahead of each weight row's read position (see avx512_kernels.cpp).
constexpr int64_t kPrefetchBytes = 4096;
inline void prefetch_ahead(const uint8_t* p) {
  _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes), _MM_HINT_T0);
}

// ------------------------------------------------------------------ activation quantization

// Per-token int8 (bitnet.cpp), NaN handled as the reference does on x86 (see avx512_kernels.cpp).
void quant32_per_token(const float* x, __m256 vs, int8_t* q) {
  const __m256 hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-128.0f);
  __m256i v[4];
  BITNET_UNROLL
  for (int j = 0; j < 4; ++j) {
    __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * j), vs),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_max_ps(lo, _mm256_min_ps(hi, r));  // NaN stays NaN (second operand)
    v[j] = _mm256_cvttps_epi32(r);
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), low_bytes(v[0], v[1], v[2], v[3]));
}

float quantize_row_per_token(const float* x, int64_t k, int8_t* q) {
  __m256 vmax = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) vmax = _mm256_max_ps(abs_ps(_mm256_loadu_ps(x + i)), vmax);
  float tail[32];
  const int64_t k32 = k / 32 * 32;
  if (i < k) {
    std::memset(tail, 0, sizeof(tail));
    std::memcpy(tail, x + i, static_cast<size_t>(k - i) * sizeof(float));
    vmax = _mm256_max_ps(abs_ps(_mm256_loadu_ps(tail)), vmax);
  }
  double m = static_cast<double>(hmax8(vmax));
  if (m < 1e-5) m = 1e-5;
  const float s = static_cast<float>(127.0 / m);
  const __m256 vs = _mm256_set1_ps(s);
  for (i = 0; i < k32; i += 32) quant32_per_token(x + i, vs, q + i);
  if (k32 < k) {
    std::memset(tail, 0, sizeof(tail));
    std::memcpy(tail, x + k32, static_cast<size_t>(k - k32) * sizeof(float));
    int8_t qt[32];
    quant32_per_token(tail, vs, qt);
    std::memcpy(q + k32, qt, static_cast<size_t>(k - k32));
  }
  return s;
}

// Q8_K, one 256-block (llama.cpp's quantize_row_q8_K_ref; see avx512_kernels.cpp).
void quantize_block_q8k(const float* x, int8_t* q, float* d, int16_t* bsums) {
  __m256 vmax = _mm256_setzero_ps();
  BITNET_UNROLL
  for (int j = 0; j < 256; j += 8) vmax = _mm256_max_ps(abs_ps(_mm256_loadu_ps(x + j)), vmax);
  const float amax = hmax8(vmax);
  if (amax == 0.0f) {
    *d = 0.0f;
    std::memset(q, 0, 256);
    BITNET_UNROLL
    for (int g = 0; g < 16; ++g) bsums[g] = 0;
    return;
  }
  float max = 0.0f;
  const __m256 va = _mm256_set1_ps(amax);
  BITNET_UNROLL
  for (int j = 0; j < 256; j += 8) {
    const int eq =
        _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + j)), va, _CMP_EQ_OQ));
    if (eq != 0) {
      max = x[j + __builtin_ctz(static_cast<unsigned>(eq))];
      break;
    }
  }
  const float iscale = -127.0f / max;
  const __m256 vs = _mm256_set1_ps(iscale);
  const __m256i c127 = _mm256_set1_epi32(127);
  BITNET_UNROLL
  for (int j = 0; j < 256; j += 32) {
    __m256i v[4];
    BITNET_UNROLL
    for (int t = 0; t < 4; ++t) {
      const __m256 p = _mm256_mul_ps(vs, _mm256_loadu_ps(x + j + 8 * t));
      v[t] = _mm256_min_epi32(
          _mm256_cvttps_epi32(_mm256_round_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)),
          c127);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + j), low_bytes(v[0], v[1], v[2], v[3]));
    BITNET_UNROLL
    for (int t = 0; t < 4; t += 2) {  // sums of the stored (sign-extended) bytes, 16 at a time
      const __m256i s = _mm256_add_epi32(_mm256_srai_epi32(_mm256_slli_epi32(v[t], 24), 24),
                                         _mm256_srai_epi32(_mm256_slli_epi32(v[t + 1], 24), 24));
      bsums[(j + 8 * t) / 16] = static_cast<int16_t>(hsum8_epi32(s));
    }
  }
  *d = 1.0f / iscale;
}

void quantize(ActQuant kind, const float* x, int64_t rows, int64_t k, QuantizedRows out) {
  int8_t* q = out.q;
  float* scales = out.scales;
  if (kind == ActQuant::kPerTokenInt8) {
    for (int64_t r = 0; r < rows; ++r) scales[r] = quantize_row_per_token(x + r * k, k, q + r * k);
    return;
  }
  int16_t* bsums = out.bsums;
  const int64_t nb = rows * (k / kQ8KBlock);
  for (int64_t b = 0; b < nb; ++b) {
    quantize_block_q8k(x + b * kQ8KBlock, q + b * kQ8KBlock, scales + b, bsums + b * 16);
  }
}

// ------------------------------------------------------------------ shared pieces

inline __m256i widen16(__m256i s16) { return _mm256_madd_epi16(s16, _mm256_set1_epi16(1)); }

// Sum of 32 signed bytes.
inline int32_t sum_bytes(const int8_t* q) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
  return hsum8_epi32(widen16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), v)));
}

// 8 int32 vectors -> one vector whose lane i is the sum of v[i]'s lanes.
inline __m256i reduce8(const __m256i* v) {
  __m256i t[4];
  BITNET_UNROLL
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm256_add_epi32(_mm256_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                            _mm256_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
  }
  const __m256i u0 =
      _mm256_add_epi32(_mm256_unpacklo_epi64(t[0], t[1]), _mm256_unpackhi_epi64(t[0], t[1]));
  const __m256i u1 =
      _mm256_add_epi32(_mm256_unpacklo_epi64(t[2], t[3]), _mm256_unpackhi_epi64(t[2], t[3]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20),
                          _mm256_permute2x128_si256(u0, u1, 0x31));
}

template <int N, class Fn>
inline void tile_rows(int64_t first, int64_t n, const Fn& row, const uint8_t* (&out)[N]) {
  BITNET_UNROLL
  for (int i = 0; i < N; ++i) out[i] = row(first + (i < n ? i : n - 1));
}

using avx2::load32;

// ------------------------------------------------------------------ I2_S

// The 4 code vectors of one 128-block (32 bytes): group g = (byte >> 2(3-g)) & 3.
inline void i2s_decode(const uint8_t* p, __m256i* c) {
  const __m256i m3 = _mm256_set1_epi8(3);
  const __m256i v = load32(p);
  c[0] = _mm256_and_si256(_mm256_srli_epi16(v, 6), m3);
  c[1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m3);
  c[2] = _mm256_and_si256(_mm256_srli_epi16(v, 2), m3);
  c[3] = _mm256_and_si256(v, m3);
}

// sum_g c[g] . q[32 g ..] as 8 int32 lanes.
inline __m256i dot128(const __m256i* c, const int8_t* q) {
  const __m256i s = _mm256_add_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(c[0], load32(q)),
                                                      _mm256_maddubs_epi16(c[1], load32(q + 32))),
                                     _mm256_add_epi16(_mm256_maddubs_epi16(c[2], load32(q + 64)),
                                                      _mm256_maddubs_epi16(c[3], load32(q + 96))));
  return widen16(s);
}

template <int NA, int NW>
inline void i2s_tile(const uint8_t* const* w, int64_t k, const int8_t* const* q, int32_t* out) {
  __m256i acc[NA][NW];
  BITNET_UNROLL
  for (int a = 0; a < NA; ++a) BITNET_UNROLL
  for (int r = 0; r < NW; ++r) acc[a][r] = _mm256_setzero_si256();
  for (int64_t b = 0; b < k / 128; ++b) {
    BITNET_UNROLL
    for (int r = 0; r < NW; ++r) {
      __m256i c[4];
      if (b % 2 == 0) prefetch_ahead(w[r] + 32 * b);
      i2s_decode(w[r] + 32 * b, c);
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a)
        acc[a][r] = _mm256_add_epi32(acc[a][r], dot128(c, q[a] + 128 * b));
    }
  }
  BITNET_UNROLL
  for (int a = 0; a < NA; ++a) BITNET_UNROLL
  for (int r = 0; r < NW; ++r) out[a * NW + r] = hsum8_epi32(acc[a][r]);
}

void i2s_matmul(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
                int64_t o_end) {
  const int64_t k = w.k, m = a.rows;
  int32_t* sums =
      static_cast<int32_t*>(detail::scratch(1, static_cast<size_t>(m) * sizeof(int32_t)));
  for (int64_t r = 0; r < m; ++r) {
    int32_t s = 0;
    for (int64_t i = 0; i < k; i += 32) s += sum_bytes(a.row(r) + i);
    sums[r] = s;
  }
  const float wscale = w.tensor_scale;
  auto row = [&](int64_t o) { return w.row(o); };
  auto run = [&]<int NA, int NW>(int64_t r0) {
    for (int64_t o = o_begin; o < o_end; o += NW) {
      const int64_t nw = o_end - o < NW ? o_end - o : NW;
      const uint8_t* wr[NW];
      tile_rows<NW>(o, nw, row, wr);
      const int8_t* qr[NA];
      BITNET_UNROLL
      for (int i = 0; i < NA; ++i) qr[i] = a.row(r0 + i);
      int32_t cq[NA * NW];
      i2s_tile<NA, NW>(wr, k, qr, cq);
      BITNET_UNROLL
      for (int i = 0; i < NA; ++i) {
        for (int64_t j = 0; j < nw; ++j) {
          const int32_t acc = cq[i * NW + j] - sums[r0 + i];
          y[(r0 + i) * w.n_out + o + j] = (static_cast<float>(acc) / a.scales[r0 + i]) * wscale;
        }
      }
    }
  };
  int64_t r = 0;
  for (; r + 4 <= m; r += 4) run.template operator()<4, 2>(r);
  for (; r < m; ++r) run.template operator()<1, 4>(r);
}

// ------------------------------------------------------------------ TQ2_0 / TQ1_0

// TQ2_0: per 128-half h, 32 bytes; group g = (byte >> 2g) & 3 lines up with q[128h + 32g ..].
struct Tq2Format {
  static constexpr int kVecBytes = 0;  // activations used in place
  static constexpr int kBlockBytes = 66;
  static constexpr int kDOffset = 64;
  static void prep(const int8_t*, int8_t*) {}
  // Block dot product for one weight row against NA activation blocks -> int32 vectors.
  template <int NA>
  static inline void dot(const uint8_t* blk, const int8_t* const* act, __m256i* out) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i s[NA];
    BITNET_UNROLL
    for (int a = 0; a < NA; ++a) s[a] = _mm256_setzero_si256();
    BITNET_UNROLL
    for (int h = 0; h < 2; ++h) {
      const __m256i v = load32(blk + 32 * h);
      const __m256i c[4] = {_mm256_and_si256(v, m3), _mm256_and_si256(_mm256_srli_epi16(v, 2), m3),
                            _mm256_and_si256(_mm256_srli_epi16(v, 4), m3),
                            _mm256_and_si256(_mm256_srli_epi16(v, 6), m3)};
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a) {
        const int8_t* q = act[a] + 128 * h;
        BITNET_UNROLL
        for (int g = 0; g < 4; ++g)
          s[a] = _mm256_add_epi16(s[a], _mm256_maddubs_epi16(c[g], load32(q + 32 * g)));
      }
    }
    BITNET_UNROLL
    for (int a = 0; a < NA; ++a) out[a] = widen16(s[a]);
  }
};

// TQ1_0: part A = qs[0..32) (trit t of byte j is weight j + 32 t: q[32 t ..] in place), part B =
// qs[32..48) + qh[0..4) loaded as 5 dwords (trit t: q[160 + 16 t + j] in lanes 0-15,
// q[240 + 4 t + j] in lanes 16-19 for t < 4, zero elsewhere: prepared, 5 x 32 bytes per block).
// Trit = floor(3 (b 3^t mod 256) / 256) = min(v -sat 85, 1) + min(v -sat 170, 1).
struct Tq1Format {
  static constexpr int kVecBytes = 160;
  static constexpr int kBlockBytes = 54;
  static constexpr int kDOffset = 52;
  static void prep(const int8_t* q, int8_t* out) {
    BITNET_UNROLL
    for (int t = 0; t < 5; ++t) {
      int8_t* o = out + 32 * t;
      std::memcpy(o, q + 160 + 16 * t, 16);
      BITNET_UNROLL
      for (int j = 0; j < 16; ++j) o[16 + j] = (j < 4 && t < 4) ? q[240 + 4 * t + j] : int8_t{0};
    }
  }
  static inline __m256i trit(__m256i v) {
    const __m256i one = _mm256_set1_epi8(1);
    return _mm256_add_epi8(
        _mm256_min_epu8(_mm256_subs_epu8(v, _mm256_set1_epi8(85)), one),
        _mm256_min_epu8(_mm256_subs_epu8(v, _mm256_set1_epi8(static_cast<char>(170))), one));
  }
  // act[a]: the block's 256 codes; prepared[a]: its part-B vectors.
  template <int NA>
  static inline void dot(const uint8_t* blk, const int8_t* const* act,
                         const int8_t* const* prepared, __m256i* out) {
    __m256i s[NA];
    BITNET_UNROLL
    for (int a = 0; a < NA; ++a) s[a] = _mm256_setzero_si256();
    __m256i va = load32(blk);
    __m256i vb = _mm256_maskload_epi32(reinterpret_cast<const int*>(blk + 32),
                                       _mm256_setr_epi32(-1, -1, -1, -1, -1, 0, 0, 0));
    BITNET_UNROLL
    for (int t = 0; t < 5; ++t) {
      if (t > 0) {
        va = _mm256_add_epi8(va, _mm256_add_epi8(va, va));
        vb = _mm256_add_epi8(vb, _mm256_add_epi8(vb, vb));
      }
      const __m256i ca = trit(va), cb = trit(vb);
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a) {
        s[a] = _mm256_add_epi16(s[a], _mm256_maddubs_epi16(ca, load32(act[a] + 32 * t)));
        s[a] = _mm256_add_epi16(s[a], _mm256_maddubs_epi16(cb, load32(prepared[a] + 32 * t)));
      }
    }
    BITNET_UNROLL
    for (int a = 0; a < NA; ++a) out[a] = widen16(s[a]);
  }
};

struct TqPrepared {
  const int8_t* q;  // a.q: [row][k]
  int64_t k;
  const int8_t* vec;   // [row][block][kVecBytes] (TQ1_0 only)
  const int32_t* sum;  // [row][block]
  const float* d;      // [row][block]
};

template <class F, int NA, int NW>
inline void tq_tile(const uint8_t* const* w, int64_t nb, const TqPrepared& pa, const int64_t* arow,
                    float* out) {
  static_assert(NA * NW <= 8);
  __m256 sumf = _mm256_setzero_ps();
  alignas(32) int32_t woff[8], aoff[8];
  BITNET_UNROLL
  for (int l = 0; l < 8; ++l) {
    const bool used = l < NA * NW;
    woff[l] = static_cast<int32_t>(w[used ? l % NW : 0] - w[0]) + F::kDOffset - 2;
    aoff[l] = static_cast<int32_t>(arow[used ? l / NW : 0] * nb);
  }
  const __m256i vwoff = _mm256_load_si256(reinterpret_cast<const __m256i*>(woff));
  const __m256i vaoff = _mm256_load_si256(reinterpret_cast<const __m256i*>(aoff));
  for (int64_t b = 0; b < nb; ++b) {
    __m256i acc[8];
    BITNET_UNROLL
    for (int l = 0; l < 8; ++l) acc[l] = _mm256_setzero_si256();
    const int8_t* act[NA];
    const int8_t* prepared[NA];
    BITNET_UNROLL
    for (int a = 0; a < NA; ++a) {
      act[a] = pa.q + arow[a] * pa.k + b * 256;
      prepared[a] = pa.vec + (arow[a] * nb + b) * F::kVecBytes;
    }
    BITNET_UNROLL
    for (int r = 0; r < NW; ++r) {
      __m256i d[NA];
      prefetch_ahead(w[r] + b * F::kBlockBytes);
      if constexpr (F::kVecBytes == 0) {
        F::template dot<NA>(w[r] + b * F::kBlockBytes, act, d);
      } else {
        F::template dot<NA>(w[r] + b * F::kBlockBytes, act, prepared, d);
      }
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a) acc[a * NW + r] = d[a];
    }
    __m256i sums;
    __m256 dact;
    if constexpr (NA == 1) {
      sums = _mm256_set1_epi32(pa.sum[arow[0] * nb + b]);
      dact = _mm256_set1_ps(pa.d[arow[0] * nb + b]);
    } else {
      sums = _mm256_i32gather_epi32(pa.sum + b, vaoff, 4);
      dact = _mm256_i32gather_ps(pa.d + b, vaoff, 4);
    }
    const __m256i iv = _mm256_sub_epi32(reduce8(acc), sums);
    const __m256i dbits = _mm256_srli_epi32(
        _mm256_i32gather_epi32(reinterpret_cast<const int*>(w[0] + b * F::kBlockBytes), vwoff, 1),
        16);
    const __m128i h =
        _mm_packus_epi32(_mm256_castsi256_si128(dbits), _mm256_extracti128_si256(dbits, 1));
    const __m256 dw = _mm256_cvtph_ps(h);
    // sum += (float)acc * (d_act * d_w), lane-wise, blocks in order.
    sumf = _mm256_add_ps(sumf, _mm256_mul_ps(_mm256_cvtepi32_ps(iv), _mm256_mul_ps(dact, dw)));
  }
  _mm256_storeu_ps(out, sumf);
}

template <class F>
void tq_matmul(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
               int64_t o_end) {
  const int64_t m = a.rows, nb = w.k / kQ8KBlock;
  int8_t* vec = nullptr;
  if constexpr (F::kVecBytes > 0)
    vec = static_cast<int8_t*>(detail::scratch(0, static_cast<size_t>(m * nb * F::kVecBytes)));
  int32_t* sum =
      static_cast<int32_t*>(detail::scratch(1, static_cast<size_t>(m * nb) * sizeof(int32_t)));
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      const int8_t* q = a.row(r) + b * kQ8KBlock;
      if constexpr (F::kVecBytes > 0) F::prep(q, vec + (r * nb + b) * F::kVecBytes);
      int32_t s = 0;
      BITNET_UNROLL
      for (int j = 0; j < 256; j += 32) s += sum_bytes(q + j);
      sum[r * nb + b] = s;
    }
  }
  const TqPrepared pa{a.q.data(), w.k, vec, sum, a.scales.data()};
  auto row = [&](int64_t o) { return w.row(o); };
  auto run = [&]<int NA, int NW>(int64_t r0) {
    for (int64_t o = o_begin; o < o_end; o += NW) {
      const int64_t nw = o_end - o < NW ? o_end - o : NW;
      const uint8_t* wr[NW];
      tile_rows<NW>(o, nw, row, wr);
      int64_t arow[NA];
      BITNET_UNROLL
      for (int i = 0; i < NA; ++i) arow[i] = r0 + i;
      alignas(32) float out[8];
      tq_tile<F, NA, NW>(wr, nb, pa, arow, out);
      BITNET_UNROLL
      for (int i = 0; i < NA; ++i)
        for (int64_t j = 0; j < nw; ++j) y[(r0 + i) * w.n_out + o + j] = out[i * NW + j];
    }
  };
  int64_t r = 0;
  for (; r + 4 <= m; r += 4) run.template operator()<4, 2>(r);
  if (m - r >= 2) {
    run.template operator()<2, 4>(r);
    r += 2;
  }
  if (r < m) run.template operator()<1, 8>(r);
}

void ternary(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
             int64_t o_end) {
  if (o_begin >= o_end || a.rows == 0) return;
  if (w.k > detail::kMaxSimdK) return matmul_ternary_ref(w, a, y, o_begin, o_end);
  if (w.packed != nullptr && (w.type == TensorType::I2_S || w.type == TensorType::TQ2_0))
    return avx2::packed_ternary(w, a, y, o_begin, o_end);
  switch (w.type) {
    case TensorType::I2_S:
      return i2s_matmul(w, a, y, o_begin, o_end);
    case TensorType::TQ2_0:
      return tq_matmul<Tq2Format>(w, a, y, o_begin, o_end);
    case TensorType::TQ1_0:
      return tq_matmul<Tq1Format>(w, a, y, o_begin, o_end);
    default:
      return matmul_ternary_ref(w, a, y, o_begin, o_end);
  }
}

// ------------------------------------------------------------------ Q8_0 head

// The Q8_0 head (q8_0_head.h), bit-exact with matmul_q8_0_head_ref. A tile block's 64-byte vector
// v is two 32-byte halves (h = 0: rows 0-7, h = 1: rows 8-15), each dword the 4 biased codes
// c = w + 128 (0..255) of one row: VPMADDUBSW takes them as its unsigned operand as they are. Its
// signed operand must keep every pair sum c0 x0 + c1 x1 inside int16 (it saturates, and
// 255 x -128 x 2 does not fit), so each activation code is split exactly into
//   x = 16 xh + xl,  xl = ((x + 8) & 15) - 8 in [-8, 7],  xh = (x - xl) / 16 in [-8, 8]
// (-128 = 16 x -8 + 0, 127 = 16 x 8 - 1): a pair sum is then at most 2 x 255 x 8 = 4080 in
// magnitude and the int16 sums of a block's 8 vectors at most 32640. Per block and half, lane-wise:
//   acc = 16 sum(c xh) + sum(c xl) - 128 sum(x)  (VPMADDWD widens: exactly the reference's int32)
//   sum += (float)acc * (d_w * d_x)              (separate multiply and add, -ffp-contract=off)
// with the blocks in order, so every output is the reference's float, bit for bit.
// Each call (a thread's chunk of 64 rows, matmul.cpp) first splits its activation rows: 64 bytes
// per block (xl then xh, in code order), each dword broadcast in the loop.

// One activation row: per block, 32 bytes of xl and 32 of xh, and 128 times the sum of its codes.
void q8_0_split(const int8_t* q, int64_t nb, int8_t* split, int32_t* bias) {
  const __m256i m15 = _mm256_set1_epi8(15), m8 = _mm256_set1_epi8(8);
  auto* out = reinterpret_cast<__m256i*>(split);
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i x = load32(q + b * kQ8_0Block);
    // xl = (x & 15) - 16 [x & 8]; xh = floor(x / 16) + [x & 8], floor(x / 16) being the high
    // nibble read as a 4-bit two's complement number.
    const __m256i xl = _mm256_sub_epi8(_mm256_xor_si256(_mm256_and_si256(x, m15), m8), m8);
    const __m256i fl =
        _mm256_sub_epi8(_mm256_xor_si256(_mm256_and_si256(_mm256_srli_epi16(x, 4), m15), m8), m8);
    const __m256i xh = _mm256_sub_epi8(fl, _mm256_cmpeq_epi8(_mm256_and_si256(x, m8), m8));
    _mm256_store_si256(out + 2 * b, xl);
    _mm256_store_si256(out + 2 * b + 1, xh);
    bias[b] = 128 * sum_bytes(q + b * kQ8_0Block);
  }
}

// NT tiles x NA activation rows into out[(a * NT + t) * 16 + lane]. Each weight vector is loaded
// once for all NA rows; two tiles (decode) keep two weight streams and more chains in flight. The
// float sums live in out (updated once per block and half), so the NA x NT x 2 int16 sums (at
// most 8) stay in registers.
template <int NT, int NA>
inline void q8_0_tiles(const WeightMatrix& w, const int64_t* tiles, const avx2::Q8Rows& ar,
                       float* out) {
  const int64_t nb = w.k / kQ8_0Block;
  const __m256i ones = _mm256_set1_epi16(1), sixteen = _mm256_set1_epi16(16);
  const uint8_t* codes[NT];
  const uint16_t* scales[NT];
  BITNET_UNROLL
  for (int t = 0; t < NT; ++t) {
    codes[t] = q8_0_codes(w, tiles[t]);
    scales[t] = q8_0_scales(w, tiles[t]);
  }
  BITNET_UNROLL
  for (int i = 0; i < NA * NT * 16; i += 8) _mm256_storeu_ps(out + i, _mm256_setzero_ps());
  for (int64_t b = 0; b < nb; ++b) {
    BITNET_UNROLL
    for (int h = 0; h < 2; ++h) {
      __m256i sl[NA][NT], sh[NA][NT];
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a) BITNET_UNROLL
      for (int t = 0; t < NT; ++t) sl[a][t] = sh[a][t] = _mm256_setzero_si256();
      // Not unrolled: unrolled, GCC reorders the int16 adds and spills the sums (1.5-2x slower).
      _Pragma("GCC unroll 1") for (int v = 0; v < 8; ++v) {
        __m256i c[NT];
        BITNET_UNROLL
        for (int t = 0; t < NT; ++t) {
          const uint8_t* p = codes[t] + b * kQ8_0TileBlockBytes + 64 * v;
          if (h == 0) prefetch_ahead(p);
          c[t] = load32(p + 32 * h);
        }
        BITNET_UNROLL
        for (int a = 0; a < NA; ++a) {
          const int8_t* x = ar.x[a] + 64 * b + 4 * v;
          const __m256i xl = _mm256_broadcastd_epi32(_mm_loadu_si32(x));
          const __m256i xh = _mm256_broadcastd_epi32(_mm_loadu_si32(x + 32));
          BITNET_UNROLL
          for (int t = 0; t < NT; ++t) {
            sl[a][t] = _mm256_add_epi16(sl[a][t], _mm256_maddubs_epi16(c[t], xl));
            sh[a][t] = _mm256_add_epi16(sh[a][t], _mm256_maddubs_epi16(c[t], xh));
          }
        }
      }
      __m256 dw[NT];
      BITNET_UNROLL
      for (int t = 0; t < NT; ++t) {
        dw[t] = _mm256_cvtph_ps(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales[t] + 16 * b + 8 * h)));
      }
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a) {
        const __m256i bias = _mm256_set1_epi32(ar.bias[a][b]);
        const __m256 dx = _mm256_set1_ps(ar.d[a][b]);
        BITNET_UNROLL
        for (int t = 0; t < NT; ++t) {
          const __m256i acc =
              _mm256_sub_epi32(_mm256_add_epi32(_mm256_madd_epi16(sh[a][t], sixteen),
                                                _mm256_madd_epi16(sl[a][t], ones)),
                               bias);
          float* sum = out + (a * NT + t) * 16 + 8 * h;
          _mm256_storeu_ps(
              sum, _mm256_add_ps(_mm256_loadu_ps(sum),
                                 _mm256_mul_ps(_mm256_cvtepi32_ps(acc), _mm256_mul_ps(dw[t], dx))));
        }
      }
    }
  }
}

struct Q8Kernels {
  static constexpr int64_t kPreparedBytes = 64;  // xl and xh of a block
  static void prepare(const int8_t* q, int64_t nb, int8_t* split, int32_t* bias) {
    q8_0_split(q, nb, split, bias);
  }
  template <int NT, int NA>
  static void tiles(const WeightMatrix& w, const int64_t* ts, const avx2::Q8Rows& ar, float* out) {
    q8_0_tiles<NT, NA>(w, ts, ar, out);
  }
};

void q8_0_head(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
               int64_t o_end) {
  avx2::drive_q8_0_head<Q8Kernels>(w, a, y, o_begin, o_end);
}

// ------------------------------------------------------------------ float weights

template <TensorType T>
inline __m256 load_w8(const uint8_t* p) {
  if constexpr (T == TensorType::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  } else if constexpr (T == TensorType::F16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else {
    return _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
  }
}

// In: r[j] = 8 elements of row j. Out: r[i] = element i of rows 0..7 (lane = row).
inline void transpose8(__m256* r) {
  __m256 t[8], u[8];
  BITNET_UNROLL
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  BITNET_UNROLL
  for (int q = 0; q < 2; ++q) {  // u[4q + e], half c: element 4c + e of rows 4q..4q+3
    u[4 * q + 0] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * q + 1] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * q + 2] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * q + 3] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  BITNET_UNROLL
  for (int e = 0; e < 4; ++e) {
    r[e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x20);
    r[4 + e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x31);
  }
}

// G groups of 8 output rows (one per lane) x NA activation rows, each lane summing its float
// products in the reference's order for FloatSums S, from transposed 8 x 8 weight blocks (see
// avx512_kernels.cpp, float_tile). Lanes 0-3 and 4-7 sum in two 4-lane double vectors; kBlocks
// first adds the products of each block of kFloatSumBlock elements in a float vector.
template <TensorType T, FloatSums S, int NA, int G>
inline void float_tile(const uint8_t* const* w, const float* const* x, int64_t k, float* out) {
  constexpr int64_t kEs = T == TensorType::F32 ? 4 : 2;
  __m256d lo[NA][G], hi[NA][G];
  __m256 sf[NA][G];  // kBlocks: the current block's float sums
  BITNET_UNROLL
  for (int a = 0; a < NA; ++a) BITNET_UNROLL
  for (int g = 0; g < G; ++g) {
    lo[a][g] = hi[a][g] = _mm256_setzero_pd();
    sf[a][g] = _mm256_setzero_ps();
  }
  auto block = [&](int64_t i, int n) {
    BITNET_UNROLL
    for (int g = 0; g < G; ++g) {
      __m256 r[8];
      BITNET_UNROLL
      for (int j = 0; j < 8; ++j) {
        const uint8_t* p = w[8 * g + j] + i * kEs;
        if ((i * kEs) % 64 == 0) prefetch_ahead(p);
        if (n == 8) {
          r[j] = load_w8<T>(p);
        } else {  // zero-padded tail (the padding never reaches a sum: e < n below)
          alignas(32) uint8_t tw[32] = {};
          std::memcpy(tw, p, static_cast<size_t>(n) * kEs);
          r[j] = load_w8<T>(tw);
        }
      }
      transpose8(r);
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a) {
        __m256d sl = lo[a][g], sh = hi[a][g];
        __m256 s = sf[a][g];
        auto widen_add = [&](__m256 p) {
          sl = _mm256_add_pd(sl, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
          sh = _mm256_add_pd(sh, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
        };
        BITNET_UNROLL
        for (int e = 0; e < 8; ++e) {
          if (e < n) {
            const __m256 p = _mm256_mul_ps(r[e], _mm256_set1_ps(x[a][i + e]));
            if constexpr (S == FloatSums::kBlocks) {
              s = _mm256_add_ps(s, p);
            } else {
              widen_add(p);
            }
          }
        }
        if constexpr (S == FloatSums::kBlocks) {
          if ((i + n) % kFloatSumBlock == 0 || i + n == k) {
            widen_add(s);
            s = _mm256_setzero_ps();
          }
          sf[a][g] = s;
        }
        lo[a][g] = sl;
        hi[a][g] = sh;
      }
    }
  };
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) block(i, 8);
  if (i < k) block(i, static_cast<int>(k - i));
  BITNET_UNROLL
  for (int a = 0; a < NA; ++a) {
    BITNET_UNROLL
    for (int g = 0; g < G; ++g) {
      _mm_storeu_ps(out + (a * G + g) * 8, _mm256_cvtpd_ps(lo[a][g]));
      _mm_storeu_ps(out + (a * G + g) * 8 + 4, _mm256_cvtpd_ps(hi[a][g]));
    }
  }
}

template <TensorType T, FloatSums S>
void float_matmul(const WeightMatrix& w, const float* x, int64_t rows, float* y, int64_t o_begin,
                  int64_t o_end) {
  auto row = [&](int64_t o) { return w.row(o); };
  auto run = [&]<int NA, int G>(int64_t r0) {
    constexpr int kRows = 8 * G;
    for (int64_t o = o_begin; o < o_end; o += kRows) {
      const int64_t nw = o_end - o < kRows ? o_end - o : kRows;
      const uint8_t* wr[kRows];
      tile_rows<kRows>(o, nw, row, wr);
      const float* xr[NA];
      BITNET_UNROLL
      for (int i = 0; i < NA; ++i) xr[i] = x + (r0 + i) * w.k;
      alignas(32) float out[NA * kRows];
      float_tile<T, S, NA, G>(wr, xr, w.k, out);
      BITNET_UNROLL
      for (int i = 0; i < NA; ++i)
        for (int64_t j = 0; j < nw; ++j) y[(r0 + i) * w.n_out + o + j] = out[i * kRows + j];
    }
  };
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) run.template operator()<4, 1>(r);
  for (; r < rows; ++r) run.template operator()<1, 2>(r);
}

template <FloatSums S>
void float_matmul(const WeightMatrix& w, const float* x, int64_t rows, float* y, int64_t o_begin,
                  int64_t o_end) {
  switch (w.type) {
    case TensorType::F32:
      return float_matmul<TensorType::F32, S>(w, x, rows, y, o_begin, o_end);
    case TensorType::F16:
      return float_matmul<TensorType::F16, S>(w, x, rows, y, o_begin, o_end);
    case TensorType::BF16:
      return float_matmul<TensorType::BF16, S>(w, x, rows, y, o_begin, o_end);
    default:
      return matmul_float_ref(w, x, rows, y, o_begin, o_end);
  }
}

void flt(const WeightMatrix& w, const float* x, int64_t rows, float* y, int64_t o_begin,
         int64_t o_end) {
  if (o_begin >= o_end || rows == 0) return;
  if (w.float_sums == FloatSums::kBlocks) {
    return float_matmul<FloatSums::kBlocks>(w, x, rows, y, o_begin, o_end);
  }
  return float_matmul<FloatSums::kDouble>(w, x, rows, y, o_begin, o_end);
}

// F16C's conversion is core/fp16.h's, bit for bit (round to nearest even, NaN payloads kept).
void to_f16_row(const float* x, int64_t n, uint16_t* y) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

// RMSNorm: the squares summed in 16 double lanes, then mean_square_from_sum (elementwise.h).
void rms_norm_avx2(const float* x, const float* w, int64_t n, float eps, float* y) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
    const __m256 s0 = _mm256_mul_ps(v0, v0), s1 = _mm256_mul_ps(v1, v1);
    a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(s0)));
    a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(s0, 1)));
    a2 = _mm256_add_pd(a2, _mm256_cvtps_pd(_mm256_castps256_ps128(s1)));
    a3 = _mm256_add_pd(a3, _mm256_cvtps_pd(_mm256_extractf128_ps(s1, 1)));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
  double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float scale = 1.0f / std::sqrt(mean_square_from_sum(sum, x, n) + eps);
  const __m256 vs = _mm256_set1_ps(scale);
  for (i = 0; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(
        y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(w + i)));
  }
  for (; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}

// MAXPS returns its second operand unless the first is greater: exactly x > 0 ? x : 0.
void relu_sqr_mul_avx2(int64_t n, float* y, const float* x, const float* g) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 r = _mm256_max_ps(_mm256_loadu_ps(x + i), _mm256_setzero_ps());
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(r, r), _mm256_loadu_ps(g + i)));
  }
  relu_sqr_mul_ref(n - i, y + i, x + i, g + i);
}

void round_to_f16_avx2(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) x[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
}

// dot_peak.h's loops for the two 256-bit variants: iters rounds of 16 independent INSN on
// registers (ymm14 x ymm15 into ymm0-13, then ymm0-1 again), 32 products each. Written as
// assembly, so this baseline AVX2 unit needs no -mavxvnni for VPDPBUSD; that loop runs only where
// dispatch found AVX-VNNI.
#define BITNET_YMM_DOT_LOOP(INIT, INSN)                                                        \
  const int64_t n = iters;                                                                     \
  asm volatile(INIT " %%ymm14, %%ymm14, %%ymm14\n" INIT                                        \
                    " %%ymm15, %%ymm15, %%ymm15\n"                                             \
                    "1:\n"                                                                     \
                    ".irp r,0,1,2,3,4,5,6,7,8,9,10,11,12,13\n" INSN                            \
                    " %%ymm15, %%ymm14, %%ymm\\r\n"                                            \
                    ".endr\n" INSN " %%ymm15, %%ymm14, %%ymm0\n" INSN                          \
                    " %%ymm15, %%ymm14, %%ymm1\n"                                              \
                    "dec %0\n"                                                                 \
                    "jnz 1b\n"                                                                 \
               : "+r"(iters)                                                                   \
               :                                                                               \
               : "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", \
                 "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");                \
  return n * 16 * 32

// AVX2's int8 multiply-add: VPMADDUBSW adds its products in pairs to int16 (the kernels then
// widen them, which this peak does not count).
int64_t dot_loop(int64_t iters) { BITNET_YMM_DOT_LOOP("vpcmpeqb", "vpmaddubsw"); }
// AVX-VNNI's: VPDPBUSD adds them into int32 lanes, all the kernels need.
int64_t dot_loop_vnni(int64_t iters) { BITNET_YMM_DOT_LOOP("vpxor", "%{vex%} vpdpbusd"); }
#undef BITNET_YMM_DOT_LOOP

// The avx2-vnni table's ternary entry: the packed layouts through VPDPBUSD, anything else (the
// file layout, TQ1_0) as the AVX2 variant runs it.
void ternary_vnni(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
                  int64_t o_end) {
  if (o_begin >= o_end || a.rows == 0) return;
  if (w.k <= detail::kMaxSimdK && w.packed != nullptr &&
      (w.type == TensorType::I2_S || w.type == TensorType::TQ2_0))
    return avx2vnni::packed_ternary(w, a, y, o_begin, o_end);
  ternary(w, a, y, o_begin, o_end);
}

}  // namespace

const KernelTable* avx2_table() {
  static const KernelTable t{Variant::kAvx2,
                             quantize,
                             ternary,
                             flt,
                             q8_0_head,
                             avx2::attention_scores,
                             avx2::attention_values,
                             avx2::attention_scores_group,
                             avx2::attention_values_group,
                             avx2::swiglu,
                             relu_sqr_mul_avx2,
                             to_f16_row,
                             rms_norm_avx2,
                             round_to_f16_avx2,
                             avx2::softmax_probs,
                             dot_loop,
                             "VPMADDUBSW ymm"};
  return &t;
}

// The AVX2 table with the entries AVX-VNNI speeds up.
const KernelTable* avx2_vnni_table() {
  static const KernelTable t = [] {
    KernelTable v = *avx2_table();
    v.variant = Variant::kAvx2Vnni;
    v.ternary = ternary_vnni;
    v.q8_0_head = avx2vnni::q8_0_head;
    v.dot_loop = dot_loop_vnni;
    v.dot_instruction = "VPDPBUSD ymm";
    return v;
  }();
  return &t;
}

}  // namespace bitnet::kernels
