// Elementwise ops of the forward pass that are worth a SIMD variant in decode, where everything
// around the weight streams runs on one thread while the others wait:
//   swiglu:  y_i = silu(x_i) * g_i with ggml's numerics (ggml_math.h: ggml_swiglu);
//   relu_sqr_mul: y_i = (r_i * r_i) * g_i, r_i = x_i > 0 ? x_i : 0 (ggml's relu, sqr and mul in
//     turn; a NaN or -0 x_i gives r_i = +0). Written as a kernel because the compiler keeps the
//     scalar loop's branch, which random signs mispredict half the time;
//   f32 -> f16 rows for the KV cache (core/fp16.h's round-to-nearest-even conversion);
//   round_to_f16: x_i = (float)(f16)x_i in place (what ggml's F16 products do to an operand);
//   softmax_probs: attention probabilities as ggml's soft_max computes them (ggml_math.h):
//     max, e_j = ggml_vexpf(s_j - max), sum = in-order double sum of the float sums of groups
//     of 4 ((e0 + e1) + (e2 + e3)), p_j = e_j * (float)(1 / sum), optionally rounded to f16;
//   rms_norm: ggml's RMSNorm, y_i = (x_i * scale) * w_i, scale = 1 / sqrtf(mean + eps),
//     mean = (float)(sum / n), sum = 0.0 (double); sum += (double)(x_i * x_i) in element order.
//
// RMSNorm's sum is one chain of n dependent double additions (~4 cycles each: 28 us per decode
// token on the 2B4T shape, on one thread while the others wait). Only the float mean it rounds
// to matters, so the SIMD variants add the squares in any order (vector lanes), bound how far
// the in-order sum can lie from that (recursive summation of n non-negative terms is within
// (n-1)u of the exact sum, u = 2^-53, and so is the lane-wise sum: mean_square_from_sum), and
// take the float both ends of the bound round to; only when they round apart (about once in
// 10^5 rows) do they add in order after all. Bit-exact with the reference either way.
// The scalar references are the specification; SIMD variants are bit-exact with them
// (tests/kernels/elementwise_test.cpp).
#pragma once

#include <cstdint>

#include "kernels/dispatch.h"

namespace bitnet::kernels {

void swiglu_ref(int64_t n, float* y, const float* x, const float* g);
void relu_sqr_mul_ref(int64_t n, float* y, const float* x, const float* g);
void fp32_to_fp16_row_ref(const float* x, int64_t n, uint16_t* y);
void rms_norm_ref(const float* x, const float* w, int64_t n, float eps, float* y);
void round_to_f16_ref(float* x, int64_t n);
void softmax_probs_ref(float* s, int64_t n, bool round_f16);

// The reference's mean, (float)(sum / n) with the in-order double sum of float squares.
float mean_square_ref(const float* x, int64_t n);
// The same float, given `sum`: x's squares ((double)(x_i * x_i)) added in any order. Returns
// the float every sum within the error bound of both orders rounds to, or (NaN, infinity, or a
// bound straddling a rounding boundary) mean_square_ref(x, n).
float mean_square_from_sum(double sum, const float* x, int64_t n);

// Dispatched (k's variant).
void swiglu(const Kernels& k, int64_t n, float* y, const float* x, const float* g);
void relu_sqr_mul(const Kernels& k, int64_t n, float* y, const float* x, const float* g);
void fp32_to_fp16_row(const Kernels& k, const float* x, int64_t n, uint16_t* y);
void rms_norm(const Kernels& k, const float* x, const float* w, int64_t n, float eps, float* y);
void round_to_f16(const Kernels& k, float* x, int64_t n);
void softmax_probs(const Kernels& k, float* s, int64_t n, bool round_f16);

}  // namespace bitnet::kernels
