// The avx2-vnni variant's packed kernels (avx2_vnni_packed.cpp), declared without intrinsics so
// that code built without AVX-VNNI flags (the tests, the variant's table) can name them.
#pragma once

#include <cstdint>

#include "kernels/matmul.h"

namespace bitnet::kernels::avx2vnni {

// I2_S / TQ2_0 with w.packed set (kernels/packed.h); rows [o_begin, o_end) of every activation
// row, bit-exact with matmul_ternary_ref on the file layout.
void packed_ternary(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
                    int64_t o_end);
// The Q8_0 head (q8_0_head.h), bit-exact with matmul_q8_0_head_ref.
void q8_0_head(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
               int64_t o_end);

}  // namespace bitnet::kernels::avx2vnni
