// The screened exact LM head (kernels/screened_head.h) against the full exact head, on every
// variant this CPU runs (the scalar one included), for both ways the exact head sums:
//  - the bound holds: |exact - approximation| <= b_j for every row, on ordinary and on
//    adversarial inputs (large activations, one huge weight per row, tiny weights);
//  - the n largest logits (n = 1, 2, 3, 5, 40) are the full head's, bit for bit, the same set
//    in the same order, also where rows tie exactly or differ in one f16 unit in the last place;
//  - every value it does write is the full head's, and the rest are -infinity;
//  - the screen does its job: on ordinary inputs only a few rows are computed exactly;
//  - inputs with a NaN or an infinity make it compute every row.
#include "kernels/screened_head.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "core/fp16.h"
#include "kernels/q8_0_head.h"
#include "test_util.h"

namespace bitnet::kernels {
namespace {

struct Head {
  std::vector<uint16_t> f16;  // n_out x k, file layout
  std::vector<uint8_t> screen;
  std::vector<float> norms;  // resid, then screen
  WeightMatrix exact;
  ScreenedHead h;
};

// Builds the screen and norms as Model::build_screened_head does.
void finish(Head& m, int64_t k, int64_t n_out, FloatSums sums) {
  m.exact.type = gguf::TensorType::F16;
  m.exact.data = reinterpret_cast<const uint8_t*>(m.f16.data());
  m.exact.k = k;
  m.exact.n_out = n_out;
  m.exact.float_sums = sums;
  m.screen.assign(q8_0_head_size(k, n_out), 0);
  q8_0_head_pack_tiles(m.exact, m.screen.data(), 0, (n_out + 15) / 16);
  m.norms.assign(static_cast<size_t>(2 * n_out), 0.0f);
  m.h.exact = &m.exact;
  m.h.screen = q8_0_head_view(m.screen.data(), k, n_out);
  m.h.resid_norm = m.norms.data();
  m.h.screen_norm = m.norms.data() + n_out;
  screen_row_norms(m.exact, m.h.screen, 0, n_out, m.norms.data(), m.norms.data() + n_out);
  set_norm_maxima(&m.h);
}

// Gaussian rows; rows 1 and 2 copy row 0 (exact ties), row 3 is row 0 with one element one f16
// ulp larger (a near tie), row 4 one ulp smaller.
Head make_head(int64_t k, int64_t n_out, FloatSums sums, uint32_t seed, float sigma = 0.05f) {
  Head m;
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  m.f16.resize(static_cast<size_t>(k * n_out));
  for (auto& v : m.f16) v = fp32_to_fp16(dist(rng));
  for (int64_t r = 1; r <= 4; ++r) std::copy_n(m.f16.begin(), k, m.f16.begin() + r * k);
  m.f16[static_cast<size_t>(3 * k + 7)] += 1;  // positive value: one ulp up (if positive)
  m.f16[static_cast<size_t>(4 * k + 7)] -= 1;
  finish(m, k, n_out, sums);
  return m;
}

// An input pointing at row 0 (so rows 0-4 lead; toward: 0 for pure noise), with noise, rounded
// to f16 as the exact head's input is.
std::vector<float> make_input(const Head& m, int64_t rows, uint32_t seed, float noise,
                              float toward = 20.0f) {
  const int64_t k = m.exact.k;
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, noise);
  std::vector<float> x(static_cast<size_t>(rows * k));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < k; ++i)
      x[static_cast<size_t>(r * k + i)] = fp16_to_fp32(
          fp32_to_fp16(toward * fp16_to_fp32(m.f16[static_cast<size_t>(i)]) + dist(rng)));
  return x;
}

std::vector<Kernels> variants() {
  std::vector<Kernels> out;
  for (Variant v : {Variant::kScalar, Variant::kAvx2, Variant::kAvx2Vnni, Variant::kAvx512}) {
    if (auto k = Kernels::of(v); k.ok()) out.push_back(*k);
  }
  return out;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(ScreenedHead, BoundHoldsForEveryRow) {
  const Kernels k = Kernels::best();
  for (FloatSums sums : {FloatSums::kDouble, FloatSums::kBlocks}) {
    for (float sigma : {0.05f, 3.0f, 1e-4f}) {
      Head m = make_head(256, 300, sums, 7, sigma);
      // One huge weight in some rows: their residual is large, their screen coarse.
      for (int64_t r = 40; r < 300; r += 37)
        m.f16[static_cast<size_t>(r * 256 + 3)] = fp32_to_fp16(900.0f);
      finish(m, 256, 300, sums);
      for (float noise : {0.1f, 50.0f}) {
        const std::vector<float> x = make_input(m, 3, 11, noise);
        std::vector<float> exact(3 * 300), approx(3 * 300);
        matmul_float(k, m.exact, x.data(), 3, exact.data(), nullptr);
        QuantizedActivations qa;
        matmul_q8_0_head(k, m.h.screen, x.data(), 3, approx.data(), nullptr, &qa);
        for (int64_t r = 0; r < 3; ++r) {
          const ScreenInputNorms in = screen_input_norms(x.data() + r * 256, qa, r);
          for (int64_t j = 0; j < 300; ++j) {
            const size_t at = static_cast<size_t>(r * 300 + j);
            EXPECT_LE(std::fabs(static_cast<double>(exact[at]) - approx[at]),
                      screen_bound(m.h, in, j))
                << "row " << j << " sigma " << sigma << " noise " << noise;
          }
        }
      }
    }
  }
}

TEST(ScreenedHead, TopLogitsAreTheFullHeadsBitForBit) {
  constexpr int64_t kK = 512, kOut = 2000, kRows = 3;
  for (FloatSums sums : {FloatSums::kDouble, FloatSums::kBlocks}) {
    Head m = make_head(kK, kOut, sums, 3);
    // Every 7th row has one large weight: its Q8_0 block keeps little of the others, so the
    // screen's order of the logits differs from the exact one near the top.
    for (int64_t r = 5; r < kOut; r += 7) {
      m.f16[static_cast<size_t>(r * kK + (r % kK))] = fp32_to_fp16(r % 2 ? 2.0f : -2.0f);
    }
    finish(m, kK, kOut, sums);
    for (const auto& [noise, toward] : {std::pair{0.02f, 20.0f}, {0.5f, 20.0f}, {1.0f, 0.0f}}) {
      const std::vector<float> x = make_input(m, kRows, 5, noise, toward);
      for (const Kernels& k : variants()) {
        std::vector<float> full(kRows * kOut);
        matmul_float(k, m.exact, x.data(), kRows, full.data(), nullptr);
        for (int n : {1, 2, 3, 5, 40}) {
          std::vector<float> y(kRows * kOut);
          ScreenScratch scratch;
          const int64_t n_exact =
              screened_head(k, m.h, x.data(), kRows, n, y.data(), nullptr, &scratch);
          EXPECT_GE(n_exact, kRows * n);
          for (int64_t r = 0; r < kRows; ++r) {
            const float* f = full.data() + r * kOut;
            const float* s = y.data() + r * kOut;
            const auto want = bitnet::test::top_indices(f, kOut, n),
                       got = bitnet::test::top_indices(s, kOut, n);
            ASSERT_EQ(want, got) << k.name() << " n " << n << " row " << r;
            int64_t written = 0;
            for (int64_t j = 0; j < kOut; ++j) {
              if (s[j] == -std::numeric_limits<float>::infinity()) continue;
              ++written;
              ASSERT_EQ(bits(s[j]), bits(f[j])) << k.name() << " output row " << j;
            }
            EXPECT_GE(written, n);
          }
        }
      }
    }
  }
}

TEST(ScreenedHead, ExactTiesAndOneUlpNearTiesAreKept) {
  const Head m = make_head(256, 500, FloatSums::kDouble, 9);
  const std::vector<float> x = make_input(m, 1, 2, 0.0f);  // points exactly at row 0
  const Kernels k = Kernels::best();
  std::vector<float> full(500), y(500);
  matmul_float(k, m.exact, x.data(), 1, full.data(), nullptr);
  ASSERT_EQ(bits(full[0]), bits(full[1]));  // the copies tie exactly
  ScreenScratch scratch;
  screened_head(k, m.h, x.data(), 1, 5, y.data(), nullptr, &scratch);
  for (int64_t j = 0; j < 5; ++j) EXPECT_EQ(bits(y[j]), bits(full[j])) << "row " << j;
  EXPECT_EQ(bitnet::test::top_indices(y.data(), 500, 5),
            bitnet::test::top_indices(full.data(), 500, 5));
}

TEST(ScreenedHead, FewRowsAreComputedExactly) {
  const Head m = make_head(2560, 4096, FloatSums::kDouble, 4);
  const std::vector<float> x = make_input(m, 1, 8, 0.5f);
  std::vector<float> y(4096);
  ScreenScratch scratch;
  const int64_t n_exact =
      screened_head(Kernels::best(), m.h, x.data(), 1, 1, y.data(), nullptr, &scratch);
  EXPECT_LT(n_exact, 4096 / 20);
}

TEST(ScreenedHead, NonFiniteInputComputesEveryRow) {
  const Head m = make_head(256, 300, FloatSums::kDouble, 1);
  for (float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::vector<float> x = make_input(m, 1, 2, 0.1f);
    x[17] = bad;
    std::vector<float> y(300);
    ScreenScratch scratch;
    EXPECT_EQ(screened_head(Kernels::best(), m.h, x.data(), 1, 1, y.data(), nullptr, &scratch),
              300);
  }
}

}  // namespace
}  // namespace bitnet::kernels
