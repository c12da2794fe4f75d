// TQ1_0 / TQ2_0 layouts pinned by hand-worked bytes, and round trips. Parity with the pinned
// libggml itself is in ggml_parity_test.cpp.
#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <vector>

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

TEST(quant_tq2_0, PackKnownAnswer) {
  // A 0 has code 1, so an untouched byte is 01 01 01 01 = 0x55. Byte m of half h holds
  // elements 128h + m + 32k in bits 2k+1..2k (first element in the LOW bits):
  //   e0 = +1, e32 = -1     byte 0  = (e96, e64, e32, e0)    = 01 01 00 10 = 0x52
  //   e129 = +1             byte 33 = (e225, e193, e161, e129) = 01 01 01 10 = 0x56
  //   e255 = -1             byte 63 = (e255, e223, e191, e159) = 00 01 01 01 = 0x15
  //   d = 0.5 = fp16 0x3800, little endian 00 38
  std::vector<int8_t> v(256, 0);
  v[0] = 1;
  v[32] = -1;
  v[129] = 1;
  v[255] = -1;
  const float d = 0.5f;
  std::vector<uint8_t> out(tq2_0_nbytes(256));
  ASSERT_TRUE(pack_tq2_0(v.data(), 256, &d, out.data()).ok());
  std::vector<uint8_t> expected(66, 0x55);
  expected[0] = 0x52;
  expected[33] = 0x56;
  expected[63] = 0x15;
  expected[64] = 0x00;
  expected[65] = 0x38;
  EXPECT_EQ(out, expected);
  EXPECT_EQ(tq2_0_block_scale(out.data(), 0), 0.5f);
}

TEST(quant_tq2_0, QuantizeKnownAnswer) {
  // max |x| = 2 -> d = fp16(2) = 0x4000. x / 2: 1 -> +1, 0.5 -> +1 (llama.cpp rounds half
  // AWAY from zero, unlike the absmean ternariser), -0.5 -> -1, 0.495 -> 0.
  //   byte 0 = e0 = +1 -> 0x56, byte 1 = e1 = +1 -> 0x56, byte 2 = e2 = -1 -> 0x54.
  std::vector<float> x(256, 0.0f);
  x[0] = 2.0f;
  x[1] = 1.0f;
  x[2] = -1.0f;
  x[3] = 0.99f;
  std::vector<uint8_t> out(tq2_0_nbytes(256));
  ASSERT_TRUE(quantize_tq2_0(x.data(), 256, out.data()).ok());
  std::vector<uint8_t> expected(66, 0x55);
  expected[0] = 0x56;
  expected[1] = 0x56;
  expected[2] = 0x54;
  expected[64] = 0x00;
  expected[65] = 0x40;
  EXPECT_EQ(out, expected);
}

TEST(quant_tq1_0, PackKnownAnswer) {
  // A byte stores digits c_k = value + 1 as ceil(256 * (81c0 + 27c1 + 9c2 + 3c3 + c4) / 243).
  //   all-zero 5-trit byte: digits 11111 -> v = 121 -> ceil(127.47) = 128 = 0x80
  //   all-zero qh byte:     digits 1111 then 0 -> v = 120 -> ceil(126.42) = 127 = 0x7F
  //   byte 0  (e0, e32, e64, e96, e128), e0 = +1, e128 = -1: 21110 -> 201 -> 212 = 0xD4
  //   byte 31 (e31 .. e159) all -1:                          00000 -> 0   -> 0   = 0x00
  //   byte 32 (e160, e176, e192, e208, e224) all +1:         22222 -> 242 -> 255 = 0xFF
  //   byte 47 (e175, e191, .., e239), e191 = +1:              12111 -> 148 -> 156 = 0x9C
  //   byte 48 (e240, e244, e248, e252), e240 = -1:            0111 0 -> 39 -> 42  = 0x2A
  //   byte 51 (e243, e247, e251, e255), e255 = +1:            1112 0 -> 123 -> 130 = 0x82
  //   d = 0.5 = fp16 0x3800 -> bytes 52, 53 = 00 38
  std::vector<int8_t> v(256, 0);
  v[0] = 1;
  v[128] = -1;
  for (size_t e = 31; e < 160; e += 32) v[e] = -1;
  for (size_t e = 160; e < 240; e += 16) v[e] = 1;
  v[191] = 1;
  v[240] = -1;
  v[255] = 1;
  const float d = 0.5f;
  std::vector<uint8_t> out(tq1_0_nbytes(256));
  ASSERT_TRUE(pack_tq1_0(v.data(), 256, &d, out.data()).ok());
  std::vector<uint8_t> expected(54, 0x80);
  expected[0] = 0xD4;
  expected[31] = 0x00;
  expected[32] = 0xFF;
  expected[47] = 0x9C;
  expected[48] = 0x2A;
  expected[49] = expected[50] = 0x7F;
  expected[51] = 0x82;
  expected[52] = 0x00;
  expected[53] = 0x38;
  EXPECT_EQ(out, expected);

  std::vector<int8_t> back(256);
  ASSERT_TRUE(unpack_tq1_0(out.data(), 256, back.data()).ok());
  EXPECT_EQ(back, v);
}

TEST(quant_tq1_0, EveryTritCombinationRoundTrips) {
  // Block c puts the digits of c (base 3) in byte 0 of each run: 243 five-trit patterns for
  // the two qs runs and (c mod 81) four-trit patterns for qh.
  const size_t blocks = 243;
  std::vector<int8_t> v = random_trits(blocks * 256, 7);
  static constexpr size_t kPow3[5] = {1, 3, 9, 27, 81};
  for (size_t c = 0; c < blocks; ++c) {
    int8_t* b = v.data() + c * 256;
    for (size_t k = 0; k < 5; ++k) {  // digit k of c, most significant first
      const auto t = static_cast<int8_t>(c / kPow3[4 - k] % 3 - 1);
      b[k * 32] = t;
      b[160 + k * 16] = t;
      if (k < 4) b[240 + k * 4] = static_cast<int8_t>(c / kPow3[3 - k] % 3 - 1);
    }
  }
  const std::vector<float> scales(blocks, 1.0f);
  std::vector<uint8_t> bytes(tq1_0_nbytes(v.size()));
  ASSERT_TRUE(pack_tq1_0(v.data(), v.size(), scales.data(), bytes.data()).ok());
  std::vector<int8_t> back(v.size());
  ASSERT_TRUE(unpack_tq1_0(bytes.data(), v.size(), back.data()).ok());
  EXPECT_EQ(back, v);
}

TEST(quant_tq1_0, AnyByteDecodesToTrits) {
  // Byte `pos` of block `b` is (55b + pos) mod 256: as 55 is odd, every value appears at every
  // position over the 256 blocks, including bytes no quantizer writes.
  std::vector<uint8_t> bytes(tq1_0_nbytes(256 * 256));
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i / 54 + i);
  std::vector<int8_t> v(256 * 256);
  ASSERT_TRUE(unpack_tq1_0(bytes.data(), v.size(), v.data()).ok());
  for (int8_t x : v) ASSERT_TRUE(x >= -1 && x <= 1) << int{x};
}

template <class Pack, class Unpack, class Dequant, class Scale>
void round_trip(Pack pack, Unpack unpack, Dequant dequant, Scale block_scale, size_t nbytes_per) {
  const size_t n = 256 * 5;
  const std::vector<int8_t> v = random_trits(n, 99);
  const std::vector<float> scales = {1.0f, 0.25f, -8.0f, 0.0f, 0x1p-20f};
  std::vector<uint8_t> bytes(n / 256 * nbytes_per);
  ASSERT_TRUE(pack(v.data(), n, scales.data(), bytes.data()).ok());
  std::vector<int8_t> back(n);
  ASSERT_TRUE(unpack(bytes.data(), n, back.data()).ok());
  EXPECT_EQ(back, v);
  std::vector<float> w(n);
  ASSERT_TRUE(dequant(bytes.data(), n, w.data()).ok());
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(w[i], static_cast<float>(v[i]) * scales[i / 256]) << i;
  }
  for (size_t b = 0; b < scales.size(); ++b) EXPECT_EQ(block_scale(bytes.data(), b), scales[b]);
}

TEST(quant_tq2_0, RoundTrip) {
  round_trip(pack_tq2_0, unpack_tq2_0, dequantize_tq2_0, tq2_0_block_scale, kTq2BlockBytes);
}

TEST(quant_tq1_0, RoundTrip) {
  round_trip(pack_tq1_0, unpack_tq1_0, dequantize_tq1_0, tq1_0_block_scale, kTq1BlockBytes);
}

TEST(quant_tq2_0, PackNeedsExactFp16Scales) {
  const std::vector<int8_t> v(512, 1);
  const std::vector<float> scales = {0.5f, 0.1f};  // 0.1 has no exact fp16
  std::vector<uint8_t> out(tq2_0_nbytes(512), 0x77);
  const Status s = pack_tq2_0(v.data(), 512, scales.data(), out.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("block 1"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("fp16"), std::string::npos) << s.message();
  EXPECT_EQ(out[0], 0x77) << "a failed pack must not write";
  // 1e5 overflows fp16; 1e-8 underflows to zero.
  const float too_big = 1e5f, too_small = 1e-8f;
  EXPECT_FALSE(pack_tq1_0(v.data(), 256, &too_big, out.data()).ok());
  EXPECT_FALSE(pack_tq1_0(v.data(), 256, &too_small, out.data()).ok());
}

TEST(quant_tq2_0, RejectsBadArguments) {
  std::vector<int8_t> v(512, 0);
  std::vector<float> x(512, 0.0f);
  const std::vector<float> scales(2, 1.0f);
  std::vector<uint8_t> out(tq2_0_nbytes(512));
  EXPECT_FALSE(pack_tq2_0(v.data(), 384, scales.data(), out.data()).ok());
  EXPECT_FALSE(quantize_tq2_0(x.data(), 128, out.data()).ok());
  EXPECT_FALSE(unpack_tq1_0(out.data(), 257, v.data()).ok());
  EXPECT_FALSE(dequantize_tq1_0(out.data(), 100, x.data()).ok());
  v[300] = 3;
  EXPECT_FALSE(pack_tq2_0(v.data(), 512, scales.data(), out.data()).ok());
}

TEST(quant_tq2_0, QuantizeRejectsNonFinite) {
  std::vector<float> x(512, 0.5f);
  x[260] = std::numeric_limits<float>::quiet_NaN();
  std::vector<uint8_t> out(tq2_0_nbytes(512));
  const Status s = quantize_tq2_0(x.data(), 512, out.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("element 260"), std::string::npos) << s.message();
  x[260] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(quantize_tq1_0(x.data(), 512, out.data()).ok());
}

TEST(quant_tq2_0, Code3DecodesAsPlusTwoAndFailsValidation) {
  std::vector<int8_t> v(256, 0);
  const float d = 0.25f;
  std::vector<uint8_t> bytes(tq2_0_nbytes(256));
  ASSERT_TRUE(pack_tq2_0(v.data(), 256, &d, bytes.data()).ok());
  EXPECT_TRUE(validate_tq2_0(bytes.data(), 256).ok());
  bytes[40] |= 0x30;  // half 1, byte 8, bits 5-4: element 128 + 8 + 64 = 200 gets code 3
  std::vector<int8_t> back(256);
  ASSERT_TRUE(unpack_tq2_0(bytes.data(), 256, back.data()).ok());
  EXPECT_EQ(back[200], 2);
  std::vector<float> w(256);
  ASSERT_TRUE(dequantize_tq2_0(bytes.data(), 256, w.data()).ok());
  EXPECT_EQ(w[200], 0.5f);
  const Status s = validate_tq2_0(bytes.data(), 256);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("element 200"), std::string::npos) << s.message();
}

TEST(quant_tq1_0, ValidateRejectsNonFiniteScale) {
  std::vector<int8_t> v(512, 1);
  const std::vector<float> scales = {1.0f, std::numeric_limits<float>::infinity()};
  std::vector<uint8_t> bytes(tq1_0_nbytes(512));
  // Infinity is exactly representable in fp16, so packing accepts it; validation does not.
  ASSERT_TRUE(pack_tq1_0(v.data(), 512, scales.data(), bytes.data()).ok());
  const Status s = validate_tq1_0(bytes.data(), 512);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("block 1"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace bitnet::quant
