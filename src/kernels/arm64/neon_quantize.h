// ARM64 activation quantization (kernels/activations.h), byte-identical with the scalar reference:
// the reference's float products rounded half to even by FCVTNS and narrowed with saturation,
// which is the reference's clamp for every finite product; a NaN product gives 0 both ways.
// Q8_K's products are finite or NaN except when iscale itself overflows (a subnormal maximum):
// the reference then gives all zeros, and so does this. Maxima use FMAXNM, which ignores NaN as
// the reference's comparisons do. Included by both ARM64 units (internal linkage).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/activations.h"
#include "kernels/arm64/neon_prelude.h"

namespace bitnet::kernels {
namespace {

// 16 floats times s, rounded half to even, saturated to int8.
inline int8x16_t round_16(const float* x, float32x4_t s) {
  const int32x4_t a = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x), s));
  const int32x4_t b = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + 4), s));
  const int32x4_t c = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + 8), s));
  const int32x4_t d = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + 12), s));
  return vcombine_s8(vqmovn_s16(vcombine_s16(vqmovn_s32(a), vqmovn_s32(b))),
                     vqmovn_s16(vcombine_s16(vqmovn_s32(c), vqmovn_s32(d))));
}

// max |x_i| over the first n4 floats (a multiple of 4; NaN ignored; 0 if there is nothing else).
inline float abs_max4(const float* x, int64_t n4) {
  float32x4_t mx = vdupq_n_f32(0.0f);
  for (int64_t i = 0; i < n4; i += 4) mx = vmaxnmq_f32(mx, vabsq_f32(vld1q_f32(x + i)));
  return vmaxnmvq_f32(mx);
}

inline float quantize_row_per_token(const float* x, int64_t k, int8_t* q) {
  const int64_t k4 = k / 4 * 4;
  float mf = abs_max4(x, k4);
  for (int64_t i = k4; i < k; ++i) {
    const float a = std::fabs(x[i]);
    mf = a > mf ? a : mf;
  }
  const double m0 = mf;  // the reference's max in double: the same value
  const double m = m0 > 1e-5 ? m0 : 1e-5;
  const float s = static_cast<float>(127.0 / m);
  const float32x4_t vs = vdupq_n_f32(s);
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) vst1q_s8(q + i, round_16(x + i, vs));
  for (; i < k; ++i) {
    const float v = std::nearbyint(x[i] * s);
    q[i] = static_cast<int8_t>(v < -128.0f ? -128.0f : (v > 127.0f ? 127.0f : v));
  }
  return s;
}

inline void quantize_block_q8k(const float* x, int8_t* q, float* d, int16_t* bsums) {
  const float amax = abs_max4(x, kQ8KBlock);
  if (amax == 0.0f) {
    *d = 0.0f;
    for (int j = 0; j < kQ8KBlock; j += 16) vst1q_s8(q + j, vdupq_n_s8(0));
    for (int g = 0; g < kQ8KBlock / 16; ++g) bsums[g] = 0;
    return;
  }
  // The signed value that first reaches amax (the reference keeps the first on ties).
  int j = 0;
  while (std::fabs(x[j]) != amax) ++j;
  const float iscale = -127.0f / x[j];
  const bool finite = std::isfinite(iscale);
  const float32x4_t vs = vdupq_n_f32(iscale);
  for (int g = 0; g < kQ8KBlock / 16; ++g) {
    const int8x16_t v = finite ? round_16(x + 16 * g, vs) : vdupq_n_s8(0);
    vst1q_s8(q + 16 * g, v);
    bsums[g] = static_cast<int16_t>(vaddlvq_s8(v));
  }
  *d = 1.0f / iscale;
}

inline void quantize_entry(ActQuant kind, const float* x, int64_t rows, int64_t k,
                           QuantizedRows out) {
  if (kind == ActQuant::kPerTokenInt8) {
    for (int64_t r = 0; r < rows; ++r)
      out.scales[r] = quantize_row_per_token(x + r * k, k, out.q + r * k);
    return;
  }
  const int64_t nb = rows * (k / kQ8KBlock);
  for (int64_t b = 0; b < nb; ++b)
    quantize_block_q8k(x + b * kQ8KBlock, out.q + b * kQ8KBlock, out.scales + b,
                       out.bsums + b * 16);
}

}  // namespace
}  // namespace bitnet::kernels
