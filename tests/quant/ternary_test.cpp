#include "quant/ternary.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace bitnet::quant {
namespace {

TEST(quant_ternary, AbsmeanIsMeanOfMagnitudes) {
  const std::vector<float> w = {1.0f, -2.0f, 3.0f, -6.0f};  // (1 + 2 + 3 + 6) / 4 = 3
  EXPECT_EQ(absmean(w.data(), w.size()), 3.0f);
}

TEST(quant_ternary, AbsmeanIsClampedAwayFromZero) {
  const std::vector<float> zeros(64, 0.0f);
  EXPECT_EQ(absmean(zeros.data(), zeros.size()), kAbsmeanMin);
  EXPECT_EQ(absmean(nullptr, 0), kAbsmeanMin);
}

TEST(quant_ternary, TernarizeRoundsHalfToEvenAndClamps) {
  // beta = (0.5 + 0.5 + 1.5 + 1.5 + 2 + 0 + 0.25 + 1.75) / 8 = 1, so w / beta = w:
  //   0.5 -> 0 and -0.5 -> 0 (half to even; half away from zero would give +-1),
  //   1.5 -> 2 -> clamp 1, -1.5 -> -2 -> clamp -1, 2 -> clamp 1, 0.25 -> 0, -1.75 -> -1.
  const std::vector<float> w = {0.5f, -0.5f, 1.5f, -1.5f, 2.0f, 0.0f, 0.25f, -1.75f};
  const Result<TernaryTensor> t = ternarize_absmean(w.data(), w.size());
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_EQ(t->scale, 1.0f);
  EXPECT_EQ(t->values, (std::vector<int8_t>{0, 0, 1, -1, 1, 0, 0, -1}));
}

TEST(quant_ternary, TernarizeScalesByBeta) {
  // beta = (0.1 + 0.3 + 0.2 + 0.2) / 4 = 0.2: 0.5, 1.5 -> 2 -> 1, 1, 1 after clamping.
  const std::vector<float> w = {-0.1f, 0.3f, 0.2f, -0.2f};
  const Result<TernaryTensor> t = ternarize_absmean(w.data(), w.size());
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_FLOAT_EQ(t->scale, 0.2f);
  EXPECT_EQ(t->values, (std::vector<int8_t>{0, 1, 1, -1}));
}

TEST(quant_ternary, TernarizeAllZeros) {
  const std::vector<float> w(256, 0.0f);
  const Result<TernaryTensor> t = ternarize_absmean(w.data(), w.size());
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_EQ(t->scale, kAbsmeanMin);
  EXPECT_EQ(t->values, std::vector<int8_t>(256, 0));
}

TEST(quant_ternary, TernarizeRejectsNonFinite) {
  std::vector<float> w(8, 1.0f);
  w[5] = std::numeric_limits<float>::quiet_NaN();
  const Result<TernaryTensor> t = ternarize_absmean(w.data(), w.size());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.message().find("element 5"), std::string::npos) << t.message();
  w[5] = -std::numeric_limits<float>::infinity();
  EXPECT_FALSE(ternarize_absmean(w.data(), w.size()).ok());
}

TEST(quant_ternary, ValidateTernary) {
  std::vector<int8_t> v = {-1, 0, 1, 1, 0, -1};
  EXPECT_TRUE(validate_ternary(v.data(), v.size()).ok());
  v[4] = 2;
  const Status s = validate_ternary(v.data(), v.size());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("index 4"), std::string::npos) << s.message();
  v[4] = -2;
  EXPECT_FALSE(validate_ternary(v.data(), v.size()).ok());
}

}  // namespace
}  // namespace bitnet::quant
