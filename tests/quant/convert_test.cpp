#include "quant/convert.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "quant/i2s.h"
#include "quant/tq1_0.h"
#include "quant/tq2_0.h"

namespace bitnet::quant {
namespace {

std::vector<int8_t> random_trits(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> trit(-1, 1);
  std::vector<int8_t> v(n);
  for (auto& x : v) x = static_cast<int8_t>(trit(rng));
  return v;
}

std::vector<uint8_t> make_i2s(const std::vector<int8_t>& v, float scale) {
  std::vector<uint8_t> bytes(i2s_nbytes(v.size()));
  EXPECT_TRUE(pack_i2s(v.data(), v.size(), scale, bytes.data()).ok());
  return bytes;
}

std::vector<uint8_t> make_tq2(const std::vector<int8_t>& v, const std::vector<float>& scales) {
  std::vector<uint8_t> bytes(tq2_0_nbytes(v.size()));
  EXPECT_TRUE(pack_tq2_0(v.data(), v.size(), scales.data(), bytes.data()).ok());
  return bytes;
}

// Dequantized weights compare bit for bit.
void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
}

std::vector<float> deq_i2s(const std::vector<uint8_t>& bytes, size_t n) {
  std::vector<float> w(n);
  EXPECT_TRUE(dequantize_i2s(bytes.data(), n, w.data()).ok());
  return w;
}
std::vector<float> deq_tq2(const std::vector<uint8_t>& bytes, size_t n) {
  std::vector<float> w(n);
  EXPECT_TRUE(dequantize_tq2_0(bytes.data(), n, w.data()).ok());
  return w;
}
std::vector<float> deq_tq1(const std::vector<uint8_t>& bytes, size_t n) {
  std::vector<float> w(n);
  EXPECT_TRUE(dequantize_tq1_0(bytes.data(), n, w.data()).ok());
  return w;
}

TEST(quant_convert, Tq2ToTq1AndBack) {
  const size_t n = 256 * 6;
  const std::vector<int8_t> v = random_trits(n, 1);
  // Per-block scales, including zero, negative, subnormal fp16 and infinity.
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> scales = {1.0f, 0.0f, -0.375f, 0x1p-24f, 65504.0f, inf};
  const std::vector<uint8_t> tq2 = make_tq2(v, scales);
  std::vector<uint8_t> tq1(tq1_0_nbytes(n)), tq2_again(tq2.size());
  ASSERT_TRUE(tq2_0_to_tq1_0(tq2.data(), n, tq1.data()).ok());
  ASSERT_TRUE(tq1_0_to_tq2_0(tq1.data(), n, tq2_again.data()).ok());
  EXPECT_EQ(tq2_again, tq2);
  expect_same_bits(deq_tq1(tq1, n), deq_tq2(tq2, n));

  std::vector<uint8_t> expected_tq1(tq1.size());
  ASSERT_TRUE(pack_tq1_0(v.data(), n, scales.data(), expected_tq1.data()).ok());
  EXPECT_EQ(tq1, expected_tq1);
}

TEST(quant_convert, Tq1ToTq2CanonicalisesTq1) {
  // Arbitrary bytes (many non-canonical, some NaN scales): values and scale bits survive.
  const size_t n = 256 * 64;
  std::vector<uint8_t> tq1(tq1_0_nbytes(n));
  std::mt19937 rng(5);
  for (auto& b : tq1) b = static_cast<uint8_t>(rng());
  std::vector<uint8_t> tq2(tq2_0_nbytes(n)), tq1_again(tq1.size());
  ASSERT_TRUE(tq1_0_to_tq2_0(tq1.data(), n, tq2.data()).ok());
  ASSERT_TRUE(tq2_0_to_tq1_0(tq2.data(), n, tq1_again.data()).ok());
  std::vector<int8_t> a(n), b(n);
  ASSERT_TRUE(unpack_tq1_0(tq1.data(), n, a.data()).ok());
  ASSERT_TRUE(unpack_tq1_0(tq1_again.data(), n, b.data()).ok());
  EXPECT_EQ(a, b);
  for (size_t blk = 0; blk < n / 256; ++blk) {
    EXPECT_EQ(std::memcmp(&tq1[blk * 54 + 52], &tq1_again[blk * 54 + 52], 2), 0) << blk;
  }
  expect_same_bits(deq_tq1(tq1, n), deq_tq2(tq2, n));
}

TEST(quant_convert, I2sToTqAndBack) {
  const size_t n = 256 * 4;
  const std::vector<int8_t> v = random_trits(n, 2);
  const std::vector<uint8_t> i2s = make_i2s(v, 0.03125f);  // 2^-5: exact in fp16

  std::vector<uint8_t> tq2(tq2_0_nbytes(n)), tq1(tq1_0_nbytes(n)), back(i2s.size());
  ASSERT_TRUE(i2s_to_tq2_0(i2s.data(), n, tq2.data()).ok());
  EXPECT_EQ(tq2, make_tq2(v, std::vector<float>(n / 256, 0.03125f)));
  expect_same_bits(deq_tq2(tq2, n), deq_i2s(i2s, n));
  ASSERT_TRUE(tq2_0_to_i2s(tq2.data(), n, back.data()).ok());
  EXPECT_EQ(back, i2s);

  ASSERT_TRUE(i2s_to_tq1_0(i2s.data(), n, tq1.data()).ok());
  expect_same_bits(deq_tq1(tq1, n), deq_i2s(i2s, n));
  std::fill(back.begin(), back.end(), 0xEE);
  ASSERT_TRUE(tq1_0_to_i2s(tq1.data(), n, back.data()).ok());
  EXPECT_EQ(back, i2s);
}

TEST(quant_convert, I2sToTqNeedsFp16Scale) {
  const size_t n = 256;
  const std::vector<uint8_t> i2s = make_i2s(random_trits(n, 3), 0.1f);
  std::vector<uint8_t> out(tq2_0_nbytes(n));
  const Status s = i2s_to_tq2_0(i2s.data(), n, out.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not lossless"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("fp16"), std::string::npos) << s.message();
  EXPECT_FALSE(i2s_to_tq1_0(i2s.data(), n, out.data()).ok());
}

TEST(quant_convert, I2sToTqNeedsWholeBlocks) {
  const size_t n = 384;  // a valid I2_S size, but not whole 256-element blocks
  const std::vector<uint8_t> i2s = make_i2s(random_trits(n, 4), 1.0f);
  std::vector<uint8_t> out(tq2_0_nbytes(512));
  const Status s = i2s_to_tq2_0(i2s.data(), n, out.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("multiple of 256"), std::string::npos) << s.message();
}

TEST(quant_convert, TqToI2sNeedsOneScale) {
  const size_t n = 256 * 3;
  const std::vector<uint8_t> tq2 = make_tq2(random_trits(n, 5), {0.5f, 0.5f, 0.25f});
  std::vector<uint8_t> out(i2s_nbytes(n));
  const Status s = tq2_0_to_i2s(tq2.data(), n, out.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("block 2"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("block 0"), std::string::npos) << s.message();
}

TEST(quant_convert, TqToI2sIgnoresScalesOfZeroBlocks) {
  // What llama.cpp's quantizer writes for a ternary tensor with an all-zero block: d = 0 there.
  const size_t n = 256 * 3;
  std::vector<float> x(n);
  const std::vector<int8_t> v = random_trits(n, 6);
  for (size_t i = 0; i < n; ++i) x[i] = i / 256 == 1 ? 0.0f : 0.75f * v[i];
  std::vector<uint8_t> tq2(tq2_0_nbytes(n)), i2s(i2s_nbytes(n));
  ASSERT_TRUE(quantize_tq2_0(x.data(), n, tq2.data()).ok());
  EXPECT_EQ(tq2_0_block_scale(tq2.data(), 1), 0.0f);
  ASSERT_TRUE(tq2_0_to_i2s(tq2.data(), n, i2s.data()).ok());
  EXPECT_EQ(i2s_scale(i2s.data(), n), 0.75f);
  EXPECT_EQ(deq_i2s(i2s, n), x);

  // A zero block whose scale is infinite dequantizes to NaN, so its scale does count...
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<int8_t> zero_first = random_trits(n, 7);
  std::fill(zero_first.begin(), zero_first.begin() + 256, 0);
  const std::vector<uint8_t> inf_then_half = make_tq2(zero_first, {inf, 0.5f, 0.5f});
  Status s = tq2_0_to_i2s(inf_then_half.data(), n, i2s.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("block 1"), std::string::npos) << s.message();

  // ...and an infinite tensor scale would turn the zeros of a free block into NaN.
  const std::vector<uint8_t> all_zero_inf = make_tq2(std::vector<int8_t>(n, 0), {inf, 0.5f, 0.5f});
  s = tq2_0_to_i2s(all_zero_inf.data(), n, i2s.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("NaN"), std::string::npos) << s.message();
}

TEST(quant_convert, AllZeroTqKeepsFirstScale) {
  const size_t n = 512;
  const std::vector<uint8_t> tq2 = make_tq2(std::vector<int8_t>(n, 0), {2.0f, 4.0f});
  std::vector<uint8_t> i2s(i2s_nbytes(n));
  ASSERT_TRUE(tq2_0_to_i2s(tq2.data(), n, i2s.data()).ok());
  EXPECT_EQ(i2s_scale(i2s.data(), n), 2.0f);
  EXPECT_EQ(deq_i2s(i2s, n), deq_tq2(tq2, n));
}

TEST(quant_convert, Code3IsNotConverted) {
  const size_t n = 256;
  std::vector<uint8_t> i2s = make_i2s(std::vector<int8_t>(n, 0), 1.0f);
  i2s[40] |= 0x03;  // block 1, byte 8, bits 1-0: element 128 + 8 + 96 = 232
  std::vector<uint8_t> tq(tq2_0_nbytes(n));
  Status s = i2s_to_tq2_0(i2s.data(), n, tq.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("element 232"), std::string::npos) << s.message();

  std::vector<uint8_t> tq2 = make_tq2(std::vector<int8_t>(n, 0), {1.0f});
  tq2[5] |= 0xC0;  // half 0, byte 5, bits 7-6: element 5 + 96 = 101
  std::vector<uint8_t> tq1(tq1_0_nbytes(n));
  s = tq2_0_to_tq1_0(tq2.data(), n, tq1.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("element 101"), std::string::npos) << s.message();
  EXPECT_FALSE(tq2_0_to_i2s(tq2.data(), n, i2s.data()).ok());
}

}  // namespace
}  // namespace bitnet::quant
