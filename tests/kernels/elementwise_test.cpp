// Elementwise kernels (kernels/elementwise.h): every SIMD variant bit-exact with the scalar
// reference, including the exp formula's overflow / underflow branches, infinities, NaNs,
// signed zeros, subnormals, and lengths around the vector width and ggml's groups of 4.
#include "kernels/elementwise.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
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

TEST(Elementwise, ReluSqrMulBitExactWithReference) {
  for (const KernelTable* t : test::simd_tables()) {
    for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 33, 100, 6912, 6913}) {
      const std::vector<float> x = mixed(static_cast<size_t>(n), 3);
      const std::vector<float> g = mixed(static_cast<size_t>(n), 4);
      std::vector<float> want(static_cast<size_t>(n) + 1, -7.0f), got(want);
      relu_sqr_mul_ref(n, want.data(), x.data(), g.data());
      t->relu_sqr_mul(n, got.data(), x.data(), g.data());
      ASSERT_EQ(first_bit_mismatch(got, want), "") << test::name_of(t) << " n=" << n;
    }
  }
}

// The reference is ggml's relu, sqr and mul in turn: NaN and -0 gates give +0 before the product.
TEST(Elementwise, ReluSqrMulReferenceMatchesItsDefinition) {
  const float nan = std::nanf("");
  const std::vector<float> x = {3.0f, -2.0f, -0.0f, nan, 1e20f, 0.5f};
  const std::vector<float> g = {2.0f, 5.0f, -1.0f, 4.0f, 1.0f, nan};
  std::vector<float> y(6);
  relu_sqr_mul_ref(6, y.data(), x.data(), g.data());
  EXPECT_EQ(y[0], 18.0f);
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_TRUE(std::signbit(y[2]));  // +0 * +0 * -1
  EXPECT_EQ(y[3], 0.0f);
  EXPECT_TRUE(std::isinf(y[4]));
  EXPECT_TRUE(std::isnan(y[5]));
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

// mixed(), with f16's own edges after the first value: overflow to infinity, the subnormal
// range, and a tie between two f16 values.
std::vector<float> f16_edges(size_t n, uint32_t seed) {
  std::vector<float> x = mixed(n, seed);
  const float edges[] = {65520.0f, 6e-8f, 1.00048828125f};  // the last: 1 + 2^-11, to even (1)
  for (size_t i = 1; i < n && i <= 3; ++i) x[i] = edges[i - 1];
  return x;
}

TEST(Elementwise, ToF16BitExactWithReference) {
  for (const KernelTable* t : test::simd_tables()) {
    for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 640, 641}) {
      const std::vector<float> x = f16_edges(static_cast<size_t>(n), 3);
      std::vector<uint16_t> want(static_cast<size_t>(n) + 1, 0xABCD), got(want);
      fp32_to_fp16_row_ref(x.data(), n, want.data());
      t->to_f16(x.data(), n, got.data());
      ASSERT_EQ(got, want) << test::name_of(t) << " n=" << n;
    }
  }
}

TEST(Elementwise, RoundToF16BitExactWithReference) {
  for (const KernelTable* t : test::simd_tables()) {
    for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 2560, 2561}) {
      const std::vector<float> x = f16_edges(static_cast<size_t>(n), 8);
      std::vector<float> want(x), got(x);
      round_to_f16_ref(want.data(), n);
      t->round_f16(got.data(), n);
      ASSERT_EQ(first_bit_mismatch(got, want), "") << test::name_of(t) << " n=" << n;
    }
  }
  float tie = 1.00048828125f;
  round_to_f16_ref(&tie, 1);
  EXPECT_EQ(tie, 1.0f);
}

// The reference is ggml's soft_max for one row written out: vector exp, float sums of groups of
// 4 added in double, one reciprocal.
TEST(Elementwise, SoftmaxReferenceMatchesItsDefinition) {
  std::vector<float> s = {1.0f, 2.0f, -1.0f, 0.5f, 3.0f};
  std::vector<float> e(5);
  for (int j = 0; j < 5; ++j) e[j] = ggml_vexpf(s[j] - 3.0f);
  const double sum = static_cast<double>((e[0] + e[1]) + (e[2] + e[3])) +
                     static_cast<double>((e[4] + 0.0f) + (0.0f + 0.0f));
  softmax_probs_ref(s.data(), 5, false);
  for (int j = 0; j < 5; ++j) EXPECT_EQ(s[j], e[j] * static_cast<float>(1.0 / sum)) << j;
}

TEST(Elementwise, SoftmaxBitExactWithReference) {
  const float inf = std::numeric_limits<float>::infinity();
  for (const KernelTable* t : test::simd_tables()) {
    for (int64_t n : {1, 2, 3, 4, 5, 15, 16, 17, 31, 33, 56, 64, 100, 257, 4096}) {
      std::vector<std::vector<float>> rows;
      for (float sigma : {0.1f, 3.0f, 40.0f, 200.0f})  // 40+: exp's underflow branches
        rows.push_back(test::gaussian(static_cast<size_t>(n), static_cast<uint32_t>(n), sigma));
      rows.push_back(std::vector<float>(static_cast<size_t>(n), 0.25f));
      std::vector<float> special = test::gaussian(static_cast<size_t>(n), 3, 5.0f);
      special[0] = -inf;
      if (n > 2) special[2] = std::nanf("");
      if (n > 3) special[3] = -0.0f;
      rows.push_back(special);
      for (size_t k = 0; k < rows.size(); ++k) {
        for (bool round : {false, true}) {
          std::vector<float> want(rows[k]), got(rows[k]);
          want.push_back(-7.0f);
          got.push_back(-7.0f);
          softmax_probs_ref(want.data(), n, round);
          t->softmax(got.data(), n, round);
          ASSERT_EQ(first_bit_mismatch(got, want), "")
              << test::name_of(t) << " n=" << n << " row " << k << " round " << round;
        }
      }
    }
  }
}

// exp's branch points as softmax meets them (an argument x - max <= 0 whose n = round(x / ln2) is
// near -126, where 2^n starts being taken in two factors, and near -192, past which the result is
// 0), finely swept: the outputs near -126 are subnormal probabilities, where the two forms round
// differently (SwiGLU cannot show it: its exp(-x) near 2^126 scales exactly either way). Near
// -192 both forms give 0, so that bound is checked for its neighbourhood only.
TEST(Elementwise, SoftmaxBranchBoundaries) {
  for (float center : {-126.0f, -192.0f}) {
    std::vector<float> row = {0.0f};
    const float x0 = center * 0.6931472f;
    for (float d = -1.5f; d <= 1.5f; d += 1.0f / 128.0f) row.push_back(x0 + d);
    const auto n = static_cast<int64_t>(row.size());
    for (const KernelTable* t : test::simd_tables()) {
      std::vector<float> want(row), got(row);
      softmax_probs_ref(want.data(), n, false);
      t->softmax(got.data(), n, false);
      ASSERT_EQ(first_bit_mismatch(got, want), "") << test::name_of(t) << " near n=" << center;
    }
  }
}

// The reference is ggml's RMSNorm written out: squares in float, summed in double in order.
TEST(Elementwise, RmsNormReferenceMatchesItsDefinition) {
  const std::vector<float> x = {1.0f, -2.0f, 3.0f, 0.5f}, w = {1.0f, 2.0f, -1.0f, 4.0f};
  std::vector<float> y(4);
  rms_norm_ref(x.data(), w.data(), 4, 1e-6f, y.data());
  const float mean = static_cast<float>((1.0 + 4.0 + 9.0 + 0.25) / 4.0);
  const float scale = 1.0f / std::sqrt(mean + 1e-6f);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(y[i], (x[i] * scale) * w[i]);
  EXPECT_EQ(mean_square_ref(x.data(), 4), mean);
}

// A row built so that its in-order sum lands exactly on a float rounding tie of the mean, and
// the tiny squares after it are each below half an ulp of the running sum (so in order they all
// vanish), while summed apart first they add up to enough to round the mean the other way.
// Returns the row; `naive` receives the mean an any-order sum without the bound check gives.
std::vector<float> tie_row(int64_t n, float* naive) {
  // n = 256: 16^2 + (2^-8)^2 = 256 (1 + 2^-24): the mean 1 + 2^-24 is halfway between 1 and
  // the next float (ties to even: 1). Each later square is 2^-46 < half an ulp of 256 (2^-45).
  std::vector<float> x(static_cast<size_t>(n), 0x1p-23f);
  x[0] = 16.0f;
  x[1] = 0x1p-8f;
  double lanes[16] = {};  // the 16 lanes one vector sum would keep
  for (int64_t i = 0; i < n; ++i) lanes[i % 16] += static_cast<double>(x[i] * x[i]);
  double sum = 0.0;
  for (double l : lanes) sum += l;
  *naive = static_cast<float>(sum / static_cast<double>(n));
  return x;
}

TEST(Elementwise, RmsNormMeanNeedsTheBoundCheck) {
  float naive = 0.0f;
  const std::vector<float> x = tie_row(256, &naive);
  const float want = mean_square_ref(x.data(), 256);
  EXPECT_EQ(want, 1.0f);
  EXPECT_NE(naive, want) << "the row no longer separates in-order from any-order sums";
  // Given the any-order sum, the bound straddles the tie and the in-order sum decides.
  double lanes[16] = {};
  for (int64_t i = 0; i < 256; ++i) lanes[i % 16] += static_cast<double>(x[i] * x[i]);
  double sum = 0.0;
  for (double l : lanes) sum += l;
  EXPECT_EQ(mean_square_from_sum(sum, x.data(), 256), want);
  // Any sum within the bound gives the reference's float; far outside it, the float it rounds
  // to (a wrong sum is not silently corrected when the bound does not straddle a boundary).
  const std::vector<float> g = test::gaussian(2560, 9, 1.0f);
  double in_order = 0.0;
  for (float v : g) in_order += static_cast<double>(v * v);
  const float ref = mean_square_ref(g.data(), 2560);
  EXPECT_EQ(mean_square_from_sum(in_order * (1 + 1e-13), g.data(), 2560), ref);
  EXPECT_NE(mean_square_from_sum(in_order * 2, g.data(), 2560), ref);
}

TEST(Elementwise, RmsNormBitExactWithReference) {
  for (const KernelTable* t : test::simd_tables()) {
    for (int64_t n : {1, 2, 7, 15, 16, 17, 31, 32, 33, 64, 100, 256, 2560, 6912, 6913}) {
      const std::vector<float> w = test::gaussian(static_cast<size_t>(n), 5, 1.0f);
      std::vector<std::vector<float>> rows;
      for (float sigma : {1.0f, 1e-3f, 50.0f, 1e-20f, 1e19f, 1e-41f}) {
        rows.push_back(test::gaussian(static_cast<size_t>(n), static_cast<uint32_t>(n), sigma));
      }
      rows.push_back(mixed(static_cast<size_t>(n), 4));  // NaN, infinities, zeros, subnormals
      rows.push_back(std::vector<float>(static_cast<size_t>(n), 0.0f));
      float naive = 0.0f;
      if (n >= 2) rows.push_back(tie_row(n, &naive));
      for (size_t k = 0; k < rows.size(); ++k) {
        std::vector<float> want(static_cast<size_t>(n) + 1, -7.0f), got(want);
        rms_norm_ref(rows[k].data(), w.data(), n, 1e-5f, want.data());
        t->rms_norm(rows[k].data(), w.data(), n, 1e-5f, got.data());
        ASSERT_EQ(first_bit_mismatch(got, want), "")
            << test::name_of(t) << " n=" << n << " row " << k;
      }
    }
  }
}

// Many random rows: the mean must match the in-order one every time (the bound falls back
// about once in 10^5 rows, so nearly all of these take the any-order path).
TEST(Elementwise, RmsNormRandomRowsBitExact) {
  std::mt19937 rng(11);
  for (const KernelTable* t : test::simd_tables()) {
    for (int trial = 0; trial < 3000; ++trial) {
      const int64_t n = 1 + static_cast<int64_t>(rng() % 3000);
      const float sigma = std::ldexp(1.0f, static_cast<int>(rng() % 60) - 30);
      const std::vector<float> x = test::gaussian(static_cast<size_t>(n), rng(), sigma);
      const std::vector<float> w(static_cast<size_t>(n), 1.0f);
      std::vector<float> want(static_cast<size_t>(n)), got(want);
      rms_norm_ref(x.data(), w.data(), n, 1e-6f, want.data());
      t->rms_norm(x.data(), w.data(), n, 1e-6f, got.data());
      ASSERT_EQ(first_bit_mismatch(got, want), "") << test::name_of(t) << " trial " << trial;
    }
  }
}

}  // namespace
}  // namespace bitnet::kernels
