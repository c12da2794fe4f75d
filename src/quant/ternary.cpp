#include "quant/ternary.h"

#include <algorithm>
#include <cmath>

namespace bitnet::quant {

float absmean(const float* w, size_t n) {
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += std::fabs(static_cast<double>(w[i]));
  const float mean = n == 0 ? 0.0f : static_cast<float>(sum / static_cast<double>(n));
  return std::max(mean, kAbsmeanMin);
}

Result<TernaryTensor> ternarize_absmean(const float* w, size_t n) {
  BITNET_TRY(validate_finite(w, n, "absmean ternarisation input"));
  TernaryTensor t;
  t.scale = absmean(w, n);
  t.values.resize(n);
  for (size_t i = 0; i < n; ++i) {
    // std::nearbyint rounds half to even in the default rounding mode.
    const float r = std::nearbyint(w[i] / t.scale);
    t.values[i] = static_cast<int8_t>(std::clamp(r, -1.0f, 1.0f));
  }
  return t;
}

Status validate_ternary(const int8_t* values, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (values[i] < -1 || values[i] > 1) {
      return make_error("ternary value %d at index %zu is not -1, 0 or 1", values[i], i);
    }
  }
  return {};
}

Status validate_finite(const float* x, size_t n, const char* what) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return make_error("%s: element %zu is %g", what, i, x[i]);
  }
  return {};
}

}  // namespace bitnet::quant
