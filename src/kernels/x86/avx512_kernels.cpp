// AVX-512 (F, BW, VL, VNNI) kernels. Compiled with their own flags (src/kernels/CMakeLists.txt)
// and chosen at run time (dispatch.cpp); everything here has internal linkage, and no standard
// library templates are instantiated (see kernel_support.h).
//
// Ternary kernels are bit-exact with ref/matmul_ref.cpp: all products are summed exactly in
// int32, and the only float operations are the reference's own, in its order.
//
// Weight codes c in {0, 1, 2} (3 is never written; readers treat it as +2) stand for c - 1, so
//   sum_i (c_i - 1) q_i = sum_i c_i q_i - sum_i q_i.
// VPDPBUSD multiplies unsigned bytes (the codes) by signed bytes (the activations) and adds four
// products into an int32 lane with no intermediate saturation; sum_i q_i is computed once per
// activation row (I2_S) or per row and 256-block (TQ*), from the codes themselves (not bsums).
//
// Overflow bounds (k = row length, |q| <= 128):
//  - I2_S GEMV keeps each 2-bit group in place (byte & 0xC0 etc., i.e. c * 4^g <= 192) to save the
//    shifts; a lane gains at most 4 * 192 * 128 = 98304 per 256 elements, i.e. 384 per element:
//    |lane| <= 384 k < 2^31 for k <= 2^22 (kMaxSimdK; longer rows use the scalar reference).
//  - Everything else uses codes <= 3: |lane| <= 3 * 128 * k / 16, far inside int32.
//  - Final sums: |sum c q| + |sum q| <= 512 k < 2^31.
//
// Layouts. I2_S: byte j of a 128-block holds elements j, j+32, j+64, j+96 in bits 7-6, 5-4, 3-2,
// 1-0, so one 64-byte load covers two blocks and (byte >> 2(3-g)) & 3 gives group g of both. The
// activation row is permuted once per kernel call (one range of output rows) so that group g of
// both blocks is one 64-byte vector:
//   P[256 p + 64 g + 32 h + j] = q[256 p + 128 h + 32 g + j]        (h = block within the pair)
// TQ2_0 uses the same grouping per 128-half (low bits first), so the same permutation per
// 256-block. TQ1_0 (5 trits per byte, three runs of bytes) gets 5 vectors per block; see
// Tq1Format. Blocks of TQ weights are summed in int32, reduced 16 at a time (16 accumulators ->
// one vector whose lane i is the sum of accumulator i), converted and scaled lane-wise, and
// added lane-wise in block order: each lane is one (activation row, output row) pair, so the
// float sum is the reference's sequential one.
//
// Float kernels (F16 / BF16 / F32 weights, f32 activations) are bit-exact with the scalar
// reference as well: lanes hold 16 output rows, each adding its float products in double,
// sequentially in the reference's order, from 16 x 16 weight blocks transposed in registers
// (see float_tile).
//
// Weight streams get a software prefetch 4 KiB ahead (prefetch_ahead).
#include <cstdint>
#include <cstring>

#include "kernels/kernel_support.h"
#include "kernels/kernel_table.h"
#include "kernels/x86/avx512_units.h"
#include "kernels/x86/intrinsics_prelude.h"

namespace bitnet::kernels {

bool avx512::has_vbmi() {
  static const bool vbmi = __builtin_cpu_supports("avx512vbmi");
  return vbmi;
}

namespace {

using avx512::lanes_below;
using gguf::TensorType;

// acc + (4 products of unsigned u8 bytes and signed s8 bytes per int32 lane), no saturation.
// Inline asm instead of _mm512_dpbusd_epi32: GCC 12 fails to coalesce the builtin's tied
// accumulator in loops and copies every accumulator in and out each iteration (twice as many
// instructions in the GEMV loop); a "+v" operand does not have that problem.
inline __m512i dpbusd(__m512i acc, __m512i u8, __m512i s8) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "vm"(s8));
  return acc;
}

// Weights stream from DRAM once per token; the hardware prefetchers alone leave a GEMV at about
// half the read bandwidth. Touching the line 4 KiB ahead of each weight row's read position
// (measured on Sapphire Rapids: 2 to 16 KiB all help, 4 KiB best) roughly doubles it. A prefetch
// never faults, so running past the end of the matrix is harmless.
constexpr int64_t kPrefetchBytes = 4096;
inline void prefetch_ahead(const uint8_t* p) {
  _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes), _MM_HINT_T0);
}

// ------------------------------------------------------------------ activation quantization

// Per-token int8 (bitnet.cpp). NaN is skipped by the max exactly as std::max(m, NaN) skips it
// (MAXPS returns its second operand when one is NaN), and reaches the int8 cast as NaN, which the
// reference's cvttss2si turns into INT_MIN, i.e. a byte of 0; VPMOVDB truncates the same way.
float quantize_row_per_token(const float* x, int64_t k, int8_t* q) {
  __m512 vmax = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) vmax = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i)), vmax);
  if (i < k) {
    const __m512 v = _mm512_maskz_loadu_ps(lanes_below(k - i), x + i);
    vmax = _mm512_max_ps(_mm512_abs_ps(v), vmax);
  }
  double m = static_cast<double>(_mm512_reduce_max_ps(vmax));
  if (m < 1e-5) m = 1e-5;
  const float s = static_cast<float>(127.0 / m);
  const __m512 vs = _mm512_set1_ps(s);
  const __m512 hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-128.0f);
  auto quant16 = [&](__m512 v) {
    __m512 r =
        _mm512_roundscale_ps(_mm512_mul_ps(v, vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_max_ps(lo, _mm512_min_ps(hi, r));  // NaN stays NaN (second operand)
    return _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(r));
  };
  for (i = 0; i + 16 <= k; i += 16) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), quant16(_mm512_loadu_ps(x + i)));
  }
  if (i < k) {
    const __mmask16 m16 = lanes_below(k - i);
    _mm_mask_storeu_epi8(q + i, m16, quant16(_mm512_maskz_loadu_ps(m16, x + i)));
  }
  return s;
}

inline __m512i reduce16(const __m512i* v);  // below, with the other shared pieces

// Q8_K (llama.cpp's quantize_row_q8_K_ref), one 256-block. ggml's scalar loop keeps the first
// element reaching the largest |x| (strict >, NaN never wins); here: the lane max, then the
// first index equal to it. Codes go through (int) of the rounded product as the reference does
// (NaN or infinity -> INT_MIN -> min(127, .) -> low byte 0).
void quantize_block_q8k(const float* x, int8_t* q, float* d, int16_t* bsums) {
  __m512 vmax = _mm512_setzero_ps();
  BITNET_UNROLL
  for (int j = 0; j < 256; j += 16)
    vmax = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + j)), vmax);
  const float amax = _mm512_reduce_max_ps(vmax);
  if (amax == 0.0f) {
    *d = 0.0f;
    BITNET_UNROLL
    for (int j = 0; j < 256; j += 64) _mm512_storeu_si512(q + j, _mm512_setzero_si512());
    BITNET_UNROLL
    for (int g = 0; g < 16; ++g) bsums[g] = 0;
    return;
  }
  float max = 0.0f;
  const __m512 va = _mm512_set1_ps(amax);
  BITNET_UNROLL
  for (int j = 0; j < 256; j += 16) {
    const __mmask16 eq = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + j)), va, _CMP_EQ_OQ);
    if (eq != 0) {
      max = x[j + __builtin_ctz(eq)];
      break;
    }
  }
  const float iscale = -127.0f / max;
  const __m512 vs = _mm512_set1_ps(iscale);
  const __m512i c127 = _mm512_set1_epi32(127);
  __m512i b[16];
  BITNET_UNROLL
  for (int g = 0; g < 16; ++g) {
    const __m512 p = _mm512_mul_ps(vs, _mm512_loadu_ps(x + 16 * g));
    __m512i v =
        _mm512_cvttps_epi32(_mm512_roundscale_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    v = _mm512_min_epi32(v, c127);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16 * g), _mm512_cvtepi32_epi8(v));
    // The stored bytes, sign-extended back (the reference sums the int8 codes).
    b[g] = _mm512_srai_epi32(_mm512_slli_epi32(v, 24), 24);
  }
  // The 16 sums at once (each fits int16: at most 16 * 128).
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(bsums), _mm512_cvtepi32_epi16(reduce16(b)));
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

// 16 int32 vectors -> one vector whose lane i is the sum of the 16 lanes of v[i].
inline __m512i reduce16(const __m512i* v) {
  __m512i t[8], u[4];
  BITNET_UNROLL
  for (int i = 0; i < 8; ++i) {
    t[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                            _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
  }
  BITNET_UNROLL
  for (int i = 0; i < 4; ++i) {  // 128-bit chunk c of u[i]: partial sums of v[4i..4i+3]
    u[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(t[2 * i], t[2 * i + 1]),
                            _mm512_unpackhi_epi64(t[2 * i], t[2 * i + 1]));
  }
  const __m512i x0 = _mm512_add_epi32(_mm512_shuffle_i32x4(u[0], u[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                      _mm512_shuffle_i32x4(u[0], u[1], _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512i x1 = _mm512_add_epi32(_mm512_shuffle_i32x4(u[2], u[3], _MM_SHUFFLE(1, 0, 1, 0)),
                                      _mm512_shuffle_i32x4(u[2], u[3], _MM_SHUFFLE(3, 2, 3, 2)));
  return _mm512_add_epi32(_mm512_shuffle_i32x4(x0, x1, _MM_SHUFFLE(2, 0, 2, 0)),
                          _mm512_shuffle_i32x4(x0, x1, _MM_SHUFFLE(3, 1, 3, 1)));
}

inline int32_t sum_bytes(__m512i v) {
  return _mm512_reduce_add_epi32(dpbusd(_mm512_setzero_si512(), _mm512_set1_epi8(1), v));
}

// Pointers to `n` rows starting at `first`, the last one repeated to fill a tile of N (the
// repeated rows are computed and dropped; this keeps every tile the same straight-line code).
template <int N, class Fn>
inline void tile_rows(int64_t first, int64_t n, const Fn& row, const uint8_t* (&out)[N]) {
  BITNET_UNROLL
  for (int i = 0; i < N; ++i) out[i] = row(first + (i < n ? i : n - 1));
}

// I2_S and TQ2_0: the pair/block permutation described at the top, for 256 elements at `q`
// (`valid` of them real: 256, or 128 for an I2_S tail block pair whose second block is absent).
inline void permute_256(const int8_t* q, int valid, int8_t* out) {
  BITNET_UNROLL
  for (int g = 0; g < 4; ++g) {
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * g));
    const __m256i hi = valid == 256
                           ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 128 + 32 * g))
                           : _mm256_setzero_si256();
    _mm512_store_si512(out + 64 * g, _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
  }
}

// ------------------------------------------------------------------ I2_S

struct I2sActs {
  const int8_t* p;  // permuted row, npairs * 256 bytes
  int32_t sum;      // sum of the row's codes
  float s;          // the row's scale (127 / max)
};

// GEMV, NW weight rows against one activation row; returns sum_i c_i q_i per row.
template <int NW>
inline void i2s_gemv(const uint8_t* const* w, int64_t k, const int8_t* p, int32_t* out) {
  const int64_t npairs = k / 256;
  const bool tail = (k % 256) != 0;
  const __m512i m0 = _mm512_set1_epi8(static_cast<char>(0xC0)), m1 = _mm512_set1_epi8(0x30);
  const __m512i m2 = _mm512_set1_epi8(0x0C), m3 = _mm512_set1_epi8(0x03);
  __m512i acc[NW][4];
  BITNET_UNROLL
  for (int r = 0; r < NW; ++r) BITNET_UNROLL
  for (int g = 0; g < 4; ++g) acc[r][g] = _mm512_setzero_si512();
  auto step = [&](int64_t pi, const __m512i* wv) {
    const int8_t* pp = p + 256 * pi;
    const __m512i a0 = _mm512_load_si512(pp), a1 = _mm512_load_si512(pp + 64);
    const __m512i a2 = _mm512_load_si512(pp + 128), a3 = _mm512_load_si512(pp + 192);
    BITNET_UNROLL
    for (int r = 0; r < NW; ++r) {
      acc[r][0] = dpbusd(acc[r][0], _mm512_and_si512(wv[r], m0), a0);
      acc[r][1] = dpbusd(acc[r][1], _mm512_and_si512(wv[r], m1), a1);
      acc[r][2] = dpbusd(acc[r][2], _mm512_and_si512(wv[r], m2), a2);
      acc[r][3] = dpbusd(acc[r][3], _mm512_and_si512(wv[r], m3), a3);
    }
  };
  for (int64_t pi = 0; pi < npairs; ++pi) {
    __m512i wv[NW];
    BITNET_UNROLL
    for (int r = 0; r < NW; ++r) {
      wv[r] = _mm512_loadu_si512(w[r] + 64 * pi);
      prefetch_ahead(w[r] + 64 * pi);
    }
    step(pi, wv);
  }
  if (tail) {
    __m512i wv[NW];
    BITNET_UNROLL
    for (int r = 0; r < NW; ++r) wv[r] = _mm512_maskz_loadu_epi8(0xFFFFFFFFull, w[r] + 64 * npairs);
    step(npairs, wv);
  }
  BITNET_UNROLL
  for (int r = 0; r < NW; ++r) {
    const __m512i v = _mm512_add_epi32(
        _mm512_add_epi32(_mm512_srai_epi32(acc[r][0], 6), _mm512_srai_epi32(acc[r][1], 4)),
        _mm512_add_epi32(_mm512_srai_epi32(acc[r][2], 2), acc[r][3]));
    out[r] = _mm512_reduce_add_epi32(v);
  }
}

// GEMM tile: NA activation rows x NW weight rows; codes decoded once per weight row and reused.
template <int NA, int NW>
inline void i2s_gemm(const uint8_t* const* w, int64_t k, const int8_t* const* p, int32_t* out) {
  const int64_t npairs = (k + 255) / 256;
  const bool tail = (k % 256) != 0;
  const __m512i m3 = _mm512_set1_epi8(0x03);
  __m512i acc[NA][NW];
  BITNET_UNROLL
  for (int a = 0; a < NA; ++a) BITNET_UNROLL
  for (int r = 0; r < NW; ++r) acc[a][r] = _mm512_setzero_si512();
  for (int64_t pi = 0; pi < npairs; ++pi) {
    __m512i wv[NW];
    BITNET_UNROLL
    for (int r = 0; r < NW; ++r) {
      wv[r] = (tail && pi == npairs - 1) ? _mm512_maskz_loadu_epi8(0xFFFFFFFFull, w[r] + 64 * pi)
                                         : _mm512_loadu_si512(w[r] + 64 * pi);
    }
    BITNET_UNROLL
    for (int g = 0; g < 4; ++g) {
      __m512i c[NW];
      BITNET_UNROLL
      for (int r = 0; r < NW; ++r) c[r] = _mm512_and_si512(_mm512_srli_epi16(wv[r], 6 - 2 * g), m3);
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a) {
        const __m512i av = _mm512_load_si512(p[a] + 256 * pi + 64 * g);
        BITNET_UNROLL
        for (int r = 0; r < NW; ++r) acc[a][r] = dpbusd(acc[a][r], c[r], av);
      }
    }
  }
  BITNET_UNROLL
  for (int a = 0; a < NA; ++a) BITNET_UNROLL
  for (int r = 0; r < NW; ++r) out[a * NW + r] = _mm512_reduce_add_epi32(acc[a][r]);
}

void i2s_matmul(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
                int64_t o_end) {
  const int64_t k = w.k, m = a.rows;
  const int64_t kp = (k + 255) / 256 * 256;
  int8_t* perm = static_cast<int8_t*>(detail::scratch(0, static_cast<size_t>(m * kp)));
  int32_t* sums =
      static_cast<int32_t*>(detail::scratch(1, static_cast<size_t>(m) * sizeof(int32_t)));
  for (int64_t r = 0; r < m; ++r) {
    const int8_t* q = a.row(r);
    int32_t sum = 0;
    for (int64_t i = 0; i < kp; i += 256) {
      const int valid = k - i >= 256 ? 256 : 128;
      permute_256(q + i, valid, perm + r * kp + i);
      BITNET_UNROLL
      for (int g = 0; g < 4; ++g) sum += sum_bytes(_mm512_load_si512(perm + r * kp + i + 64 * g));
    }
    sums[r] = sum;
  }
  const float wscale = w.tensor_scale;
  auto row = [&](int64_t o) { return w.row(o); };
  auto emit = [&](int64_t r, int64_t o, int32_t cq) {
    const int32_t acc = cq - sums[r];
    y[r * w.n_out + o] = (static_cast<float>(acc) / a.scales[r]) * wscale;
  };
  constexpr int kNW = 4;
  for (int64_t o = o_begin; o < o_end; o += kNW) {
    const int64_t nw = o_end - o < kNW ? o_end - o : kNW;
    const uint8_t* wr[kNW];
    tile_rows<kNW>(o, nw, row, wr);
    int64_t r = 0;
    // Prompts: four activation rows per pass over the decoded weights.
    for (; r + 4 <= m; r += 4) {
      const int8_t* pr[4] = {perm + r * kp, perm + (r + 1) * kp, perm + (r + 2) * kp,
                             perm + (r + 3) * kp};
      int32_t cq[4 * kNW];
      i2s_gemm<4, kNW>(wr, k, pr, cq);
      BITNET_UNROLL
      for (int aa = 0; aa < 4; ++aa)
        for (int64_t j = 0; j < nw; ++j) emit(r + aa, o + j, cq[aa * kNW + j]);
    }
    if (m - r >= 2) {
      const int8_t* pr[2] = {perm + r * kp, perm + (r + 1) * kp};
      int32_t cq[2 * kNW];
      i2s_gemm<2, kNW>(wr, k, pr, cq);
      BITNET_UNROLL
      for (int aa = 0; aa < 2; ++aa)
        for (int64_t j = 0; j < nw; ++j) emit(r + aa, o + j, cq[aa * kNW + j]);
      r += 2;
    }
    if (r < m) {
      int32_t cq[kNW];
      i2s_gemv<kNW>(wr, k, perm + r * kp, cq);
      for (int64_t j = 0; j < nw; ++j) emit(r, o + j, cq[j]);
    }
  }
}

// ------------------------------------------------------------------ TQ2_0 / TQ1_0

// A TQ format for tq_tile: the weight block geometry, how a block's codes become kGroups vectors
// of 64 codes, and the matching arrangement of 256 activations (prep).
struct Tq2Format {
  static constexpr int kGroups = 4;
  static constexpr int kBlockBytes = 66;
  static constexpr int kDOffset = 64;
  // Activation vectors for one block of 256 codes at q -> out[kGroups * 64].
  static void prep(const int8_t* q, int8_t* out) { permute_256(q, 256, out); }
  static inline void decode(const uint8_t* blk, __m512i* c) {
    const __m512i m3 = _mm512_set1_epi8(0x03);
    const __m512i v = _mm512_loadu_si512(blk);
    c[0] = _mm512_and_si512(v, m3);
    c[1] = _mm512_and_si512(_mm512_srli_epi16(v, 2), m3);
    c[2] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m3);
    c[3] = _mm512_and_si512(_mm512_srli_epi16(v, 6), m3);
  }
};

// TQ1_0: one 52-byte load (masked: the block is 54 bytes) puts qs[0..32) in lanes 0-31,
// qs[32..48) in lanes 32-47 and qh[0..4) in lanes 48-51. Trit t of byte b is
// floor(3 * (b * 3^t mod 256) / 256) = [v >= 86] + [v >= 171] with v = b * 3^t mod 256
// (byte multiplies by 3 as x + x + x). Vector t of the activations matches those lanes:
//   lanes 0-31: q[32 t + j], 32-47: q[160 + 16 t + j], 48-51: q[240 + 4 t + j] (t < 4), else 0.
struct Tq1Format {
  static constexpr int kGroups = 5;
  static constexpr int kBlockBytes = 54;
  static constexpr int kDOffset = 52;
  static void prep(const int8_t* q, int8_t* out) {
    BITNET_UNROLL
    for (int t = 0; t < 5; ++t) {
      int8_t* o = out + 64 * t;
      std::memcpy(o, q + 32 * t, 32);
      std::memcpy(o + 32, q + 160 + 16 * t, 16);
      BITNET_UNROLL
      for (int j = 0; j < 16; ++j) o[48 + j] = (j < 4 && t < 4) ? q[240 + 4 * t + j] : int8_t{0};
    }
  }
  static inline void decode(const uint8_t* blk, __m512i* c) {
    const __m512i one = _mm512_set1_epi8(1), two = _mm512_set1_epi8(2);
    const __m512i c86 = _mm512_set1_epi8(86), c171 = _mm512_set1_epi8(static_cast<char>(171));
    __m512i v = _mm512_maskz_loadu_epi8(0x000FFFFFFFFFFFFFull, blk);
    BITNET_UNROLL
    for (int t = 0; t < 5; ++t) {
      if (t > 0) v = _mm512_add_epi8(v, _mm512_add_epi8(v, v));
      const __m512i ge1 = _mm512_maskz_mov_epi8(_mm512_cmpge_epu8_mask(v, c86), one);
      c[t] = _mm512_mask_mov_epi8(ge1, _mm512_cmpge_epu8_mask(v, c171), two);
    }
  }
};

// All activation rows, prepared once per call: per (row, block) the block's vectors (F::prep),
// the sum of its 256 codes and its d_act.
struct TqPrepared {
  const int8_t* vec;   // [row][block][kGroups * 64]
  const int32_t* sum;  // [row][block]
  const float* d;      // [row][block] (a.scales)
};

template <class F, int NA, int NW>
inline void tq_tile(const uint8_t* const* w, int64_t nb, const TqPrepared& pa, const int64_t* arow,
                    float* out) {
  static_assert(NA * NW <= 16);
  constexpr int kVecBytes = F::kGroups * 64;
  __m512 sumf = _mm512_setzero_ps();
  // Gather offsets of each lane's weight row (its d sits at block start + kDOffset; the gather
  // reads the 4 bytes ending there so it never leaves the block).
  alignas(64) int32_t woff[16];
  BITNET_UNROLL
  for (int l = 0; l < 16; ++l) {
    const int r = l < NA * NW ? l % NW : 0;
    woff[l] = static_cast<int32_t>(w[r] - w[0]) + F::kDOffset - 2;
  }
  const __m512i vwoff = _mm512_load_si512(woff);
  // Lane l = a * NW + r reads row a's code sum and d_act of the block ([row][block] arrays).
  alignas(64) int32_t aoff[16];
  BITNET_UNROLL
  for (int l = 0; l < 16; ++l) aoff[l] = static_cast<int32_t>(arow[l < NA * NW ? l / NW : 0] * nb);
  const __m512i vaoff = _mm512_load_si512(aoff);
  for (int64_t b = 0; b < nb; ++b) {
    __m512i acc[16];
    BITNET_UNROLL
    for (int l = 0; l < 16; ++l) acc[l] = _mm512_setzero_si512();
    BITNET_UNROLL
    for (int r = 0; r < NW; ++r) {
      __m512i c[F::kGroups];
      prefetch_ahead(w[r] + b * F::kBlockBytes);
      F::decode(w[r] + b * F::kBlockBytes, c);
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a) {
        const int8_t* av = pa.vec + (arow[a] * nb + b) * kVecBytes;
        __m512i s = acc[a * NW + r];
        BITNET_UNROLL
        for (int g = 0; g < F::kGroups; ++g) s = dpbusd(s, c[g], _mm512_load_si512(av + 64 * g));
        acc[a * NW + r] = s;
      }
    }
    __m512i sums;
    __m512 dact;
    if constexpr (NA == 1) {
      sums = _mm512_set1_epi32(pa.sum[arow[0] * nb + b]);
      dact = _mm512_set1_ps(pa.d[arow[0] * nb + b]);
    } else {
      sums = _mm512_i32gather_epi32(vaoff, pa.sum + b, 4);
      dact = _mm512_i32gather_ps(vaoff, pa.d + b, 4);
    }
    const __m512i iv = _mm512_sub_epi32(reduce16(acc), sums);
    const __m512i dbits =
        _mm512_srli_epi32(_mm512_i32gather_epi32(vwoff, w[0] + b * F::kBlockBytes, 1), 16);
    const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dbits));
    // sum += (float)acc * (d_act * d_w), lane-wise, blocks in order.
    sumf = _mm512_add_ps(sumf, _mm512_mul_ps(_mm512_cvtepi32_ps(iv), _mm512_mul_ps(dact, dw)));
  }
  _mm512_storeu_ps(out, sumf);
}

template <class F>
void tq_matmul(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
               int64_t o_end) {
  constexpr int kVecBytes = F::kGroups * 64;
  const int64_t m = a.rows, nb = w.k / kQ8KBlock;
  int8_t* vec = static_cast<int8_t*>(detail::scratch(0, static_cast<size_t>(m * nb * kVecBytes)));
  int32_t* sum =
      static_cast<int32_t*>(detail::scratch(1, static_cast<size_t>(m * nb) * sizeof(int32_t)));
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      const int8_t* q = a.row(r) + b * kQ8KBlock;
      F::prep(q, vec + (r * nb + b) * kVecBytes);
      int32_t s = 0;
      BITNET_UNROLL
      for (int j = 0; j < 256; j += 64) s += sum_bytes(_mm512_loadu_si512(q + j));
      sum[r * nb + b] = s;
    }
  }
  const TqPrepared pa{vec, sum, a.scales.data()};
  auto row = [&](int64_t o) { return w.row(o); };
  // Decode: 16 output rows per tile; prompts: 4 activation rows x 4 output rows.
  auto run = [&]<int NA, int NW>(int64_t r0, int64_t na) {
    for (int64_t o = o_begin; o < o_end; o += NW) {
      const int64_t nw = o_end - o < NW ? o_end - o : NW;
      const uint8_t* wr[NW];
      tile_rows<NW>(o, nw, row, wr);
      int64_t arow[NA];
      BITNET_UNROLL
      for (int i = 0; i < NA; ++i) arow[i] = r0 + (i < na ? i : na - 1);
      alignas(64) float out[16];
      tq_tile<F, NA, NW>(wr, nb, pa, arow, out);
      for (int64_t i = 0; i < na; ++i)
        for (int64_t j = 0; j < nw; ++j) y[(r0 + i) * w.n_out + o + j] = out[i * NW + j];
    }
  };
  int64_t r = 0;
  for (; r + 4 <= m; r += 4) run.template operator()<4, 4>(r, 4);
  if (m - r >= 2) {
    run.template operator()<2, 8>(r, 2);
    r += 2;
  }
  if (r < m) run.template operator()<1, 16>(r, 1);
}

void ternary(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
             int64_t o_end) {
  if (o_begin >= o_end || a.rows == 0) return;
  if (w.k > detail::kMaxSimdK) return matmul_ternary_ref(w, a, y, o_begin, o_end);
  if (w.packed != nullptr && (w.type == TensorType::I2_S || w.type == TensorType::TQ2_0)) {
    return avx512::has_vbmi() ? avx512::packed_ternary_vbmi(w, a, y, o_begin, o_end)
                              : avx512::packed_ternary(w, a, y, o_begin, o_end);
  }
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

// ------------------------------------------------------------------ float weights

template <TensorType T>
inline __m512 load_w16(const uint8_t* p, __mmask16 m) {
  if constexpr (T == TensorType::F32) {
    return _mm512_maskz_loadu_ps(m, p);
  } else if constexpr (T == TensorType::F16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  } else {
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
  }
}

template <TensorType T>
inline __m512 load_w16(const uint8_t* p) {
  if constexpr (T == TensorType::F32) {
    return _mm512_loadu_ps(p);
  } else if constexpr (T == TensorType::F16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  } else {
    return _mm512_castsi512_ps(_mm512_slli_epi32(
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
  }
}

// In: r[j] = 16 elements of row j. Out: r[i] = element i of rows 0..15 (lane = row).
// unpack (pairs of rows), shuffle_ps (4 x 4 blocks inside 128-bit chunks), then a 4 x 4
// transpose of 128-bit chunks: 64 shuffles.
inline void transpose16(__m512* r) {
  __m512 t[16], u[16];
  BITNET_UNROLL
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  BITNET_UNROLL
  for (int q = 0; q < 4; ++q) {  // u[4q + e], chunk c: element 4c + e of rows 4q..4q+3
    u[4 * q + 0] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * q + 1] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * q + 2] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * q + 3] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  BITNET_UNROLL
  for (int e = 0; e < 4; ++e) {  // r[4c + e] = chunk c of u[e], u[4 + e], u[8 + e], u[12 + e]
    const __m512 x0 = _mm512_shuffle_f32x4(u[e], u[4 + e], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 x1 = _mm512_shuffle_f32x4(u[e], u[4 + e], _MM_SHUFFLE(3, 2, 3, 2));
    const __m512 y0 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 y1 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], _MM_SHUFFLE(3, 2, 3, 2));
    r[e] = _mm512_shuffle_f32x4(x0, y0, _MM_SHUFFLE(2, 0, 2, 0));
    r[4 + e] = _mm512_shuffle_f32x4(x0, y0, _MM_SHUFFLE(3, 1, 3, 1));
    r[8 + e] = _mm512_shuffle_f32x4(x1, y1, _MM_SHUFFLE(2, 0, 2, 0));
    r[12 + e] = _mm512_shuffle_f32x4(x1, y1, _MM_SHUFFLE(3, 1, 3, 1));
  }
}

// G groups of 16 output rows (one row per lane) x NA activation rows. Each lane runs the
// reference's loop for FloatSums S (matmul.h). kDouble: sum = 0.0 (double); for i in order:
// sum += (double)(w[i] * x[i]) (product rounded to float, then added in double); y = (float)sum.
// kBlocks: the products are added in a float vector, which is widened and added to the double
// sums at the end of every block of kFloatSumBlock elements. So the results are the scalar
// reference's bits. Weights come in 16 x 16 blocks, transposed so that vector i holds element i
// of the 16 rows; each transposed block serves all NA activation rows. Lanes 0-7 and 8-15 of a
// group sum in two 8-lane double vectors; several groups / activation rows keep independent add
// chains in flight.
template <TensorType T, FloatSums S, int NA, int G>
inline void float_tile(const uint8_t* const* w, const float* const* x, int64_t k, float* out) {
  constexpr int64_t kEs = T == TensorType::F32 ? 4 : 2;
  __m512d lo[NA][G], hi[NA][G];
  __m512 sf[NA][G];  // kBlocks: the current block's float sums
  BITNET_UNROLL
  for (int a = 0; a < NA; ++a) BITNET_UNROLL
  for (int g = 0; g < G; ++g) {
    lo[a][g] = hi[a][g] = _mm512_setzero_pd();
    sf[a][g] = _mm512_setzero_ps();
  }
  auto block = [&](int64_t i, int n, __mmask16 m) {
    BITNET_UNROLL
    for (int g = 0; g < G; ++g) {
      __m512 r[16];
      BITNET_UNROLL
      for (int j = 0; j < 16; ++j) {
        r[j] = n == 16 ? load_w16<T>(w[16 * g + j] + i * kEs)
                       : load_w16<T>(w[16 * g + j] + i * kEs, m);
        if ((i * kEs) % 64 == 0) prefetch_ahead(w[16 * g + j] + i * kEs);
      }
      transpose16(r);
      BITNET_UNROLL
      for (int a = 0; a < NA; ++a) {
        __m512d sl = lo[a][g], sh = hi[a][g];
        __m512 s = sf[a][g];
        auto widen_add = [&](__m512 p) {
          sl = _mm512_add_pd(sl, avx512::lo_pd(p));
          sh = _mm512_add_pd(sh, avx512::hi_pd(p));
        };
        BITNET_UNROLL
        for (int e = 0; e < 16; ++e) {
          if (e < n) {
            const __m512 p = _mm512_mul_ps(r[e], _mm512_set1_ps(x[a][i + e]));
            if constexpr (S == FloatSums::kBlocks) {
              s = _mm512_add_ps(s, p);
            } else {
              widen_add(p);
            }
          }
        }
        if constexpr (S == FloatSums::kBlocks) {
          if ((i + n) % kFloatSumBlock == 0 || i + n == k) {
            widen_add(s);
            s = _mm512_setzero_ps();
          }
          sf[a][g] = s;
        }
        lo[a][g] = sl;
        hi[a][g] = sh;
      }
    }
  };
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) block(i, 16, 0xFFFF);
  if (i < k) block(i, static_cast<int>(k - i), lanes_below(k - i));
  BITNET_UNROLL
  for (int a = 0; a < NA; ++a) {
    BITNET_UNROLL
    for (int g = 0; g < G; ++g) {
      _mm256_storeu_ps(out + (a * G + g) * 16, _mm512_cvtpd_ps(lo[a][g]));
      _mm256_storeu_ps(out + (a * G + g) * 16 + 8, _mm512_cvtpd_ps(hi[a][g]));
    }
  }
}

template <TensorType T, FloatSums S>
void float_matmul(const WeightMatrix& w, const float* x, int64_t rows, float* y, int64_t o_begin,
                  int64_t o_end) {
  auto row = [&](int64_t o) { return w.row(o); };
  auto run = [&]<int NA, int G>(int64_t r0) {
    constexpr int kRows = 16 * G;
    for (int64_t o = o_begin; o < o_end; o += kRows) {
      const int64_t nw = o_end - o < kRows ? o_end - o : kRows;
      const uint8_t* wr[kRows];
      tile_rows<kRows>(o, nw, row, wr);
      const float* xr[NA];
      BITNET_UNROLL
      for (int i = 0; i < NA; ++i) xr[i] = x + (r0 + i) * w.k;
      alignas(64) float out[NA * kRows];
      float_tile<T, S, NA, G>(wr, xr, w.k, out);
      BITNET_UNROLL
      for (int i = 0; i < NA; ++i)
        for (int64_t j = 0; j < nw; ++j) y[(r0 + i) * w.n_out + o + j] = out[i * kRows + j];
    }
  };
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) run.template operator()<4, 1>(r);
  for (; r < rows; ++r) run.template operator()<1, 1>(r);
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
  if (w.packed != nullptr && w.type == TensorType::F16)
    return avx512::packed_f16(w, x, rows, y, o_begin, o_end);
  if (w.float_sums == FloatSums::kBlocks) {
    return float_matmul<FloatSums::kBlocks>(w, x, rows, y, o_begin, o_end);
  }
  return float_matmul<FloatSums::kDouble>(w, x, rows, y, o_begin, o_end);
}

// dot_peak.h: 16 chains of VPDPBUSD on registers, 64 multiply-adds each.
int64_t dot_loop(int64_t iters) {
  const int64_t n = iters;
  asm volatile(
      "vpternlogd $0xff, %%zmm16, %%zmm16, %%zmm16\n"
      "vpternlogd $0xff, %%zmm17, %%zmm17, %%zmm17\n"
      "1:\n"
      ".irp r,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
      "vpdpbusd %%zmm17, %%zmm16, %%zmm\\r\n"
      ".endr\n"
      "dec %0\n"
      "jnz 1b\n"
      : "+r"(iters)
      :
      : "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
        "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17");
  return n * 16 * 64;
}

}  // namespace

const KernelTable* avx512_table() {
  static const KernelTable t{Variant::kAvx512,
                             quantize,
                             ternary,
                             flt,
                             avx512::q8_0_head,
                             avx512::attention_scores,
                             avx512::attention_values,
                             avx512::attention_scores_group,
                             avx512::attention_values_group,
                             avx512::swiglu,
                             avx512::relu_sqr_mul,
                             avx512::fp32_to_fp16_row,
                             avx512::rms_norm,
                             avx512::round_to_f16,
                             avx512::softmax_probs,
                             dot_loop,
                             "VPDPBUSD zmm"};
  return &t;
}

}  // namespace bitnet::kernels
