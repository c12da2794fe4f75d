// Pieces both ARM64 kernel headers use (neon_attention.h, neon_elementwise.h): partial loads and
// stores of 4-lane vectors. Internal linkage, as everything the ARM64 units include.
#pragma once

#include <cstdint>

#include "core/fp16.h"
#include "kernels/arm64/neon_prelude.h"

namespace bitnet::kernels {
namespace {

// Lanes [0, n) of the 4 values at base + at (f16 or float), the others `fill`.
template <bool F16>
inline float32x4_t load_part(const void* base, int64_t at, int64_t n, float fill = 0.0f) {
  if constexpr (F16) {
    const uint16_t* p = static_cast<const uint16_t*>(base) + at;
    if (n >= 4) return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
    const uint16_t f = fp32_to_fp16(fill);
    uint16_t buf[4] = {f, f, f, f};
    for (int64_t l = 0; l < n; ++l) buf[l] = p[l];
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(buf)));
  } else {
    const float* p = static_cast<const float*>(base) + at;
    if (n >= 4) return vld1q_f32(p);
    float buf[4] = {fill, fill, fill, fill};
    for (int64_t l = 0; l < n; ++l) buf[l] = p[l];
    return vld1q_f32(buf);
  }
}

// Lanes [0, n) of v to dst.
inline void store_part(float* dst, float32x4_t v, int64_t n) {
  if (n >= 4) {
    vst1q_f32(dst, v);
    return;
  }
  float buf[4];
  vst1q_f32(buf, v);
  for (int64_t l = 0; l < n; ++l) dst[l] = buf[l];
}

}  // namespace
}  // namespace bitnet::kernels
