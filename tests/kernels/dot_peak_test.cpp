// The int8 dot-product peak (kernels/dot_peak.h): each SIMD variant's loop counts the
// multiply-adds it runs, the peak adds up every thread, and the scalar variant reports none.
// The measured rate itself is a property of the machine (and of what else runs on it) and is
// not asserted.
#include "kernels/dot_peak.h"

#include <gtest/gtest.h>

#include "kernel_test_util.h"

namespace bitnet::kernels {
namespace {

TEST(DotPeak, LoopsCountTheirMultiplyAdds) {
  for (const KernelTable* t : test::simd_tables()) {
    ASSERT_NE(t->dot_loop, nullptr) << test::name_of(t);
    // Products per instruction: VPDPBUSD zmm 64, VPDPBUSD ymm and VPMADDUBSW ymm 32, SDOT v.4s
    // 16, SMLAL v.8h 8.
    const int64_t per_instruction = t->variant == Variant::kAvx512        ? 64
                                    : t->variant == Variant::kAvx2Vnni    ? 32
                                    : t->variant == Variant::kAvx2        ? 32
                                    : t->variant == Variant::kNeonDotprod ? 16
                                                                          : 8;
    EXPECT_EQ(t->dot_loop(3), 3 * 16 * per_instruction) << test::name_of(t);
  }
  EXPECT_EQ(scalar_table().dot_loop, nullptr);
}

TEST(DotPeak, MeasuresEveryThreadOfThePool) {
  ThreadPool pool(2);
  EXPECT_EQ(measure_int8_dot_peak(*Kernels::of(Variant::kScalar), &pool).macs_per_s, 0);
  for (const KernelTable* t : test::simd_tables()) {
    const Kernels k = *Kernels::of(t->variant);
    const DotPeak two = measure_int8_dot_peak(k, &pool, 0.03);
    EXPECT_GT(two.macs_per_s, 0) << test::name_of(t);
    EXPECT_EQ(two.threads, 2) << test::name_of(t);
    EXPECT_EQ(two.instruction, t->dot_instruction);
  }
}

}  // namespace
}  // namespace bitnet::kernels
