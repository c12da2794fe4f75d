#include <algorithm>
#include <cmath>

#include "kernels/activations.h"
#include "kernels/kernel_support.h"

namespace bitnet::kernels {

float quantize_row_per_token_ref(const float* x, int64_t k, int8_t* q) {
  double m = 0.0;
  for (int64_t i = 0; i < k; ++i) m = std::max(m, static_cast<double>(std::fabs(x[i])));
  m = std::max(m, 1e-5);
  const float s = static_cast<float>(127.0 / m);
  for (int64_t i = 0; i < k; ++i) {
    // nearbyint rounds half to even under the default rounding mode. A NaN product (an
    // infinite x_i makes s = 0) gives 0: converting NaN to an integer is undefined in C++.
    const float v = std::nearbyint(x[i] * s);
    q[i] = std::isnan(v) ? int8_t{0} : static_cast<int8_t>(std::clamp(v, -128.0f, 127.0f));
  }
  return s;
}

void quantize_row_q8k_ref(const float* x, int64_t k, int8_t* q, float* d, int16_t* bsums) {
  for (int64_t b = 0; b < k / kQ8KBlock; ++b) {
    const float* xb = x + b * kQ8KBlock;
    int8_t* qb = q + b * kQ8KBlock;
    float amax = 0.0f, max = 0.0f;
    for (int64_t j = 0; j < kQ8KBlock; ++j) {
      const float ax = std::fabs(xb[j]);
      if (ax > amax) {
        amax = ax;
        max = xb[j];
      }
    }
    if (amax == 0.0f) {
      d[b] = 0.0f;
      std::fill(qb, qb + kQ8KBlock, int8_t{0});
    } else {
      const float iscale = -127.0f / max;
      for (int64_t j = 0; j < kQ8KBlock; ++j) {
        // A non-finite product (iscale overflows when max is subnormal; an infinite x_j gives
        // NaN) becomes 0, as in ggml, whose magic-number rounding leaves no mantissa bits of an
        // infinity or NaN; C++ leaves converting them to int undefined (x86-64 and ARM64 differ).
        const float p = iscale * xb[j];
        const int v = std::isfinite(p) ? static_cast<int>(std::nearbyint(p)) : 0;
        qb[j] = static_cast<int8_t>(std::min(127, v));
      }
      d[b] = 1.0f / iscale;
    }
    for (int64_t g = 0; g < kQ8KBlock / 16; ++g) {
      int sum = 0;
      for (int64_t j = 0; j < 16; ++j) sum += qb[g * 16 + j];
      bsums[b * (kQ8KBlock / 16) + g] = static_cast<int16_t>(sum);
    }
  }
}

QuantizedRows rows_from(QuantizedActivations& a, int64_t r) {
  const bool q8k = a.kind == ActQuant::kQ8K;
  return {a.q.data() + r * a.k, a.scales.data() + (q8k ? r * (a.k / kQ8KBlock) : r),
          q8k ? a.bsums.data() + r * (a.k / 16) : nullptr};
}

void quantize_rows_ref(ActQuant kind, const float* x, int64_t rows, int64_t k, QuantizedRows out) {
  const int64_t nb = k / kQ8KBlock;
  for (int64_t r = 0; r < rows; ++r) {
    if (kind == ActQuant::kPerTokenInt8) {
      out.scales[r] = quantize_row_per_token_ref(x + r * k, k, out.q + r * k);
    } else {
      quantize_row_q8k_ref(x + r * k, k, out.q + r * k, out.scales + r * nb,
                           out.bsums + r * k / 16);
    }
  }
}

void quantize_activations_ref(ActQuant kind, const float* x, int64_t rows, int64_t k,
                              QuantizedActivations* out) {
  detail::shape_quantized(kind, rows, k, out);
  quantize_rows_ref(kind, x, rows, k, rows_from(*out, 0));
}

}  // namespace bitnet::kernels
