// Ternary weights: every BitLinear weight of BitNet b1.58 is a value in {-1, 0, +1} times a
// scale. This is the format-independent form (one int8 per weight) that the packers in i2s.h,
// tq1_0.h and tq2_0.h consume and produce, plus the absmean ternarisation the model was trained
// with (BitNet b1.58 paper; bitnet.cpp's converter stores its beta as the I2_S scale).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/result.h"

namespace bitnet::quant {

// A whole tensor quantized to one scale: weight[i] = values[i] * scale, values[i] in {-1, 0, 1}.
struct TernaryTensor {
  std::vector<int8_t> values;
  float scale = 0.0f;
};

// Lower bound on beta, as in BitNet's training code (`mean().clamp(min=1e-5)`): keeps an
// all-zero tensor from dividing by zero.
inline constexpr float kAbsmeanMin = 1e-5f;

// beta = max(mean |w|, kAbsmeanMin), the mean accumulated in double and rounded to float once.
float absmean(const float* w, size_t n);

// Absmean ternarisation: beta = absmean(w), values[i] = clamp(round(w[i] / beta), -1, 1) with
// round-half-to-even (torch.round's rule), scale = beta. Fails on NaN or infinite input.
Result<TernaryTensor> ternarize_absmean(const float* w, size_t n);

// Ok when every value is -1, 0 or 1; otherwise names the first offending index.
Status validate_ternary(const int8_t* values, size_t n);

// Ok when every value is finite; otherwise names `what` and the first offending index.
Status validate_finite(const float* x, size_t n, const char* what);

}  // namespace bitnet::quant
