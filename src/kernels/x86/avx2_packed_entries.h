// The AVX2 variant's packed ternary kernel (avx2_packed.cpp), declared without intrinsics so that
// code built without AVX2 flags (the tests, the AVX2 table) can name it.
#pragma once

#include <cstdint>

#include "kernels/matmul.h"

namespace bitnet::kernels::avx2 {

// I2_S / TQ2_0 with w.packed set (kernels/packed.h); rows [o_begin, o_end) of every activation
// row, bit-exact with matmul_ternary_ref on the file layout.
void packed_ternary(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
                    int64_t o_end);

}  // namespace bitnet::kernels::avx2
