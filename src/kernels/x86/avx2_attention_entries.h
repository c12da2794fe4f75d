// The AVX2 variant's attention kernels (avx2_attention.cpp), declared without intrinsics so that
// the AVX2 table (avx2_kernels.cpp) can name them. Each is bit-exact with its reference in
// kernels/attention.h.
#pragma once

#include "kernels/attention.h"

namespace bitnet::kernels::avx2 {

void attention_scores(const AttentionHead& a, float* s);
void attention_values(const AttentionHead& a, const float* p, float* out);
void attention_scores_group(const AttentionHead& a, const float* const* qs, int n_q,
                            float* const* s);
void attention_values_group(const AttentionHead& a, int n_q, const float* const* p,
                            float* const* out);

}  // namespace bitnet::kernels::avx2
