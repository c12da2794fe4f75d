// The ARM64 variants' packed ternary kernels, declared without intrinsics so that code built
// without their flags (the tests) can name them. neon: baseline Advanced SIMD (every ARMv8-A
// CPU); neon_dotprod: with the dot-product extension (SDOT; ARMv8.2-A and later: Cortex-A55/A76
// and newer, Apple M1 and newer, Graviton 2 and newer).
#pragma once

#include <cstdint>

#include "kernels/matmul.h"

namespace bitnet::kernels::neon {
// I2_S / TQ2_0 with w.packed set (kernels/packed.h); rows [o_begin, o_end) of every activation
// row, bit-exact with matmul_ternary_ref on the file layout.
void packed_ternary(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
                    int64_t o_end);
}  // namespace bitnet::kernels::neon

namespace bitnet::kernels::neon_dotprod {
void packed_ternary(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
                    int64_t o_end);
}  // namespace bitnet::kernels::neon_dotprod
