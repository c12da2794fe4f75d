// Elementwise ops of the forward pass that are worth a SIMD variant in decode, where everything
// around the weight streams runs on one thread while the others wait:
//   swiglu:  y_i = silu(x_i) * g_i with ggml's numerics (ggml_math.h: ggml_swiglu);
//   f32 -> f16 rows for the KV cache (core/fp16.h's round-to-nearest-even conversion).
// The scalar references are the specification; SIMD variants are bit-exact with them
// (tests/kernels/elementwise_test.cpp).
#pragma once

#include <cstdint>

namespace bitnet::kernels {

void swiglu_ref(int64_t n, float* y, const float* x, const float* g);
void fp32_to_fp16_row_ref(const float* x, int64_t n, uint16_t* y);

// Dispatched (active variant).
void swiglu(int64_t n, float* y, const float* x, const float* g);
void fp32_to_fp16_row(const float* x, int64_t n, uint16_t* y);

}  // namespace bitnet::kernels
