// I2_S layout pinned by hand-worked bytes, plus the decodings other engines got wrong.
#include "quant/i2s.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace bitnet::quant {
namespace {

// Block 0 (elements 0..127): all 0 except the ones listed. A 0 has code 1, so an untouched
// byte is 01 01 01 01 = 0x55. Byte i holds elements i, i+32, i+64, i+96 in bits 7-6 .. 1-0:
//   e0 = +1                       byte 0  = 10 01 01 01 = 0x95
//   e33 = -1                      byte 1  = 01 00 01 01 = 0x45
//   e66 = +1                      byte 2  = 01 01 10 01 = 0x59
//   e99 = -1                      byte 3  = 01 01 01 00 = 0x54
//   e4 = -1, e36 = +1, e68 = -1, e100 = +1    byte 4  = 00 10 00 10 = 0x22
//   e5 = e37 = e69 = e101 = -1                byte 5  = 00 00 00 00 = 0x00
//   e31 = e63 = e95 = e127 = +1               byte 31 = 10 10 10 10 = 0xAA
// Block 1 (elements 128..255): element 128 + i has value (i % 3) - 1, code i % 3. Byte j holds
// i = j, j+32, j+64, j+96, whose residues mod 3 are j, j+2, j+1, j:
//   j % 3 == 0: codes 0 2 1 0 = 00 10 01 00 = 0x24
//   j % 3 == 1: codes 1 0 2 1 = 01 00 10 01 = 0x49
//   j % 3 == 2: codes 2 1 0 2 = 10 01 00 10 = 0x92
std::vector<int8_t> known_values() {
  std::vector<int8_t> v(256, 0);
  v[0] = 1;
  v[33] = -1;
  v[66] = 1;
  v[99] = -1;
  v[4] = -1, v[36] = 1, v[68] = -1, v[100] = 1;
  v[5] = v[37] = v[69] = v[101] = -1;
  v[31] = v[63] = v[95] = v[127] = 1;
  for (int i = 0; i < 128; ++i) v[128 + i] = static_cast<int8_t>(i % 3 - 1);
  return v;
}

constexpr float kKnownScale = 1.5f;  // 0x3FC00000, little endian 00 00 C0 3F

// n/4 = 64 code bytes, then the scale at byte 64, then 28 zero bytes: 96 = 256/4 + 32.
constexpr std::array<uint8_t, 96> kKnownBytes = {
    // block 0
    0x95, 0x45, 0x59, 0x54, 0x22, 0x00, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55,
    0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0xAA,
    // block 1
    0x24, 0x49, 0x92, 0x24, 0x49, 0x92, 0x24, 0x49, 0x92, 0x24, 0x49, 0x92, 0x24, 0x49, 0x92, 0x24,
    0x49, 0x92, 0x24, 0x49, 0x92, 0x24, 0x49, 0x92, 0x24, 0x49, 0x92, 0x24, 0x49, 0x92, 0x24, 0x49,
    // scale 1.5f, then 28 bytes of padding
    0x00, 0x00, 0xC0, 0x3F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};

TEST(quant_i2s, Nbytes) {
  EXPECT_EQ(i2s_nbytes(128), 64u);
  EXPECT_EQ(i2s_nbytes(256), 96u);
  EXPECT_EQ(i2s_nbytes(2560 * 2560), 2560u * 640 + 32);
}

TEST(quant_i2s, PackKnownAnswer) {
  const std::vector<int8_t> v = known_values();
  std::vector<uint8_t> out(i2s_nbytes(v.size()), 0xEE);  // 0xEE: padding must be overwritten
  ASSERT_TRUE(pack_i2s(v.data(), v.size(), kKnownScale, out.data()).ok());
  EXPECT_EQ(out, std::vector<uint8_t>(kKnownBytes.begin(), kKnownBytes.end()));
}

TEST(quant_i2s, DecodeKnownAnswer) {
  const std::vector<int8_t> expected = known_values();
  std::vector<int8_t> v(256);
  ASSERT_TRUE(unpack_i2s(kKnownBytes.data(), 256, v.data()).ok());
  EXPECT_EQ(v, expected);
  EXPECT_EQ(i2s_scale(kKnownBytes.data(), 256), 1.5f);
  std::vector<float> w(256);
  ASSERT_TRUE(dequantize_i2s(kKnownBytes.data(), 256, w.data()).ok());
  for (size_t i = 0; i < w.size(); ++i) EXPECT_EQ(w[i], expected[i] * 1.5f) << i;
  EXPECT_TRUE(validate_i2s(kKnownBytes.data(), 256).ok());
}

TEST(quant_i2s, SingleBlockKnownAnswer) {
  // One block: e0 = +1, e32 = -1, rest 0; scale 0.5f = 0x3F000000.
  // byte 0 = codes (2, 0, 1, 1) = 10 00 01 01 = 0x85; the other 31 bytes are 0x55.
  std::vector<int8_t> v(128, 0);
  v[0] = 1;
  v[32] = -1;
  std::vector<uint8_t> out(i2s_nbytes(128));
  ASSERT_TRUE(pack_i2s(v.data(), 128, 0.5f, out.data()).ok());
  std::vector<uint8_t> expected(64, 0x00);
  expected[0] = 0x85;
  for (int i = 1; i < 32; ++i) expected[i] = 0x55;
  expected[32 + 3] = 0x3F;  // 0.5f little endian: 00 00 00 3F, then 28 zero bytes
  EXPECT_EQ(out, expected);
}

// The decodings other engines shipped. Each must disagree with the true weights of the
// known-answer tensor, or the known-answer test would not catch it.
std::vector<float> decode_sequential_low_bits_first(const uint8_t* b, size_t n, float scale) {
  std::vector<float> w(n);
  for (size_t i = 0; i < n; ++i) {
    const int code = (b[i / 4] >> (2 * (i % 4))) & 3;  // element i in byte i/4, low bits first
    w[i] = static_cast<float>(code - 1) * scale;
  }
  return w;
}

std::vector<float> decode_with_table(const uint8_t* b, size_t n, float scale) {
  static constexpr float kWrongTable[4] = {-2, -1, 1, 2};
  std::vector<float> w(n);
  for (size_t i = 0; i < n; ++i) {
    const size_t block = i / 128, e = i % 128;
    const int code = (b[block * 32 + e % 32] >> (6 - 2 * (e / 32))) & 3;
    w[i] = kWrongTable[code] * scale;
  }
  return w;
}

TEST(quant_i2s, KnownWrongDecodingsDiffer) {
  const size_t n = 256;
  std::vector<float> truth(n);
  ASSERT_TRUE(dequantize_i2s(kKnownBytes.data(), n, truth.data()).ok());

  EXPECT_NE(decode_sequential_low_bits_first(kKnownBytes.data(), n, kKnownScale), truth);
  EXPECT_NE(decode_with_table(kKnownBytes.data(), n, kKnownScale), truth);

  // Ignoring the trailing scale: the bare values are not the weights.
  std::vector<int8_t> values(n);
  ASSERT_TRUE(unpack_i2s(kKnownBytes.data(), n, values.data()).ok());
  EXPECT_NE(std::vector<float>(values.begin(), values.end()), truth);
}

TEST(quant_i2s, RoundTripRandom) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> trit(-1, 1);
  for (size_t n : {size_t{128}, size_t{384}, size_t{2560}}) {
    std::vector<int8_t> v(n);
    for (auto& x : v) x = static_cast<int8_t>(trit(rng));
    const float scale = 0.0123f * static_cast<float>(n);
    std::vector<uint8_t> bytes(i2s_nbytes(n));
    ASSERT_TRUE(pack_i2s(v.data(), n, scale, bytes.data()).ok());
    EXPECT_TRUE(validate_i2s(bytes.data(), n).ok());
    std::vector<int8_t> back(n);
    ASSERT_TRUE(unpack_i2s(bytes.data(), n, back.data()).ok());
    EXPECT_EQ(back, v);
    EXPECT_EQ(i2s_scale(bytes.data(), n), scale);
    for (size_t k = n / 4 + 4; k < bytes.size(); ++k) EXPECT_EQ(bytes[k], 0) << k;
    std::vector<float> w(n);
    ASSERT_TRUE(dequantize_i2s(bytes.data(), n, w.data()).ok());
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(w[i], static_cast<float>(v[i]) * scale);
  }
}

TEST(quant_i2s, PaddingIsIgnoredWhenReading) {
  std::vector<uint8_t> bytes(kKnownBytes.begin(), kKnownBytes.end());
  for (size_t k = 68; k < bytes.size(); ++k) bytes[k] = 0xFF;
  std::vector<int8_t> v(256);
  ASSERT_TRUE(unpack_i2s(bytes.data(), 256, v.data()).ok());
  EXPECT_EQ(v, known_values());
  EXPECT_EQ(i2s_scale(bytes.data(), 256), kKnownScale);
  EXPECT_TRUE(validate_i2s(bytes.data(), 256).ok());
}

TEST(quant_i2s, Code3DecodesAsPlusTwoAndFailsValidation) {
  std::vector<uint8_t> bytes(kKnownBytes.begin(), kKnownBytes.end());
  bytes[32 + 7] |= 0x0C;  // block 1, byte 7, bits 3-2: element 128 + 7 + 64 = 199 gets code 3
  std::vector<int8_t> v(256);
  ASSERT_TRUE(unpack_i2s(bytes.data(), 256, v.data()).ok());
  EXPECT_EQ(v[199], 2);
  std::vector<float> w(256);
  ASSERT_TRUE(dequantize_i2s(bytes.data(), 256, w.data()).ok());
  EXPECT_EQ(w[199], 3.0f);
  const Status s = validate_i2s(bytes.data(), 256);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("element 199"), std::string::npos) << s.message();
}

TEST(quant_i2s, ValidateRejectsNonFiniteScale) {
  std::vector<uint8_t> bytes(kKnownBytes.begin(), kKnownBytes.end());
  const float inf = std::numeric_limits<float>::infinity();
  std::memcpy(&bytes[64], &inf, 4);
  EXPECT_FALSE(validate_i2s(bytes.data(), 256).ok());
}

TEST(quant_i2s, RejectsBadArguments) {
  std::vector<int8_t> v(256, 0);
  std::vector<uint8_t> bytes(i2s_nbytes(256) + 64, 0x77);
  EXPECT_FALSE(pack_i2s(v.data(), 200, 1.0f, bytes.data()).ok());
  EXPECT_FALSE(unpack_i2s(bytes.data(), 100, v.data()).ok());
  EXPECT_FALSE(validate_i2s(bytes.data(), 64).ok());
  std::vector<float> w(256);
  EXPECT_FALSE(dequantize_i2s(bytes.data(), 129, w.data()).ok());

  v[130] = -2;
  const Status s = pack_i2s(v.data(), 256, 1.0f, bytes.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("130"), std::string::npos) << s.message();
  EXPECT_EQ(bytes[0], 0x77) << "a failed pack must not write";
}

TEST(quant_i2s, EmptyTensorIsJustTheTail) {
  std::vector<uint8_t> bytes(i2s_nbytes(0), 0xEE);
  ASSERT_TRUE(pack_i2s(nullptr, 0, 2.0f, bytes.data()).ok());
  EXPECT_EQ(i2s_scale(bytes.data(), 0), 2.0f);
}

}  // namespace
}  // namespace bitnet::quant
