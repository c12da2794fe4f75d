// The optional Q8_0 head (kernels/q8_0_head.h): every SIMD variant this CPU runs (the AVX2 one
// included) is bit-exact with matmul_q8_0_head_ref on layouts filled directly, so every code byte
// 0..255 (weights -128..127) and every activation code -128..127 occurs, for row lengths of one
// block, two blocks and the 2B4T hidden size, output counts that leave the last tile partial,
// 1 to 9 activation rows (and a few more than the AVX2 kernel prepares at once) and ranges of
// output rows not aligned to tiles (as threads see them).
#include "kernels/q8_0_head.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "kernel_test_util.h"

namespace bitnet::kernels {
namespace {

using test::first_bit_mismatch;

enum class Fill { kRandom, kMax, kMin, kMinPlusOne, kAlternate };

const char* fill_name(Fill f) {
  switch (f) {
    case Fill::kRandom:
      return "random";
    case Fill::kMax:
      return "all 127";
    case Fill::kMin:
      return "all -128";
    case Fill::kMinPlusOne:
      return "all -127";
    case Fill::kAlternate:
      return "127/-128 alternating";
  }
  return "?";
}

int8_t code_of(Fill f, size_t i, std::mt19937& rng) {
  switch (f) {
    case Fill::kRandom:
      return static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
    case Fill::kMax:
      return 127;
    case Fill::kMin:
      return -128;
    case Fill::kMinPlusOne:
      return -127;
    case Fill::kAlternate:
      return i % 2 ? int8_t{-128} : int8_t{127};
  }
  return 0;
}

// A head in the documented layout, filled directly: weight codes from `f` (stored + 128, padding
// rows of the last tile too), f16 block scales of varied magnitude (huge ones when `huge`, so
// that products overflow to infinity).
struct Head {
  std::unique_ptr<uint8_t, decltype(&std::free)> buf{nullptr, &std::free};
  WeightMatrix w;
};

Head make_head(int64_t k, int64_t n_out, Fill f, bool huge, uint32_t seed) {
  Head h;
  const size_t n = q8_0_head_size(k, n_out);
  h.buf.reset(static_cast<uint8_t*>(std::aligned_alloc(64, (n + 63) / 64 * 64)));
  h.w = q8_0_head_view(h.buf.get(), k, n_out);
  std::mt19937 rng(seed);
  const int64_t tiles = (n_out + 15) / 16, nb = k / kQ8_0Block;
  uint8_t* codes = h.buf.get();
  for (size_t i = 0; i < static_cast<size_t>(tiles * nb * kQ8_0TileBlockBytes); ++i)
    codes[i] = static_cast<uint8_t>(code_of(f, i, rng) + 128);
  for (int64_t t = 0; t < tiles; ++t) {
    uint16_t* s = const_cast<uint16_t*>(q8_0_scales(h.w, t));
    for (int64_t i = 0; i < nb * 16; ++i) {
      const float mag = huge ? 60000.0f : std::ldexp(1.0f, static_cast<int>(rng() % 20) - 16);
      const float v = mag * (0.5f + static_cast<float>(rng() % 1000) / 1000.0f);
      s[i] = fp32_to_fp16(rng() % 5 == 0 ? -v : v);
    }
  }
  return h;
}

QuantizedActivations make_acts(int64_t rows, int64_t k, Fill f, bool huge, uint32_t seed) {
  std::mt19937 rng(seed);
  QuantizedActivations a;
  a.kind = ActQuant::kQ8_0;
  a.rows = rows;
  a.k = k;
  a.q.resize(static_cast<size_t>(rows * k));
  for (size_t i = 0; i < a.q.size(); ++i) a.q[i] = code_of(f, i, rng);
  a.scales.resize(static_cast<size_t>(rows * (k / kQ8_0Block)));
  std::uniform_real_distribution<float> d(0.0f, 1.0f);
  for (auto& s : a.scales) s = huge ? 3e34f * (1.0f + d(rng)) : d(rng) * 0.02f;
  return a;
}

// Runs the variant and the reference over [o_begin, o_end) into outputs preset to the same
// sentinel (rows outside the range must stay untouched) and compares bits.
std::string mismatch(const KernelTable* t, const WeightMatrix& w, const QuantizedActivations& a,
                     int64_t o_begin, int64_t o_end) {
  const float sentinel = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> want(static_cast<size_t>(a.rows * w.n_out), sentinel), got(want);
  matmul_q8_0_head_ref(w, a, want.data(), o_begin, o_end);
  t->q8_0_head(w, a, got.data(), o_begin, o_end);
  return first_bit_mismatch(got, want);
}

TEST(Q8_0HeadKernels, BitExactWithReferenceOnAllCodes) {
  const auto tables = test::simd_tables();
  if (tables.empty()) GTEST_SKIP() << "no SIMD variant runs on this CPU";
  if (!cpu_supports(Variant::kAvx2)) std::printf("AVX2 not supported here: not tested\n");
  struct Case {
    Fill wf, af;
    bool huge;
  };
  const Case cases[] = {
      {Fill::kRandom, Fill::kRandom, false},  {Fill::kMax, Fill::kMin, false},
      {Fill::kMin, Fill::kMin, false},        {Fill::kMax, Fill::kMax, false},
      {Fill::kMinPlusOne, Fill::kMin, false}, {Fill::kAlternate, Fill::kAlternate, false},
      {Fill::kMin, Fill::kAlternate, false},  {Fill::kRandom, Fill::kRandom, true},
  };
  uint32_t seed = 100;
  for (const KernelTable* t : tables) {
    for (int64_t k : {32, 64, 2560}) {
      for (int64_t n_out : {1, 15, 16, 17, 53, 100}) {
        for (const Case& c : cases) {
          const Head h = make_head(k, n_out, c.wf, c.huge, ++seed);
          // 1 to 9 activation rows (groups of 8, 4, 2 and 1), and more than the AVX2 kernel splits
          // at once (16): 17 ends with a batch of one row, 21 with one of five.
          for (int64_t rows : {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 21}) {
            if (k == 2560 && (c.wf != Fill::kRandom || rows > 9) && rows % 4 != 1)
              continue;  // keep it quick
            const QuantizedActivations a = make_acts(rows, k, c.af, c.huge, ++seed);
            const std::string what =
                test::name_of(t) + " k=" + std::to_string(k) + " n_out=" + std::to_string(n_out) +
                " rows=" + std::to_string(rows) + " weights " + fill_name(c.wf) + ", activations " +
                fill_name(c.af) + (c.huge ? " (huge scales)" : "");
            // The whole range, then ranges a thread's chunk may get (tile-aligned or not, one
            // row, a partial last tile, empty).
            const int64_t ranges[][2] = {{0, n_out},
                                         {n_out / 3, n_out - n_out / 4},
                                         {n_out - 1, n_out},
                                         {n_out / 2, n_out / 2 + 1},
                                         {n_out > 16 ? 16 : 0, n_out},
                                         {n_out > 20 ? 3 : 0, n_out > 40 ? 37 : n_out},
                                         {n_out / 2, n_out / 2}};
            for (const auto& r : ranges) {
              ASSERT_EQ(mismatch(t, h.w, a, r[0], r[1]), "")
                  << what << " range [" << r[0] << ", " << r[1] << ")";
            }
          }
        }
      }
    }
  }
}

// Weights and activations quantized from floats (the codes the engine really sees), through the
// packing and the Q8_0 quantizer.
TEST(Q8_0HeadKernels, BitExactWithReferenceOnQuantizedFloats) {
  const auto tables = test::simd_tables();
  if (tables.empty()) GTEST_SKIP() << "no SIMD variant runs on this CPU";
  for (const KernelTable* t : tables) {
    for (int64_t k : {32, 64, 2560}) {
      const int64_t n_out = 45;
      const auto src = test::make_float(gguf::TensorType::F16, k, n_out, 7);
      Head h;
      const size_t n = q8_0_head_size(k, n_out);
      h.buf.reset(static_cast<uint8_t*>(std::aligned_alloc(64, (n + 63) / 64 * 64)));
      q8_0_head_pack_tiles(src.w, h.buf.get(), 0, (n_out + 15) / 16);
      h.w = q8_0_head_view(h.buf.get(), k, n_out);
      for (int64_t rows : {1, 3, 4, 7}) {
        for (const auto& in : test::activation_sets(rows, k, 8)) {
          QuantizedActivations a;
          quantize_q8_0_ref(in.x.data(), rows, k, &a);
          ASSERT_EQ(mismatch(t, h.w, a, 0, n_out), "")
              << test::name_of(t) << " k=" << k << " rows=" << rows << " " << in.name;
          ASSERT_EQ(mismatch(t, h.w, a, 5, 38), "")
              << test::name_of(t) << " k=" << k << " rows=" << rows << " " << in.name;
        }
      }
    }
  }
}

}  // namespace
}  // namespace bitnet::kernels
