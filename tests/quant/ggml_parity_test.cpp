// TQ1_0 / TQ2_0 against the pinned llama.cpp's libggml-base: our quantizer writes the same
// bytes as ggml_quantize_chunk, and our dequantizer returns the same f32 bits as the type's
// to_float, on random and adversarial inputs.
#include <ggml.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "quant/tq1_0.h"
#include "quant/tq2_0.h"

namespace bitnet::quant {
namespace {

struct Format {
  ggml_type type;
  size_t block_bytes;
  Status (*quantize)(const float*, size_t, uint8_t*);
  Status (*dequantize)(const uint8_t*, size_t, float*);
  Status (*pack)(const int8_t*, size_t, const float*, uint8_t*);
};
const Format kFormats[] = {
    {GGML_TYPE_TQ1_0, kTq1BlockBytes, quantize_tq1_0, dequantize_tq1_0, pack_tq1_0},
    {GGML_TYPE_TQ2_0, kTq2BlockBytes, quantize_tq2_0, dequantize_tq2_0, pack_tq2_0},
};

struct Input {
  std::string name;
  std::vector<float> x;
  size_t row_length;  // ggml quantizes row by row; a row is a whole number of blocks
};

std::vector<float> gaussian(size_t n, uint32_t seed, float sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> x(n);
  for (auto& v : x) v = dist(rng);
  return x;
}

// Values at and beside x = amax / 2, where the rounding rule and the f32 reciprocal decide.
std::vector<float> halfway(float amax) {
  std::vector<float> x(256, 0.0f);
  x[0] = amax;
  const float half = amax / 2;
  for (size_t i = 1; i + 6 <= 256; i += 6) {
    const float s = (i / 6) % 2 ? -1.0f : 1.0f;
    x[i] = s * half;
    x[i + 1] = s * std::nextafter(half, 0.0f);
    x[i + 2] = s * std::nextafter(half, amax);
    x[i + 3] = s * amax;
    x[i + 4] = s * std::nextafter(amax, 0.0f);
    x[i + 5] = -0.0f;
  }
  return x;
}

std::vector<Input> inputs() {
  const float fmax = std::numeric_limits<float>::max();
  const float dmin = std::numeric_limits<float>::denorm_min();
  std::vector<Input> in;
  in.push_back({"gaussian 4 rows", gaussian(4 * 512, 1, 0.02f), 512});
  in.push_back({"gaussian large", gaussian(256 * 64, 2, 1.0f), 256 * 16});
  in.push_back({"zeros", std::vector<float>(512, 0.0f), 512});
  in.push_back({"negative zeros", std::vector<float>(256, -0.0f), 256});
  in.push_back({"all equal", std::vector<float>(512, 0.3f), 256});
  in.push_back({"all equal negative", std::vector<float>(256, -7.0f), 256});
  in.push_back({"fp16 max", std::vector<float>(256, 65504.0f), 256});
  in.push_back({"fp16 overflow", gaussian(256, 3, 1e5f), 256});  // d rounds to inf
  in.push_back({"huge", gaussian(512, 4, 1e30f), 256});
  in.push_back({"float max", std::vector<float>(256, -fmax), 256});
  in.push_back({"tiny normal", gaussian(256, 5, 1e-30f), 256});  // d rounds to 0
  in.push_back({"subnormal", gaussian(256, 6, 1e-40f), 256});    // 1/amax overflows
  in.push_back({"denorm min", std::vector<float>(256, dmin), 256});
  in.push_back({"fp16 subnormal range", gaussian(256, 7, 1e-6f), 256});
  for (float amax : {2.0f, 3.0f, 5.0f, 7.0f, 0.1f, 1e-3f, 0.7f, 11.0f}) {
    in.push_back({"halfway " + std::to_string(amax), halfway(amax), 256});
  }
  // Rows of very different magnitudes, and one all-zero block in the middle.
  std::vector<float> mixed = gaussian(6 * 256, 8, 1.0f);
  for (size_t i = 0; i < mixed.size(); ++i) {
    static const float kScale[6] = {1e-4f, 1.0f, 0.0f, 3e3f, 1e-20f, 6e4f};
    mixed[i] *= kScale[i / 256];
  }
  in.push_back({"mixed rows", mixed, 512});
  // Ternary values times a per-block positive scale: what a converter feeds in.
  std::vector<float> ternary(8 * 256);
  std::mt19937 rng(9);
  for (size_t i = 0; i < ternary.size(); ++i) {
    ternary[i] = static_cast<float>(static_cast<int>(rng() % 3) - 1) * (0.013f * (i / 256 + 1));
  }
  in.push_back({"ternary times beta", ternary, 1024});
  return in;
}

std::vector<uint8_t> ggml_quantize(const Format& f, const Input& in) {
  const size_t n = in.x.size();
  std::vector<uint8_t> out(n / kTqBlockElems * f.block_bytes);
  const auto rows = static_cast<int64_t>(n / in.row_length);
  const size_t written = ggml_quantize_chunk(f.type, in.x.data(), out.data(), 0, rows,
                                             static_cast<int64_t>(in.row_length), nullptr);
  EXPECT_EQ(written, out.size());
  return out;
}

std::vector<float> ggml_dequantize(const Format& f, const std::vector<uint8_t>& bytes, size_t n) {
  std::vector<float> out(n);
  ggml_get_type_traits(f.type)->to_float(bytes.data(), out.data(), static_cast<int64_t>(n));
  return out;
}

// Index of the first difference, or -1.
template <class T>
long first_difference(const std::vector<T>& a, const std::vector<T>& b) {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) return static_cast<long>(i);
  }
  return a.size() == b.size() ? -1 : static_cast<long>(std::min(a.size(), b.size()));
}

TEST(quant_ggml_parity, BlockSizesMatch) {
  for (const Format& f : kFormats) {
    EXPECT_EQ(ggml_blck_size(f.type), static_cast<int64_t>(kTqBlockElems));
    EXPECT_EQ(ggml_type_size(f.type), f.block_bytes);
    EXPECT_EQ(ggml_row_size(f.type, 1024), 4 * f.block_bytes);
  }
}

TEST(quant_ggml_parity, QuantizeWritesGgmlBytes) {
  for (const Format& f : kFormats) {
    for (const Input& in : inputs()) {
      SCOPED_TRACE(std::string(ggml_type_name(f.type)) + ", " + in.name);
      const std::vector<uint8_t> expected = ggml_quantize(f, in);
      std::vector<uint8_t> ours(expected.size());
      ASSERT_TRUE(f.quantize(in.x.data(), in.x.size(), ours.data()).ok());
      EXPECT_EQ(first_difference(ours, expected), -1);
    }
  }
}

TEST(quant_ggml_parity, DequantizeMatchesToFloatBits) {
  for (const Format& f : kFormats) {
    for (const Input& in : inputs()) {
      SCOPED_TRACE(std::string(ggml_type_name(f.type)) + ", " + in.name);
      const std::vector<uint8_t> bytes = ggml_quantize(f, in);
      std::vector<float> ours(in.x.size());
      ASSERT_TRUE(f.dequantize(bytes.data(), in.x.size(), ours.data()).ok());
      EXPECT_EQ(first_difference(ours, ggml_dequantize(f, bytes, in.x.size())), -1);
    }
  }
}

TEST(quant_ggml_parity, DequantizeArbitraryBytes) {
  // Random bytes: TQ2_0 code 3, non-canonical TQ1_0 bytes, and every kind of fp16 scale
  // (subnormal, inf, NaN).
  const size_t n = 256 * 512;
  std::mt19937 rng(10);
  for (const Format& f : kFormats) {
    SCOPED_TRACE(ggml_type_name(f.type));
    std::vector<uint8_t> bytes(n / kTqBlockElems * f.block_bytes);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    std::vector<float> ours(n);
    ASSERT_TRUE(f.dequantize(bytes.data(), n, ours.data()).ok());
    EXPECT_EQ(first_difference(ours, ggml_dequantize(f, bytes, n)), -1);
  }
}

TEST(quant_ggml_parity, PackEqualsQuantizingTheSameWeights) {
  // A synthetic model stores ternary values with power-of-two block scales; ggml quantizing
  // the f32 weights value * scale must give the very same bytes (each block has a non-zero).
  const size_t n = 256 * 8;
  std::mt19937 rng(11);
  std::vector<int8_t> t(n);
  for (auto& v : t) v = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
  const std::vector<float> scales = {1.0f, 0.5f, 0x1p-7f, 0x1p-14f, 0x1p-20f, 8.0f, 0.75f, 1024.0f};
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) {
    if (i % 256 == 0) t[i] = 1;
    x[i] = static_cast<float>(t[i]) * scales[i / 256];
  }
  for (const Format& f : kFormats) {
    SCOPED_TRACE(ggml_type_name(f.type));
    std::vector<uint8_t> ours(n / kTqBlockElems * f.block_bytes);
    ASSERT_TRUE(f.pack(t.data(), n, scales.data(), ours.data()).ok());
    EXPECT_EQ(first_difference(ours, ggml_quantize(f, {"", x, 512})), -1);
  }
}

}  // namespace
}  // namespace bitnet::quant
