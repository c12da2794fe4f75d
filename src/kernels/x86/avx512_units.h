// Parts of the AVX-512 variant defined outside avx512_kernels.cpp (which holds its table):
// kernels over the packed weight layouts of kernels/packed.h (for matrices with a packed copy)
// and the attention products of kernels/attention.h. Bit-exact with the scalar references.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/x86/avx512_packed_entries.h"

namespace bitnet::kernels::avx512 {

// Lanes 0-7 and 8-15 of a float vector widened to double: the sums the kernels keep in double
// (the scalar references' `sum += (double)...`) run in two 8-lane vectors.
// The first n of 16 lanes (all when n >= 16, none when n <= 0): loads and stores of a row's
// last partial vector.
inline __mmask16 lanes_below(int64_t n) {
  if (n >= 16) return static_cast<__mmask16>(0xFFFF);
  return n <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << n) - 1u);
}

inline __m512d lo_pd(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
inline __m512d hi_pd(__m512 v) {
  return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

// F16 with w.packed set.
void packed_f16(const WeightMatrix& w, const float* x, int64_t rows, float* y, int64_t o_begin,
                int64_t o_end);

// The Q8_0 head (kernels/q8_0_head.h).
void q8_0_head(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
               int64_t o_end);

void attention_scores(const AttentionHead& a, float* s);
void attention_values(const AttentionHead& a, const float* p, float* out);
void attention_scores_group(const AttentionHead& a, const float* const* qs, int n_q,
                            float* const* s);
void attention_values_group(const AttentionHead& a, int n_q, const float* const* p,
                            float* const* out);

// kernels/elementwise.h.
void swiglu(int64_t n, float* y, const float* x, const float* g);
void relu_sqr_mul(int64_t n, float* y, const float* x, const float* g);
void fp32_to_fp16_row(const float* x, int64_t n, uint16_t* y);
void rms_norm(const float* x, const float* w, int64_t n, float eps, float* y);
void round_to_f16(float* x, int64_t n);
void softmax_probs(float* s, int64_t n, bool round_f16);

}  // namespace bitnet::kernels::avx512
