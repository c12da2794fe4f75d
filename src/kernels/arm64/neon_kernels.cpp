// The baseline ARM64 kernel variant (Advanced SIMD, which every ARMv8-A CPU has): the packed
// ternary kernel with SMLAL products (neon_packed_ternary.h), the scalar reference elsewhere.
#include "kernels/arm64/neon_entries.h"
#include "kernels/arm64/neon_table.h"

namespace bitnet::kernels {

void neon::packed_ternary(const WeightMatrix& w, const QuantizedActivations& a, float* y,
                          int64_t o_begin, int64_t o_end) {
  packed_ternary_impl(w, a, y, o_begin, o_end);
}

namespace {

// dot_peak.h: 16 independent SMLAL on registers, 8 int8 products each (into int16 lanes).
int64_t dot_loop(int64_t iters) {
  const int64_t n = iters;
  asm volatile(
      "movi v30.16b, #1\n"
      "movi v31.16b, #1\n"
      "1:\n"
      ".irp r,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
      "smlal v\\r\\().8h, v30.8b, v31.8b\n"
      ".endr\n"
      "subs %0, %0, #1\n"
      "b.ne 1b\n"
      : "+r"(iters)
      :
      : "cc", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12",
        "v13", "v14", "v15", "v30", "v31");
  return n * 16 * 8;
}

}  // namespace

const KernelTable* neon_table() {
  static const KernelTable t = arm64_table(Variant::kNeon, dot_loop, "SMLAL v.8h");
  return &t;
}

}  // namespace bitnet::kernels
