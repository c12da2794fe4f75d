// Elementwise kernels (kernels/elementwise.h): every SIMD variant bit-exact with the scalar
// reference, including the exp formula's overflow / underflow branches, infinities, NaNs,
// signed zeros, subnormals, and lengths around the vector width and ggml's groups of 4.
#include "kernels/elementwise.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/fp16.h"
#include "kernel_test_util.h"
#include "kernels/ggml_math.h"

namespace bitnet::kernels {
namespace {

using test::first_bit_mismatch;

// Gaussian values of several scales, with special values sprinkled in.
std::vector<float> mixed(size_t n, uint32_t seed) {
  std::vector<float> x = test::gaussian(n, seed, 4.0f);
  const float inf = std::numeric_limits<float>::infinity();
  const float specials[] = {0.0f,    -0.0f,   87.0f,   -87.0f, 88.8f,         -88.8f,  100.0f,
                            -100.0f, 130.0f,  -130.0f, 150.0f, -150.0f,       1000.0f, -1000.0f,
                            1e-40f,  -1e-40f, inf,     -inf,   std::nanf(""), 3e38f,   -3e38f};
  for (size_t i = 0; i < n; i += 3) {
    x[i] = specials[(i / 3) % (sizeof(specials) / sizeof(specials[0]))];
  }
  return x;
}

TEST(Elementwise, SwigluBitExactWithReference) {
  for (const KernelTable* t : test::simd_tables()) {
    for (int64_t n : {1, 3, 4, 5, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 2560, 6912, 6913}) {
      for (uint32_t seed : {1u, 2u}) {
        const std::vector<float> x = mixed(static_cast<size_t>(n), seed);
        const std::vector<float> g = test::gaussian(static_cast<size_t>(n), seed + 7, 1.0f);
        std::vector<float> want(static_cast<size_t>(n) + 1, -7.0f), got(want);
        swiglu_ref(n, want.data(), x.data(), g.data());
        t->swiglu(n, got.data(), x.data(), g.data());
        ASSERT_EQ(first_bit_mismatch(got, want), "") << test::name_of(t) << " n=" << n;
      }
    }
  }
}

// Sweeps the exp formula's input range finely, where each branch switches.
TEST(Elementwise, SwigluBranchBoundaries) {
  std::vector<float> x;
  for (float v = -200.0f; v <= 200.0f; v += 0.0625f) x.push_back(v);
  const std::vector<float> g(x.size(), 1.5f);
  std::vector<float> want(x.size()), got(x.size());
  swiglu_ref(static_cast<int64_t>(x.size()), want.data(), x.data(), g.data());
  for (const KernelTable* t : test::simd_tables()) {
    t->swiglu(static_cast<int64_t>(x.size()), got.data(), x.data(), g.data());
    ASSERT_EQ(first_bit_mismatch(got, want), "") << test::name_of(t);
  }
}

// The reference itself: the formula of ggml's vector exp inside groups of 4, libm in the tail.
TEST(Elementwise, SwigluReferenceMatchesItsDefinition) {
  const std::vector<float> x = {0.5f, -1.0f, 2.0f, 3.0f, 4.0f, -5.0f};
  const std::vector<float> g = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f};
  std::vector<float> y(6);
  swiglu_ref(6, y.data(), x.data(), g.data());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(y[i], x[i] / (1.0f + ggml_vexpf(-x[i])) * g[i]);
  for (int i = 4; i < 6; ++i) EXPECT_EQ(y[i], x[i] / (1.0f + std::exp(-x[i])) * g[i]);
  EXPECT_NEAR(y[0], 0.5f / (1.0f + std::exp(-0.5f)), 1e-6f);
}

TEST(Elementwise, ToF16BitExactWithReference) {
  for (const KernelTable* t : test::simd_tables()) {
    for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 640, 641}) {
      std::vector<float> x = mixed(static_cast<size_t>(n), 3);
      if (n > 2) {
        x[1] = 65520.0f;  // rounds to infinity
        x[2] = 6e-8f;     // f16 subnormal range
      }
      std::vector<uint16_t> want(static_cast<size_t>(n) + 1, 0xABCD), got(want);
      fp32_to_fp16_row_ref(x.data(), n, want.data());
      t->to_f16(x.data(), n, got.data());
      ASSERT_EQ(got, want) << test::name_of(t) << " n=" << n;
    }
  }
}

}  // namespace
}  // namespace bitnet::kernels
