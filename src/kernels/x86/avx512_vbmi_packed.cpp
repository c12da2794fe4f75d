// The packed ternary kernels (avx512_packed_ternary.h) for CPUs with AVX-512 VBMI: the same
// operations, the codes' fields taken apart with VPERMB (PermutedFields). This unit alone is
// compiled with -mavx512vbmi; avx512_kernels.cpp calls it only where the CPU has VBMI.
#include "kernels/x86/avx512_packed_ternary.h"

namespace bitnet::kernels::avx512 {

void packed_ternary_vbmi(const WeightMatrix& w, const QuantizedActivations& a, float* y,
                         int64_t o_begin, int64_t o_end) {
  packed_ternary_with<PermutedFields>(w, a, y, o_begin, o_end);
}

}  // namespace bitnet::kernels::avx512
