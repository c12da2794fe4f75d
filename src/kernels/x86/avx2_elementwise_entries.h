// The AVX2 variant's SwiGLU and softmax (avx2_elementwise.cpp), declared without intrinsics so
// that the AVX2 table (avx2_kernels.cpp) can name them. Each is bit-exact with its reference in
// kernels/elementwise.h.
#pragma once

#include <cstdint>

namespace bitnet::kernels::avx2 {

void swiglu(int64_t n, float* y, const float* x, const float* g);
void softmax_probs(float* s, int64_t n, bool round_f16);

}  // namespace bitnet::kernels::avx2
