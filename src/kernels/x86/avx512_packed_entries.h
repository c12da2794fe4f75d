// The AVX-512 variant's packed ternary kernels (avx512_packed_ternary.h), declared without
// intrinsics so that code built without AVX-512 flags (the tests) can name both.
#pragma once

#include <cstdint>

#include "kernels/matmul.h"

namespace bitnet::kernels::avx512 {

// I2_S / TQ2_0 with w.packed set; rows [o_begin, o_end) of every activation row.
void packed_ternary(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
                    int64_t o_end);
// The same, bit for bit, with VBMI byte permutes (avx512_vbmi_packed.cpp): only where the CPU
// has AVX-512 VBMI (has_vbmi()); the variant's table entry takes it there.
void packed_ternary_vbmi(const WeightMatrix& w, const QuantizedActivations& a, float* y,
                         int64_t o_begin, int64_t o_end);
bool has_vbmi();

}  // namespace bitnet::kernels::avx512
