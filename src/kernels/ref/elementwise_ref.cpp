// Scalar references of kernels/elementwise.h.
#include <algorithm>
#include <cmath>

#include "core/fp16.h"
#include "kernels/elementwise.h"
#include "kernels/ggml_math.h"

namespace bitnet::kernels {

void swiglu_ref(int64_t n, float* y, const float* x, const float* g) { ggml_swiglu(n, y, x, g); }

void relu_sqr_mul_ref(int64_t n, float* y, const float* x, const float* g) {
  for (int64_t i = 0; i < n; ++i) {
    const float r = x[i] > 0.0f ? x[i] : 0.0f;
    y[i] = r * r * g[i];
  }
}

void fp32_to_fp16_row_ref(const float* x, int64_t n, uint16_t* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

float mean_square_ref(const float* x, int64_t n) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  return static_cast<float>(sum / static_cast<double>(n));
}

// Both the in-order sum and `sum` are within (n-1)u/(1-(n-1)u) * S of the exact sum S of the
// n non-negative squares (u = 2^-53; S <= sum * (1 + that)), so within 2n u S of each other;
// the bound taken is twice that, 4 n u sum = n 2^-51 sum, which also covers the rounding of
// sum -/+ bound itself (at most u of it). Division by n and the cast to float are monotonic,
// so if both ends give one float, so does the in-order sum.
float mean_square_from_sum(double sum, const float* x, int64_t n) {
  const double dn = static_cast<double>(n);
  if (std::isfinite(sum) && n < (int64_t{1} << 40)) {
    const double bound = sum * (dn * 0x1p-51);
    const float lo = static_cast<float>((sum - bound) / dn);
    const float hi = static_cast<float>((sum + bound) / dn);
    if (lo == hi) return lo;
  }
  return mean_square_ref(x, n);
}

void rms_norm_ref(const float* x, const float* w, int64_t n, float eps, float* y) {
  const float scale = 1.0f / std::sqrt(mean_square_ref(x, n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}

void round_to_f16_ref(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
}

void softmax_probs_ref(float* s, int64_t n, bool round_f16) {
  float max = -INFINITY;
  for (int64_t j = 0; j < n; ++j) max = std::max(max, s[j]);
  const double sum = ggml_softmax_exp(n, s, s, max);
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t j = 0; j < n; ++j) {
    s[j] *= inv;
    if (round_f16) s[j] = fp16_to_fp32(fp32_to_fp16(s[j]));
  }
}

}  // namespace bitnet::kernels
