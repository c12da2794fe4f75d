// AVX-512 kernels over the packed weight layouts of kernels/packed.h. Called by the AVX-512
// variant (avx512_kernels.cpp) for matrices that have a packed copy; bit-exact with the scalar
// reference on the file layout, like every variant.
#pragma once

#include <cstdint>

#include "kernels/matmul.h"

namespace bitnet::kernels::avx512 {

// I2_S / TQ2_0 with w.packed set; rows [o_begin, o_end) of every activation row.
void packed_ternary(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
                    int64_t o_end);
// F16 with w.packed set.
void packed_f16(const WeightMatrix& w, const float* x, int64_t rows, float* y, int64_t o_begin,
                int64_t o_end);

}  // namespace bitnet::kernels::avx512
