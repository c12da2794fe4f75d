// The ARM64 kernel variant for CPUs with the dot-product extension (ARMv8.2-A's SDOT; compiled
// with +dotprod, chosen at run time only where the CPU reports it): the packed ternary kernel
// with SDOT by element (neon_packed_ternary.h), the scalar reference elsewhere.
#include "kernels/arm64/neon_entries.h"
#include "kernels/arm64/neon_table.h"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "neon_dotprod_kernels.cpp must be compiled with the dot-product extension (+dotprod)"
#endif

namespace bitnet::kernels {

void neon_dotprod::packed_ternary(const WeightMatrix& w, const QuantizedActivations& a, float* y,
                                  int64_t o_begin, int64_t o_end) {
  packed_ternary_impl(w, a, y, o_begin, o_end);
}

namespace {

// dot_peak.h: 16 independent SDOT on registers, 16 int8 products each (4 per int32 lane).
int64_t dot_loop(int64_t iters) {
  const int64_t n = iters;
  asm volatile(
      "movi v30.16b, #1\n"
      "movi v31.16b, #1\n"
      "1:\n"
      ".irp r,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
      "sdot v\\r\\().4s, v30.16b, v31.16b\n"
      ".endr\n"
      "subs %0, %0, #1\n"
      "b.ne 1b\n"
      : "+r"(iters)
      :
      : "cc", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12",
        "v13", "v14", "v15", "v30", "v31");
  return n * 16 * 16;
}

}  // namespace

const KernelTable* neon_dotprod_table() {
  static const KernelTable t = arm64_table(Variant::kNeonDotprod, dot_loop, "SDOT v.4s");
  return &t;
}

}  // namespace bitnet::kernels
