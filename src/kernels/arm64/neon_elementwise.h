// ARM64 elementwise kernels (kernels/elementwise.h), bit-exact with ref/elementwise_ref.cpp: the
// x86 kernels' scheme (x86/avx2_elementwise.cpp) on 4 lanes. Every multiply and add is a separate,
// rounded operation (-ffp-contract=off and no FMA intrinsics), as in the reference. Tails go to
// the references themselves. Included by both ARM64 units (internal linkage).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/fp16.h"
#include "kernels/arm64/neon_units.h"
#include "kernels/elementwise.h"

namespace bitnet::kernels {
namespace {

inline float32x4_t from_bits(int32x4_t v) { return vreinterpretq_f32_s32(v); }
inline int32x4_t to_bits(float32x4_t v) { return vreinterpretq_s32_f32(v); }

// 4 lanes of ggml_vexpf (ggml_math.h), operation for operation; each lane takes the result its
// scalar evaluation returns (ordered comparisons: a NaN n keeps the normal formula).
inline float32x4_t vexpf4(float32x4_t x) {
  const float32x4_t r = vdupq_n_f32(0x1.8p23f);
  const float32x4_t z = vaddq_f32(vmulq_f32(x, vdupq_n_f32(0x1.715476p+0f)), r);
  const float32x4_t n = vsubq_f32(z, r);
  const float32x4_t b = vsubq_f32(vsubq_f32(x, vmulq_f32(n, vdupq_n_f32(0x1.62e4p-1f))),
                                  vmulq_f32(n, vdupq_n_f32(0x1.7f7d1cp-20f)));
  const int32x4_t e = vshlq_n_s32(to_bits(z), 23);
  const float32x4_t k = from_bits(vaddq_s32(e, to_bits(vdupq_n_f32(1.0f))));
  const float32x4_t u = vmulq_f32(b, b);
  const float32x4_t p1 =
      vaddq_f32(vmulq_f32(vdupq_n_f32(0x1.0e4020p-7f), b), vdupq_n_f32(0x1.573e2ep-5f));
  const float32x4_t p2 =
      vaddq_f32(vmulq_f32(vdupq_n_f32(0x1.555e66p-3f), b), vdupq_n_f32(0x1.fffdb6p-2f));
  const float32x4_t j = vaddq_f32(vmulq_f32(vaddq_f32(vmulq_f32(p1, u), p2), u),
                                  vmulq_f32(vdupq_n_f32(0x1.ffffecp-1f), b));
  const float32x4_t normal = vaddq_f32(vmulq_f32(j, k), k);
  const float32x4_t abs_n = vabsq_f32(n);
  const uint32x4_t big = vcgtq_f32(abs_n, vdupq_n_f32(126.0f));
  if (vmaxvq_u32(big) == 0) return normal;
  const uint32x4_t neg = vcleq_f32(n, vdupq_n_f32(0.0f));
  const int32x4_t g =
      vreinterpretq_s32_u32(vandq_u32(neg, vdupq_n_u32(static_cast<uint32_t>(0x82000000u))));
  const float32x4_t s1 = from_bits(vaddq_s32(g, vdupq_n_s32(0x7f000000)));
  const float32x4_t s2 = from_bits(vsubq_s32(e, g));
  const float32x4_t huge = vmulq_f32(s1, s1);
  const float32x4_t scaled = vmulq_f32(vaddq_f32(vmulq_f32(s2, j), s2), s1);
  const uint32x4_t very_big = vcgtq_f32(abs_n, vdupq_n_f32(192.0f));
  return vbslq_f32(very_big, huge, vbslq_f32(big, scaled, normal));
}

// FCVT to half and back: core/fp16.h's conversion (round to nearest even), as F16C's on x86.
inline float32x4_t via_f16(float32x4_t v) { return vcvt_f32_f16(vcvt_f16_f32(v)); }

inline void swiglu_entry(int64_t n, float* y, const float* x, const float* g) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {  // the reference's groups of 4 exactly
    const float32x4_t xv = vld1q_f32(x + i);
    const float32x4_t e = vexpf4(vsubq_f32(vdupq_n_f32(0.0f), xv));
    const float32x4_t silu = vdivq_f32(xv, vaddq_f32(vdupq_n_f32(1.0f), e));
    vst1q_f32(y + i, vmulq_f32(silu, vld1q_f32(g + i)));
  }
  if (i < n) swiglu_ref(n - i, y + i, x + i, g + i);
}

// The reference's r = x > 0 ? x : 0 by a compare and a select (a NaN or -0 x gives +0).
inline void relu_sqr_mul_entry(int64_t n, float* y, const float* x, const float* g) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t xv = vld1q_f32(x + i);
    const float32x4_t r = vbslq_f32(vcgtq_f32(xv, vdupq_n_f32(0.0f)), xv, vdupq_n_f32(0.0f));
    vst1q_f32(y + i, vmulq_f32(vmulq_f32(r, r), vld1q_f32(g + i)));
  }
  if (i < n) relu_sqr_mul_ref(n - i, y + i, x + i, g + i);
}

inline void to_f16_entry(const float* x, int64_t n, uint16_t* y) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
  for (; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

inline void round_f16_entry(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(x + i, via_f16(vld1q_f32(x + i)));
  for (; i < n; ++i) x[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
}

// RMSNorm: the squares summed in 8 double lanes, then mean_square_from_sum (elementwise.h).
inline void rms_norm_entry(const float* x, const float* w, int64_t n, float eps, float* y) {
  float64x2_t a[4] = {vdupq_n_f64(0.0), vdupq_n_f64(0.0), vdupq_n_f64(0.0), vdupq_n_f64(0.0)};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t v0 = vld1q_f32(x + i), v1 = vld1q_f32(x + i + 4);
    const float32x4_t s0 = vmulq_f32(v0, v0), s1 = vmulq_f32(v1, v1);
    a[0] = vaddq_f64(a[0], vcvt_f64_f32(vget_low_f32(s0)));
    a[1] = vaddq_f64(a[1], vcvt_high_f64_f32(s0));
    a[2] = vaddq_f64(a[2], vcvt_f64_f32(vget_low_f32(s1)));
    a[3] = vaddq_f64(a[3], vcvt_high_f64_f32(s1));
  }
  const float64x2_t t = vaddq_f64(vaddq_f64(a[0], a[1]), vaddq_f64(a[2], a[3]));
  double sum = vgetq_lane_f64(t, 0) + vgetq_lane_f64(t, 1);
  for (; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float scale = 1.0f / std::sqrt(mean_square_from_sum(sum, x, n) + eps);
  const float32x4_t vs = vdupq_n_f32(scale);
  for (i = 0; i + 4 <= n; i += 4)
    vst1q_f32(y + i, vmulq_f32(vmulq_f32(vld1q_f32(x + i), vs), vld1q_f32(w + i)));
  for (; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}

// The reference's steps on 4 lanes. Max: FMAXNM ignores a NaN s_j, as std::max(max, s_j) does.
// Sums: each vector is one of the reference's groups of 4, (e0 + e1) + (e2 + e3) by pairwise
// adds; lanes past n are 0, as the reference's missing group members; the groups' sums are then
// added in double in order.
inline void softmax_entry(float* s, int64_t n, bool round_f16) {
  const float ninf = -__builtin_inff();
  float32x4_t vmax = vdupq_n_f32(ninf);
  for (int64_t i = 0; i < n; i += 4) vmax = vmaxnmq_f32(vmax, load_part<false>(s, i, n - i, ninf));
  float m = vgetq_lane_f32(vmax, 0);
  for (float l : {vgetq_lane_f32(vmax, 1), vgetq_lane_f32(vmax, 2), vgetq_lane_f32(vmax, 3)})
    m = l > m ? l : m;
  const float32x4_t max = vdupq_n_f32(m);
  double sum = 0.0;
  for (int64_t i = 0; i < n; i += 4) {
    float32x4_t e = vexpf4(vsubq_f32(load_part<false>(s, i, n - i), max));
    if (n - i < 4) {
      const uint32x4_t idx = {0, 1, 2, 3};
      e = vbslq_f32(vcltq_u32(idx, vdupq_n_u32(static_cast<uint32_t>(n - i))), e,
                    vdupq_n_f32(0.0f));
    }
    store_part(s + i, e, n - i);
    const float32x4_t pairs = vpaddq_f32(e, e);  // e0 + e1, e2 + e3, ...
    sum += static_cast<double>(vgetq_lane_f32(pairs, 0) + vgetq_lane_f32(pairs, 1));
  }
  const float32x4_t inv = vdupq_n_f32(static_cast<float>(1.0 / sum));
  for (int64_t i = 0; i < n; i += 4) {
    const float32x4_t p = vmulq_f32(load_part<false>(s, i, n - i), inv);
    store_part(s + i, round_f16 ? via_f16(p) : p, n - i);
  }
}

}  // namespace
}  // namespace bitnet::kernels
