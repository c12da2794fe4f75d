// Elementwise math with the exact numerics of ggml's portable x86-64 CPU backend (the "x64"
// variant of the pinned llama.cpp: SSE2, no FMA), so that our logits can match the reference
// bit for bit rather than "within float rounding", where one ulp flips an int8 activation code
// and the difference grows through the network.
//
// ggml computes exp in its softmax and SiLU with a vectorised approximation (the algorithm of
// ARM's optimized-routines expf: a round-to-nearest split x = n ln2 + b, a degree-5 polynomial
// in b, and scaling by 2^n with special handling near overflow/underflow), 4 lanes at a time;
// leftover elements use libm's expf. The scalar functions below evaluate the same formula with
// the same constants and the same (unfused) operation order, one lane at a time.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace bitnet::kernels {

// One lane of ggml's SSE2 ggml_v_expf.
inline float ggml_vexpf(float x) {
  const float r = 0x1.8p23f;               // 1.5 * 2^23: adding it rounds to an integer
  const float z = x * 0x1.715476p+0f + r;  // x / ln2 + r
  const float n = z - r;
  const float b = (x - n * 0x1.62e4p-1f) - n * 0x1.7f7d1cp-20f;  // x - n ln2, in two parts
  const uint32_t e = std::bit_cast<uint32_t>(z) << 23;
  const float k = std::bit_cast<float>(e + std::bit_cast<uint32_t>(1.0f));  // 2^n
  const float u = b * b;
  const float j =
      ((0x1.0e4020p-7f * b + 0x1.573e2ep-5f) * u + (0x1.555e66p-3f * b + 0x1.fffdb6p-2f)) * u +
      0x1.ffffecp-1f * b;  // e^b - 1
  if (!(std::fabs(n) > 126.0f)) return j * k + k;
  // |n| > 126: 2^n is split in two factors to avoid overflow / premature underflow.
  const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
  const float s1 = std::bit_cast<float>(g + 0x7f000000u);
  const float s2 = std::bit_cast<float>(e - g);
  if (std::fabs(n) > 192.0f) return s1 * s1;
  return (s2 * j + s2) * s1;
}

// ggml_v_silu: x / (1 + e^-x), with e^-x from ggml_vexpf.
inline float ggml_vsilu(float x) { return x / (1.0f + ggml_vexpf(0.0f - x)); }

// ggml_vec_swiglu_f32: y = silu(x) * g, 4 lanes at a time, the tail with libm's expf.
inline void ggml_swiglu(int64_t n, float* y, const float* x, const float* g) {
  const int64_t full = n / 4 * 4;  // whole groups of 4 lanes
  int64_t i = 0;
  for (; i < full; ++i) y[i] = ggml_vsilu(x[i]) * g[i];
  for (; i < n; ++i) y[i] = x[i] / (1.0f + std::exp(-x[i])) * g[i];
}

// ggml_vec_soft_max_f32 for one row: y_i = e^(x_i - max), returns sum(y) in double, where each
// group of 4 is summed in float as (y0 + y1) + (y2 + y3) before being added in double, and a
// tail of fewer than 4 uses libm's expf. ggml runs this over the whole (padded) KV length with
// masked cells at 0; `n` here is the number of real cells and the padding is implicit (zeros
// only complete the last group of 4, which is exactly what the padded row contributes).
inline double ggml_softmax_exp(int64_t n, float* y, const float* x, float max) {
  double sum = 0.0;
  int64_t i = 0;
  for (; i < n; i += 4) {
    float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t l = 0; l < 4 && i + l < n; ++l) v[l] = y[i + l] = ggml_vexpf(x[i + l] - max);
    sum += static_cast<double>((v[0] + v[1]) + (v[2] + v[3]));
  }
  return sum;
}

}  // namespace bitnet::kernels
